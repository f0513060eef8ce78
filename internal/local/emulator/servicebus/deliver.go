package servicebus

import (
	"context"
	"errors"
	"fmt"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/amqp"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

// dotnetEpochTicks is 0001-01-01 in .NET ticks relative to the Unix epoch.
const dotnetEpochTicks = 621355968000000000

// ticks converts t to .NET ticks (100 ns since 0001-01-01), the form of
// com.microsoft:locked-until-utc.
func ticks(t time.Time) int64 { return t.UnixMilli()*10000 + dotnetEpochTicks }

// flow is the link's state as a flow performative (session fields included).
func (l *link) flow() *amqp.Flow {
	f := l.s.flow()
	f.Handle = amqp.U32(l.handle)
	switch l.kind {
	case linkSend, linkRequest:
		f.DeliveryCount, f.LinkCredit = amqp.U32(l.deliveryCount), amqp.U32(l.credit)
	default:
		f.DeliveryCount, f.LinkCredit = amqp.U32(l.outDeliveryCount), amqp.U32(l.outCredit)
	}
	return f
}

// onFlow applies a link flow. Called with c.mu held.
func (l *link) onFlow(f *amqp.Flow) error {
	c := l.c
	switch l.kind {
	case linkReceive, linkReply:
		if f.LinkCredit != nil {
			dc := l.outDeliveryCount
			if f.DeliveryCount != nil {
				dc = *f.DeliveryCount
			}
			// link-credit(snd) = delivery-count(rcv) + link-credit(rcv) - delivery-count(snd)
			l.outCredit = dc + *f.LinkCredit - l.outDeliveryCount
		}
		if f.Drain {
			if l.kind == linkReply {
				l.outDeliveryCount += l.outCredit
				l.outCredit = 0
				df := l.flow()
				df.Drain = true
				return c.write(amqp.Frame{Channel: l.s.ch, Body: df})
			}
			l.drain = true
			if l.recvCancel != nil {
				l.recvCancel()
			}
		}
	}
	if f.Echo {
		return c.write(amqp.Frame{Channel: l.s.ch, Body: l.flow()})
	}
	return nil
}

// acceptSession locks the session a receiver asked for (or the next available one) and
// completes the attach, echoing the session filter in the client's own form: go-amqp
// sends and expects a described value, rhea a bare string (reference §2.7, §5).
func (c *conn) acceptSession(l *link, a, reply *amqp.Attach, fv any) {
	requested, descriptor := "", any(nil)
	switch v := fv.(type) {
	case amqp.Described:
		descriptor = v.Descriptor
		requested, _ = v.Value.(string)
	case string:
		requested = v
	}
	wait := defaultAcceptWait
	if v, ok := a.Properties.Get(propTimeout); ok {
		if ms, ok := toInt64(v); ok && ms >= 0 {
			// Answer a little before the client's own deadline: the SDK derives the
			// timeout from its context with almost no margin, and a reply that arrives
			// after the context ends surfaces as a context error instead of CodeTimeout.
			t := time.Duration(ms) * time.Millisecond
			wait = t - min(t/10, time.Second)
		}
	}
	ctx, cancel := context.WithCancel(l.ctx)
	if requested == "" {
		ctx, cancel = context.WithTimeout(l.ctx, wait)
	}
	lk, err := c.b.store.AcceptSession(ctx, l.entity, requested, l.owner)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || l.detached {
		if err == nil {
			c.b.store.ReleaseSession(l.owner)
		}
		return
	}
	if err != nil {
		l.detached = true
		c.dropLinkLocked(l)
		e := errorFor(err)
		c.log.Info("servicebus: session not accepted", "entity", l.entity, "session", requested, "condition", string(e.Condition))
		_ = c.write(amqp.Frame{Channel: l.s.ch, Body: refusal(a)},
			amqp.Frame{Channel: l.s.ch, Body: &amqp.Detach{Handle: a.Handle, Closed: true, Error: e}})
		return
	}
	l.sessionID = lk.SessionID
	src := *a.Source
	src.Filter = append(amqp.Map(nil), a.Source.Filter...)
	if descriptor != nil {
		src.Filter.Set(filterSession, amqp.Described{Descriptor: descriptor, Value: lk.SessionID})
	} else {
		src.Filter.Set(filterSession, lk.SessionID)
	}
	reply.Source = &src
	reply.Properties = amqp.Map{{Key: propLockedUntil, Value: ticks(lk.LockedUntil)}}
	if err := c.write(amqp.Frame{Channel: l.s.ch, Body: reply}); err != nil {
		return
	}
	go c.push(l)
	go func() {
		select {
		case <-lk.Lost:
			c.mu.Lock()
			if !l.detached {
				c.detachLocked(l, &amqp.Error{Condition: "com.microsoft:session-lock-lost",
					Description: fmt.Sprintf("the lock on session %q ended", lk.SessionID)})
			}
			c.mu.Unlock()
		case <-l.ctx.Done():
		}
	}()
}

// push delivers messages to a receiver link while it has credit: one store.Receive per
// credit, so messages stay in the store (visible to other receivers) until a client can
// take them. Messages are taken under a peek-lock, so a peek-lock message whose transfer
// fails is released, not lost.
func (c *conn) push(l *link) {
	for {
		c.mu.Lock()
		for !l.detached && !c.closed && !l.drain && (l.outCredit == 0 || l.s.remoteIncomingWindow == 0) {
			c.cond.Wait()
		}
		if l.detached || c.closed {
			c.mu.Unlock()
			return
		}
		if l.drain {
			c.drainLocked(l)
			c.mu.Unlock()
			continue
		}
		rctx, rcancel := context.WithCancel(l.ctx)
		l.recvCancel = rcancel
		c.mu.Unlock()
		d, err := c.b.store.Receive(rctx, l.entity, l.sessionID, store.PeekLock)
		rcancel()
		c.mu.Lock()
		l.recvCancel = nil
		if err != nil {
			switch {
			case l.detached || c.closed || l.ctx.Err() != nil:
			case errors.Is(err, context.Canceled):
				c.mu.Unlock()
				continue // drain requested
			default:
				c.detachLocked(l, errorFor(err))
			}
			c.mu.Unlock()
			return
		}
		if l.detached || c.closed || l.outCredit == 0 {
			c.mu.Unlock()
			_ = c.b.store.Release(d.Path, d.LockToken)
			continue
		}
		_ = c.deliverLocked(l, d)
		c.mu.Unlock()
	}
}

// drainLocked sends what is available now, then uses up the remaining credit and tells
// the client so (AMQP drain, used by rhea's batching receiver).
func (c *conn) drainLocked(l *link) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for l.outCredit > 0 && l.s.remoteIncomingWindow > 0 {
		d, err := c.b.store.Receive(done, l.entity, l.sessionID, store.PeekLock)
		if err != nil {
			break
		}
		if c.deliverLocked(l, d) != nil {
			return
		}
	}
	l.outDeliveryCount += l.outCredit
	l.outCredit = 0
	l.drain = false
	f := l.flow()
	f.Drain = true
	_ = c.write(amqp.Frame{Channel: l.s.ch, Body: f})
}

// deliverLocked transfers one message on a receiver link.
func (c *conn) deliverLocked(l *link, d *store.Delivery) error {
	enc, err := encodeOutbound(outbound{msg: &d.Message, locked: !l.presettled})
	if err != nil {
		c.log.Error("servicebus: cannot encode message; releasing it", "entity", d.Path, "seq", d.SequenceNumber, "err", err)
		_ = c.b.store.Release(d.Path, d.LockToken)
		return err
	}
	if l.presettled {
		// Receive-and-delete is at-most-once, as on the service: the message is gone
		// before the client sees it, so counts never show it after it arrived.
		if err := c.b.store.Complete(d.Path, d.LockToken); err != nil {
			c.log.Warn("servicebus: receive-and-delete", "entity", d.Path, "seq", d.SequenceNumber, "err", err)
			return err
		}
	}
	tag := netOrder(d.LockToken)
	s := l.s
	id := s.nextDeliveryID
	s.nextDeliveryID++
	if err := c.write(c.transferFrames(l, id, tag[:], 0, l.presettled, enc)...); err != nil {
		if !l.presettled {
			_ = c.b.store.Release(d.Path, d.LockToken)
		}
		return err
	}
	l.outCredit--
	l.outDeliveryCount++
	if !l.presettled {
		s.unsettled[id] = pendingDelivery{l: l, token: d.LockToken, path: d.Path}
	}
	return nil
}

// transferFrames cuts a delivery into transfer frames that fit the peer's max-frame-size
// and accounts for them in the session.
func (c *conn) transferFrames(l *link, id uint32, tag []byte, format uint32, settled bool, payload []byte) []amqp.Frame {
	limit := int(min(c.peerMaxFrame, 1<<20))
	first := &amqp.Transfer{Handle: l.handle, DeliveryID: amqp.U32(id), DeliveryTag: tag,
		MessageFormat: amqp.U32(format), Settled: amqp.Bool(settled), More: true}
	overhead, _ := amqp.TransferOverhead(first)
	chunk := max(limit-overhead-8, 64)
	var frames []amqp.Frame
	for i := 0; ; i++ {
		t := &amqp.Transfer{Handle: l.handle, DeliveryID: amqp.U32(id)}
		if i == 0 {
			t = first
		}
		n := min(chunk, len(payload))
		t.Payload, payload = payload[:n], payload[n:]
		t.More = len(payload) > 0
		frames = append(frames, amqp.Frame{Channel: l.s.ch, Body: t})
		l.s.nextOutgoingID++
		if l.s.remoteIncomingWindow > 0 {
			l.s.remoteIncomingWindow--
		}
		if !t.More {
			return frames
		}
	}
}

// onTransfer assembles (possibly multi-frame) deliveries from client senders.
func (c *conn) onTransfer(s *session, t *amqp.Transfer) error {
	var out []amqp.Frame
	s.nextIncomingID++
	if s.incomingWindow > 0 {
		s.incomingWindow--
	}
	if s.incomingWindow < sessionWindow/2 {
		s.incomingWindow = sessionWindow
		out = append(out, amqp.Frame{Channel: s.ch, Body: s.flow()})
	}
	l := s.links[t.Handle]
	if l == nil || l.detached {
		return c.write(out...) // a transfer racing our detach
	}
	if l.kind != linkSend && l.kind != linkRequest {
		return fmt.Errorf("transfer on receiving link %q", l.name)
	}
	if !l.inProgress {
		if t.DeliveryID == nil {
			return fmt.Errorf("first transfer on link %q without delivery-id", l.name)
		}
		l.inProgress = true
		l.partialID = *t.DeliveryID
		l.partialFormat = 0
		if t.MessageFormat != nil {
			l.partialFormat = *t.MessageFormat
		}
		l.partialSettle = t.Settled != nil && *t.Settled
		if l.credit > 0 {
			l.credit--
		}
		l.deliveryCount++
	}
	if t.Aborted {
		l.inProgress, l.partial = false, nil
		return c.write(out...)
	}
	oversize := len(l.partial)+len(t.Payload) > MaxMessageSize
	if !oversize {
		l.partial = append(l.partial, t.Payload...)
	}
	if t.More && !oversize {
		return c.write(out...)
	}
	payload, id, format, settled := l.partial, l.partialID, l.partialFormat, l.partialSettle
	l.inProgress, l.partial = false, nil
	var state amqp.DeliveryState
	switch {
	case oversize:
		c.log.Warn("servicebus: message over the size limit rejected", "link", l.name, "limit", MaxMessageSize)
		state = &amqp.Rejected{Error: &amqp.Error{Condition: "amqp:link:message-size-exceeded",
			Description: fmt.Sprintf("message larger than %d bytes", MaxMessageSize)}}
		if t.More {
			// Refuse the rest of this delivery by closing the link.
			c.detachLocked(l, state.(*amqp.Rejected).Error)
			return c.write(out...)
		}
	case l.kind == linkSend:
		state = c.onMessage(l, format, payload)
	default:
		state = c.onRequest(l, payload)
	}
	if !settled {
		out = append(out, amqp.Frame{Channel: s.ch, Body: &amqp.Disposition{
			Role: amqp.RoleReceiver, First: id, Settled: true, State: state}})
	}
	if l.credit < linkCredit/2 {
		l.credit = linkCredit
		out = append(out, amqp.Frame{Channel: s.ch, Body: l.flow()})
	}
	return c.write(out...)
}

// onMessage stores a message or batch sent to an entity.
func (c *conn) onMessage(l *link, format uint32, payload []byte) amqp.DeliveryState {
	if f, ok := c.b.fault("send"); ok {
		if f.Latency > 0 {
			time.Sleep(f.Latency)
		}
		if f.Drop {
			c.nc.Close()
			return &amqp.Released{}
		}
		if f.Status != 0 {
			return &amqp.Rejected{Error: &amqp.Error{Condition: conditionForStatus(f.Status), Description: "injected fault"}}
		}
	}
	msgs, err := decodeMessages(format, payload)
	if err != nil {
		return &amqp.Rejected{Error: &amqp.Error{Condition: "amqp:decode-error", Description: err.Error()}}
	}
	if _, err := c.b.store.Send(l.entity, msgs...); err != nil {
		return &amqp.Rejected{Error: errorFor(err)}
	}
	return &amqp.Accepted{}
}

// onDisposition settles deliveries the broker sent unsettled. With rcv-settle-mode
// second the client waits for the broker's settled answer: accepted, or rejected without
// an error for a dead-letter (echoing the error makes go-amqp fail the call), or
// rejected{message-lock-lost} when the lock is gone (reference §2.5).
func (c *conn) onDisposition(s *session, d *amqp.Disposition) error {
	if d.Role != amqp.RoleReceiver {
		return nil // the client settling its own sends: nothing to do
	}
	last := d.First
	if d.Last != nil && *d.Last >= d.First && *d.Last-d.First < 10000 {
		last = *d.Last
	}
	var out []amqp.Frame
	for id := d.First; ; id++ {
		if p, ok := s.unsettled[id]; ok {
			delete(s.unsettled, id)
			reply := c.settle(p, d.State)
			if !d.Settled {
				out = append(out, amqp.Frame{Channel: s.ch, Body: &amqp.Disposition{
					Role: amqp.RoleSender, First: id, Settled: true, State: reply}})
			}
		}
		if id == last {
			break
		}
	}
	return c.write(out...)
}

// settle applies a client's outcome to the store and returns the broker's answer.
func (c *conn) settle(p pendingDelivery, state amqp.DeliveryState) amqp.DeliveryState {
	tok := uuid.UUID(p.token)
	var err error
	rejected := false
	switch st := state.(type) {
	case *amqp.Accepted:
		err = c.b.store.Complete(p.path, tok)
	case *amqp.Modified:
		props := propsFromMap(st.MessageAnnotations)
		if st.UndeliverableHere {
			err = c.b.store.Defer(p.path, tok, props)
		} else {
			err = c.b.store.Abandon(p.path, tok, props)
		}
	case *amqp.Rejected:
		rejected = true
		reason, desc, props := deadLetterInfo(st.Error)
		err = c.b.store.DeadLetter(p.path, tok, reason, desc, props)
	default: // released, or no outcome
		err = c.b.store.Release(p.path, tok)
	}
	if err != nil {
		e := errorFor(err)
		c.log.Info("servicebus: settlement failed", "entity", p.path, "condition", string(e.Condition))
		return &amqp.Rejected{Error: e}
	}
	if rejected {
		return &amqp.Rejected{}
	}
	return &amqp.Accepted{}
}

// deadLetterInfo reads the reason and description the SDKs put in the rejected error's
// info, with any other entries as properties to modify.
func deadLetterInfo(e *amqp.Error) (reason, desc string, props map[string]any) {
	if e == nil {
		return "", "", nil
	}
	props = propsFromMap(e.Info)
	if v, ok := props[store.PropDeadLetterReason].(string); ok {
		reason = v
	}
	if v, ok := props[store.PropDeadLetterErrorDescription].(string); ok {
		desc = v
	}
	delete(props, store.PropDeadLetterReason)
	delete(props, store.PropDeadLetterErrorDescription)
	return reason, desc, props
}

// propsFromMap converts decoded AMQP map entries to application properties go-amqp can
// encode again.
func propsFromMap(m amqp.Map) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for _, e := range m {
		k, ok := stringOf(e.Key)
		if !ok {
			continue
		}
		out[k] = toGoAMQP(e.Value)
	}
	return out
}

func stringOf(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case amqp.Symbol:
		return string(s), true
	}
	return "", false
}

// toGoAMQP converts a value decoded by package amqp to the Go types go-amqp encodes.
func toGoAMQP(v any) any {
	switch x := v.(type) {
	case amqp.Symbol:
		return goamqp.Symbol(x)
	case amqp.UUID:
		return goamqp.UUID(x)
	case amqp.Char:
		return rune(x)
	case amqp.Described:
		return toGoAMQP(x.Value)
	case amqp.Array:
		return toGoAMQP(x.Items)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toGoAMQP(e)
		}
		return out
	case amqp.Map:
		out := make(map[string]any, len(x))
		for _, e := range x {
			if k, ok := stringOf(e.Key); ok {
				out[k] = toGoAMQP(e.Value)
			}
		}
		return out
	case amqp.Decimal:
		return nil // no go-amqp equivalent; the SDKs never send one here
	}
	return v
}

// onDetach handles a client's detach, or its answer to the broker's.
func (c *conn) onDetach(s *session, d *amqp.Detach) error {
	l := s.links[d.Handle]
	if l == nil {
		return nil // the answer to a refusal: the link was never registered
	}
	delete(s.links, d.Handle)
	wasDetached := l.detached
	c.releaseOwners(c.dropLinkLocked(l))
	if wasDetached {
		return nil
	}
	return c.write(amqp.Frame{Channel: s.ch, Body: &amqp.Detach{Handle: d.Handle, Closed: true}})
}

// detachLocked closes a link from the broker's side with an error.
func (c *conn) detachLocked(l *link, e *amqp.Error) {
	c.log.Info("servicebus: detaching link", "link", l.name, "condition", string(e.Condition))
	c.releaseOwners(c.dropLinkLocked(l))
	_ = c.write(amqp.Frame{Channel: l.s.ch, Body: &amqp.Detach{Handle: l.handle, Closed: true, Error: e}})
}

// dropLinkLocked stops a link's activity and returns the session-lock owners to release.
// Unsettled peek-locked messages keep their locks (they may still be settled by lock token
// through the management link) and return when the lock expires.
func (c *conn) dropLinkLocked(l *link) []string {
	l.detached = true
	l.cancel()
	if l.recvCancel != nil {
		l.recvCancel()
	}
	for id, p := range l.s.unsettled {
		if p.l == l {
			delete(l.s.unsettled, id)
		}
	}
	c.cond.Broadcast()
	if l.owner == "" {
		return nil
	}
	o := l.owner
	l.owner = ""
	return []string{o}
}

// toInt64 reads any AMQP integer.
func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x > 1<<62 {
			return 0, false
		}
		return int64(x), true
	case uint:
		return int64(x), true
	}
	return 0, false
}
