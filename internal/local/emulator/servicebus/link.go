package servicebus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/amqp"
)

type linkKind int

const (
	linkSend    linkKind = iota + 1 // client sends messages to an entity
	linkReceive                     // client receives messages from an entity
	linkRequest                     // client sends $cbs / $management requests
	linkReply                       // client receives $cbs / $management replies
)

const (
	filterSession   = amqp.Symbol("com.microsoft:session-filter")
	propTimeout     = amqp.Symbol("com.microsoft:timeout")
	propLockedUntil = amqp.Symbol("com.microsoft:locked-until-utc")
	suffixMgmt      = "/$management"
	addressCBS      = "$cbs"
	// defaultAcceptWait is how long accept-next-session waits without com.microsoft:timeout
	// (the service's own default is about a minute).
	defaultAcceptWait = 60 * time.Second
)

// link is one attached link. The broker uses the client's handle number for its own
// end too (handles are per direction, so any unused number is valid).
type link struct {
	c      *conn
	s      *session
	handle uint32
	name   string
	kind   linkKind
	cbs    bool   // request/reply on $cbs (else $management)
	entity string // canonical entity path (send, receive, $management)
	source string // terminus addresses as attached, for reply routing
	target string

	// Client sender: credit granted by the broker and the client's delivery count.
	credit        uint32
	deliveryCount uint32
	inProgress    bool
	partial       []byte
	partialID     uint32
	partialFormat uint32
	partialSettle bool

	// Client receiver: credit granted by the client.
	outCredit        uint32
	outDeliveryCount uint32
	drain            bool
	presettled       bool // snd-settle-mode settled: receive-and-delete
	sessionID        string
	owner            string
	ctx              context.Context
	cancel           context.CancelFunc
	recvCancel       context.CancelFunc

	detached bool // the broker sent (or received) a closing detach
}

// onAttach answers an attach. Entity links need a CBS token (or PLAIN login) covering
// the entity; a refusal is an attach with a null terminus followed by a closing detach,
// which is how go-amqp expects to be told (reference §2.1).
func (c *conn) onAttach(s *session, a *amqp.Attach) error {
	if old := s.links[a.Handle]; old != nil && !old.detached {
		return fmt.Errorf("attach on handle %d already in use", a.Handle)
	}
	l := &link{c: c, s: s, handle: a.Handle, name: a.Name}
	if a.Source != nil {
		l.source = a.Source.Address
	}
	if a.Target != nil {
		l.target = a.Target.Address
	}
	l.ctx, l.cancel = context.WithCancel(c.ctx)
	if f, ok := c.b.fault("attach"); ok {
		if f.Latency > 0 {
			time.Sleep(f.Latency)
		}
		if f.Drop {
			c.nc.Close()
			return errPeerClosed
		}
		if f.Status != 0 {
			return c.refuse(s, a, &amqp.Error{Condition: conditionForStatus(f.Status), Description: "injected fault"})
		}
	}
	clientSends := a.Role == amqp.RoleSender
	addr := l.target
	if !clientSends {
		addr = l.source
	}
	lower := strings.ToLower(addr)
	switch {
	case lower == addressCBS:
		l.cbs = true
		l.kind = pick(clientSends, linkRequest, linkReply)
	case strings.HasSuffix(lower, suffixMgmt):
		l.kind = pick(clientSends, linkRequest, linkReply)
		ent, err := c.b.store.Resolve(addr[:len(addr)-len(suffixMgmt)])
		if err != nil {
			return c.refuse(s, a, errorFor(err))
		}
		l.entity = ent.Path
	default:
		l.kind = pick(clientSends, linkSend, linkReceive)
		ent, err := c.b.store.Resolve(addr)
		if err != nil {
			return c.refuse(s, a, errorFor(err))
		}
		l.entity = ent.Path
		if clientSends && !ent.CanSend() {
			return c.refuse(s, a, &amqp.Error{Condition: "amqp:not-allowed", Description: fmt.Sprintf("cannot send to %q", ent.Path)})
		}
		if !clientSends && !ent.CanReceive() {
			return c.refuse(s, a, &amqp.Error{Condition: "amqp:not-allowed", Description: fmt.Sprintf("cannot receive from topic %q; use a subscription", ent.Path)})
		}
	}
	if !l.cbs {
		// A management link is opened by senders (to schedule) and receivers alike; each
		// of its operations is checked for its own claim (mgmtRequest).
		need := Send | Listen
		switch l.kind {
		case linkSend:
			need = Send
		case linkReceive:
			need = Listen
		}
		switch ok, tokened := c.authorized(addr, need); {
		case !tokened:
			c.log.Warn("servicebus: attach without a valid token", "address", addr)
			return c.refuse(s, a, &amqp.Error{Condition: "amqp:unauthorized-access",
				Description: fmt.Sprintf("no valid CBS token for %q; put one on $cbs first", addr)})
		case !ok:
			c.log.Warn("servicebus: attach without the claim it needs", "address", addr, "claim", need.String())
			return c.refuse(s, a, &amqp.Error{Condition: "amqp:unauthorized-access", Description: missingClaim(need, addr)})
		}
	}

	reply := &amqp.Attach{
		Name: a.Name, Handle: a.Handle, Role: !a.Role,
		SndSettleMode: a.SndSettleMode, RcvSettleMode: a.RcvSettleMode,
		Source: a.Source, Target: a.Target, MaxMessageSize: MaxMessageSize,
	}
	switch l.kind {
	case linkSend, linkRequest:
		s.links[a.Handle] = l
		l.credit = linkCredit
		if a.InitialDeliveryCount != nil {
			l.deliveryCount = *a.InitialDeliveryCount
		}
		return c.write(amqp.Frame{Channel: s.ch, Body: reply}, amqp.Frame{Channel: s.ch, Body: l.flow()})
	case linkReply:
		s.links[a.Handle] = l
		l.presettled = true
		reply.InitialDeliveryCount = amqp.U32(0)
		return c.write(amqp.Frame{Channel: s.ch, Body: reply})
	}
	// linkReceive
	l.presettled = a.SndSettleMode != nil && *a.SndSettleMode == amqp.SndSettled
	reply.InitialDeliveryCount = amqp.U32(0)
	if a.Source != nil {
		if fv, ok := a.Source.Filter.Get(filterSession); ok {
			s.links[a.Handle] = l
			c.nextOwner++
			l.owner = fmt.Sprintf("%s/%d/%s", c.id, c.nextOwner, a.Name)
			go c.acceptSession(l, a, reply, fv)
			return nil
		}
	}
	if ent, _ := c.b.store.Resolve(l.entity); ent.RequiresSession {
		return c.refuse(s, a, &amqp.Error{Condition: "amqp:not-allowed",
			Description: fmt.Sprintf("%q requires sessions; accept a session to receive", l.entity)})
	}
	s.links[a.Handle] = l
	if err := c.write(amqp.Frame{Channel: s.ch, Body: reply}); err != nil {
		return err
	}
	go c.push(l)
	return nil
}

// pick returns a when cond holds, else b.
func pick(cond bool, a, b linkKind) linkKind {
	if cond {
		return a
	}
	return b
}

// authorized reports whether the connection may use address with one of the claims in
// need, and whether it holds a live token (or PLAIN login) for address at all, so that a
// refusal can say which is missing.
func (c *conn) authorized(address string, need Claim) (ok, tokened bool) {
	if c.plainKey != "" {
		return c.b.rights[c.plainKey].allows(address, need), true
	}
	now := time.Now()
	for _, g := range c.grants {
		if g.Expires.After(now) && covers(g.Path, address) {
			tokened = true
			if c.b.rights[g.KeyName].allows(address, need) {
				return true, true
			}
		}
	}
	return false, tokened
}

// refuse rejects an attach: a reply with the client's terminus null, then a closing detach.
func (c *conn) refuse(s *session, a *amqp.Attach, e *amqp.Error) error {
	c.log.Info("servicebus: attach refused", "link", a.Name, "condition", string(e.Condition))
	return c.write(amqp.Frame{Channel: s.ch, Body: refusal(a)},
		amqp.Frame{Channel: s.ch, Body: &amqp.Detach{Handle: a.Handle, Closed: true, Error: e}})
}

func refusal(a *amqp.Attach) *amqp.Attach {
	reply := &amqp.Attach{Name: a.Name, Handle: a.Handle, Role: !a.Role,
		SndSettleMode: a.SndSettleMode, RcvSettleMode: a.RcvSettleMode}
	if a.Role == amqp.RoleSender {
		reply.Source = a.Source // client sender: null target
	} else {
		reply.Target = a.Target // client receiver: null source
		reply.InitialDeliveryCount = amqp.U32(0)
	}
	return reply
}
