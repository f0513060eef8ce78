package servicebus

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/amqp"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

// Transport limits.
const (
	// maxFrameSize is what the broker advertises and enforces after open. Smaller than
	// MaxMessageSize on purpose: clients then exercise multi-frame transfers.
	maxFrameSize = 65536
	// handshakeFrameSize bounds frames before open (SASL, open itself). The specification's
	// minimum is 512; clients' open frames with properties come close, so allow more.
	handshakeFrameSize = 4096
	// idleTimeout is advertised in open; clients send keep-alives at half of it, and a
	// connection silent for twice as long is considered gone.
	idleTimeout      = 60 * time.Second
	handshakeTimeout = 10 * time.Second
	writeTimeout     = 30 * time.Second
	// sessionWindow is the broker's incoming window, re-opened when half used.
	sessionWindow = 5000
	// linkCredit is granted to client senders and topped up when half used.
	linkCredit = 1000
)

var errPeerClosed = errors.New("peer closed the connection")

// conn is one client connection. The reader goroutine handles every frame in order
// while holding mu; receiver links push deliveries from their own goroutines under mu.
// Writes are serialised by wmu (lock order: mu, then wmu).
type conn struct {
	b      *Emulator
	nc     net.Conn
	id     string
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	wmu sync.Mutex

	mu           sync.Mutex
	cond         *sync.Cond
	peerMaxFrame uint32
	peerIdle     time.Duration
	sessions     map[uint16]*session
	grants       []grant
	// plainKey is the key a SASL PLAIN login named: its Rights cover the whole
	// connection, without CBS tokens ("" = no PLAIN login).
	plainKey  string
	closed    bool
	nextOwner uint64
}

type session struct {
	ch                   uint16
	links                map[uint32]*link
	nextIncomingID       uint32
	incomingWindow       uint32
	nextOutgoingID       uint32
	remoteIncomingWindow uint32
	nextDeliveryID       uint32
	unsettled            map[uint32]pendingDelivery
}

// pendingDelivery is a delivery the broker sent unsettled and the client has not settled.
type pendingDelivery struct {
	l     *link
	token [16]byte
	path  string
}

func newConn(b *Emulator, nc net.Conn) *conn {
	id := strconv.FormatUint(b.nextID.Add(1), 10)
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		b: b, nc: nc, id: id, ctx: ctx, cancel: cancel,
		log:          b.log.With("conn", id, "remote", nc.RemoteAddr().String()),
		sessions:     map[uint16]*session{},
		peerMaxFrame: 512,
	}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// serve runs the connection until it ends, then releases everything it held.
func (c *conn) serve() {
	defer c.teardown()
	defer func() {
		// A bug triggered by one peer must not take the other connections down.
		if r := recover(); r != nil {
			c.log.Error("servicebus: internal error; dropping connection", "panic", fmt.Sprint(r))
		}
	}()
	br := bufio.NewReaderSize(c.nc, 64*1024)
	if err := c.handshake(br); err != nil {
		c.log.Warn("servicebus: handshake failed; dropping connection", "err", err)
		return
	}
	go c.keepAlive()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * idleTimeout))
		f, err := amqp.ReadFrame(br, maxFrameSize)
		if err != nil {
			c.readFailed(err)
			return
		}
		if f.Type != amqp.FrameAMQP {
			c.fail(&amqp.Error{Condition: "amqp:connection:framing-error", Description: "SASL frame after open"})
			return
		}
		if err := c.handle(f); err != nil {
			if !errors.Is(err, errPeerClosed) {
				c.log.Warn("servicebus: protocol error; closing connection", "err", err)
				c.fail(&amqp.Error{Condition: "amqp:internal-error", Description: err.Error()})
			}
			return
		}
	}
}

// readFailed logs why reading stopped and, for a malformed stream, tells the peer.
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("servicebus: connection closed by peer")
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Warn("servicebus: peer vanished mid-frame; dropping connection")
	case errors.As(err, &ne) && ne.Timeout():
		c.log.Warn("servicebus: peer idle past the idle timeout; dropping connection")
	default:
		c.log.Warn("servicebus: malformed frame; dropping connection", "err", err)
		c.fail(&amqp.Error{Condition: "amqp:connection:framing-error", Description: err.Error()})
	}
}

// fail sends close with an error (best effort) before the connection is torn down.
func (c *conn) fail(e *amqp.Error) {
	_ = c.write(amqp.Frame{Body: &amqp.Close{Error: e}})
}

func (c *conn) handshake(br *bufio.Reader) error {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	proto, err := amqp.ReadProtocolHeader(br)
	if err != nil {
		return err
	}
	switch proto {
	case 3:
		if err := c.sasl(br); err != nil {
			return err
		}
		if proto, err = amqp.ReadProtocolHeader(br); err != nil {
			return err
		}
		if proto != 0 {
			return fmt.Errorf("protocol id %d after SASL, want 0", proto)
		}
		if err := c.writeRaw(amqp.HeaderAMQP); err != nil {
			return err
		}
	case 0:
		// No SASL: an anonymous connection, which still needs CBS tokens.
		if err := c.writeRaw(amqp.HeaderAMQP); err != nil {
			return err
		}
	default:
		_ = c.writeRaw(amqp.HeaderSASL)
		return fmt.Errorf("protocol id %d (TLS) is not served; the emulator speaks plain TCP", proto)
	}
	f, err := amqp.ReadFrame(br, handshakeFrameSize)
	if err != nil {
		return fmt.Errorf("read open: %w", err)
	}
	open, ok := f.Body.(*amqp.Open)
	if !ok || f.Channel != 0 {
		return fmt.Errorf("first frame is %T on channel %d, want open on channel 0", f.Body, f.Channel)
	}
	c.mu.Lock()
	c.peerMaxFrame = max(open.MaxFrameSize, amqp.MinMaxFrameSize)
	c.peerIdle = open.IdleTimeout
	c.mu.Unlock()
	return c.write(amqp.Frame{Body: &amqp.Open{
		ContainerID:  "patrol-servicebus-emulator",
		MaxFrameSize: maxFrameSize,
		ChannelMax:   0xffff,
		IdleTimeout:  idleTimeout,
	}})
}

// sasl offers ANONYMOUS, PLAIN and MSSBCBS. ANONYMOUS and MSSBCBS always succeed (the
// entity is authorised later by CBS); PLAIN must name a configured key and give its value.
func (c *conn) sasl(br *bufio.Reader) error {
	if err := c.writeRaw(amqp.HeaderSASL); err != nil {
		return err
	}
	if err := c.write(amqp.Frame{Type: amqp.FrameSASL, Body: &amqp.SASLMechanisms{
		Mechanisms: []amqp.Symbol{"ANONYMOUS", "PLAIN", "MSSBCBS"},
	}}); err != nil {
		return err
	}
	f, err := amqp.ReadFrame(br, handshakeFrameSize)
	if err != nil {
		return fmt.Errorf("read sasl-init: %w", err)
	}
	init, ok := f.Body.(*amqp.SASLInit)
	if !ok {
		return fmt.Errorf("got %T, want sasl-init", f.Body)
	}
	code := amqp.SASLOK
	switch init.Mechanism {
	case "ANONYMOUS", "MSSBCBS":
	case "PLAIN":
		user, pass, err := parsePlain(init.InitialResponse)
		if key, ok := c.b.keys[user]; err != nil || !ok || key != pass {
			code = amqp.SASLAuth
			c.log.Warn("servicebus: SASL PLAIN rejected", "user", user)
		} else {
			c.plainKey = user
		}
	default:
		code = amqp.SASLAuth
		c.log.Warn("servicebus: unsupported SASL mechanism", "mechanism", string(init.Mechanism))
	}
	if err := c.write(amqp.Frame{Type: amqp.FrameSASL, Body: &amqp.SASLOutcome{Code: code}}); err != nil {
		return err
	}
	if code != amqp.SASLOK {
		return fmt.Errorf("SASL %s authentication failed", init.Mechanism)
	}
	return nil
}

func (c *conn) keepAlive() {
	c.mu.Lock()
	every := 15 * time.Second
	if c.peerIdle > 0 {
		every = min(every, c.peerIdle/2)
	}
	c.mu.Unlock()
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			if err := c.write(amqp.Frame{}); err != nil {
				return
			}
		}
	}
}

// writeRaw writes bytes as they are (protocol headers).
func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.nc.Close()
		return err
	}
	return nil
}

// write encodes frames and writes them in one call. A failed write closes the socket,
// which ends the reader and so the connection.
func (c *conn) write(frames ...amqp.Frame) error {
	var buf []byte
	for _, f := range frames {
		var err error
		if buf, err = amqp.AppendFrame(buf, f); err != nil {
			return fmt.Errorf("encode %T: %w", f.Body, err)
		}
	}
	return c.writeRaw(buf)
}

// shutdown closes the socket; serve notices and tears down.
func (c *conn) shutdown() { c.nc.Close() }

// teardown releases everything the connection held. Peek-locked messages stay locked
// until their lock expires (as on the service), so no message is lost; session locks are
// released now.
func (c *conn) teardown() {
	c.mu.Lock()
	c.closed = true
	var owners []string
	for _, s := range c.sessions {
		for _, l := range s.links {
			owners = append(owners, c.dropLinkLocked(l)...)
		}
	}
	c.sessions = map[uint16]*session{}
	c.cond.Broadcast()
	c.mu.Unlock()
	c.cancel()
	c.nc.Close()
	for _, o := range owners {
		c.b.store.ReleaseSession(o)
	}
	c.log.Debug("servicebus: connection closed")
}

// handle processes one frame; a returned error closes the connection.
func (c *conn) handle(f amqp.Frame) error {
	if f.Body == nil {
		return nil // keep-alive
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errPeerClosed
	}
	if _, isBegin := f.Body.(*amqp.Begin); !isBegin {
		if _, isClose := f.Body.(*amqp.Close); !isClose && c.sessions[f.Channel] == nil {
			return fmt.Errorf("%T on channel %d without a session", f.Body, f.Channel)
		}
	}
	s := c.sessions[f.Channel]
	switch p := f.Body.(type) {
	case *amqp.Open:
		return errors.New("second open")
	case *amqp.Begin:
		return c.onBegin(f.Channel, p)
	case *amqp.Attach:
		return c.onAttach(s, p)
	case *amqp.Flow:
		return c.onFlow(s, p)
	case *amqp.Transfer:
		return c.onTransfer(s, p)
	case *amqp.Disposition:
		return c.onDisposition(s, p)
	case *amqp.Detach:
		return c.onDetach(s, p)
	case *amqp.End:
		return c.onEnd(s)
	case *amqp.Close:
		if p.Error != nil {
			c.log.Info("servicebus: peer closed with error", "condition", string(p.Error.Condition))
		}
		_ = c.write(amqp.Frame{Body: &amqp.Close{}})
		return errPeerClosed
	}
	return fmt.Errorf("unexpected %T", f.Body)
}

func (c *conn) onBegin(ch uint16, b *amqp.Begin) error {
	if b.RemoteChannel != nil {
		return errors.New("begin with remote-channel: the broker never begins sessions")
	}
	if _, dup := c.sessions[ch]; dup {
		return fmt.Errorf("begin on channel %d already in use", ch)
	}
	s := &session{
		ch: ch, links: map[uint32]*link{}, unsettled: map[uint32]pendingDelivery{},
		nextIncomingID: b.NextOutgoingID, incomingWindow: sessionWindow,
		remoteIncomingWindow: b.IncomingWindow,
	}
	c.sessions[ch] = s
	return c.write(amqp.Frame{Channel: ch, Body: &amqp.Begin{
		RemoteChannel: &ch, NextOutgoingID: 0, IncomingWindow: sessionWindow,
		OutgoingWindow: sessionWindow, HandleMax: 0xfffffffe,
	}})
}

func (c *conn) onEnd(s *session) error {
	var owners []string
	for _, l := range s.links {
		owners = append(owners, c.dropLinkLocked(l)...)
	}
	delete(c.sessions, s.ch)
	c.releaseOwners(owners)
	return c.write(amqp.Frame{Channel: s.ch, Body: &amqp.End{}})
}

// releaseOwners releases session locks. Callers may hold mu: the store never calls back
// into the broker, so the lock order mu → store lock cannot deadlock.
func (c *conn) releaseOwners(owners []string) {
	for _, o := range owners {
		c.b.store.ReleaseSession(o)
	}
}

// sessionFlow is the broker's session state as a flow performative.
func (s *session) flow() *amqp.Flow {
	next := s.nextIncomingID
	return &amqp.Flow{NextIncomingID: &next, IncomingWindow: s.incomingWindow,
		NextOutgoingID: s.nextOutgoingID, OutgoingWindow: sessionWindow}
}

func (c *conn) onFlow(s *session, f *amqp.Flow) error {
	next := s.nextOutgoingID
	if f.NextIncomingID != nil {
		next = *f.NextIncomingID
	}
	// remote-incoming-window = next-incoming-id(peer) + incoming-window(peer) - next-outgoing-id(us)
	s.remoteIncomingWindow = next + f.IncomingWindow - s.nextOutgoingID
	defer c.cond.Broadcast()
	if f.Handle == nil {
		if f.Echo {
			return c.write(amqp.Frame{Channel: s.ch, Body: s.flow()})
		}
		return nil
	}
	l := s.links[*f.Handle]
	if l == nil || l.detached {
		return nil // a flow racing our detach
	}
	return l.onFlow(f)
}

// errorFor maps store errors to the AMQP conditions the SDKs understand.
func errorFor(err error) *amqp.Error {
	cond := amqp.Symbol("amqp:internal-error")
	switch {
	case errors.Is(err, store.ErrNotFound):
		cond = "amqp:not-found"
	case errors.Is(err, store.ErrInvalid):
		cond = "amqp:not-allowed"
	case errors.Is(err, store.ErrLockLost):
		cond = "com.microsoft:message-lock-lost"
	case errors.Is(err, store.ErrSessionLockLost):
		cond = "com.microsoft:session-lock-lost"
	case errors.Is(err, store.ErrSessionCannotBeLocked):
		cond = "com.microsoft:session-cannot-be-locked"
	case errors.Is(err, store.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		cond = "com.microsoft:timeout"
	case errors.Is(err, store.ErrMessageNotFound):
		cond = "com.microsoft:message-not-found"
	}
	return &amqp.Error{Condition: cond, Description: err.Error()}
}

// statusFor maps store errors to management status codes (reference §3).
func statusFor(err error) int {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrMessageNotFound):
		return 404
	case errors.Is(err, store.ErrInvalid):
		return 400
	case errors.Is(err, store.ErrLockLost), errors.Is(err, store.ErrSessionLockLost):
		return 410
	case errors.Is(err, store.ErrSessionCannotBeLocked):
		return 409
	case errors.Is(err, store.ErrTimeout):
		return 408
	}
	return 500
}

// conditionForStatus is the error condition a fault's status code stands for.
func conditionForStatus(status int) amqp.Symbol {
	switch status {
	case 401, 403:
		return "amqp:unauthorized-access"
	case 404:
		return "amqp:not-found"
	case 408:
		return "com.microsoft:timeout"
	case 410:
		return "com.microsoft:message-lock-lost"
	case 429, 503:
		return "com.microsoft:server-busy"
	}
	return "amqp:internal-error"
}
