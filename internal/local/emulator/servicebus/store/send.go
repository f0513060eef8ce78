package store

import (
	"fmt"
	"math"
	"time"

	"github.com/Azure/go-amqp"
)

// Dead-letter reasons the service itself uses.
const (
	ReasonMaxDeliveryCountExceeded = "MaxDeliveryCountExceeded"
	ReasonTTLExpired               = "TTLExpiredException"
)

// Application property names set on dead-lettered messages.
const (
	PropDeadLetterReason           = "DeadLetterReason"
	PropDeadLetterErrorDescription = "DeadLetterErrorDescription"
)

// Send stores messages sent to a queue or topic and returns their sequence numbers.
// All messages are checked before any is stored. A message whose MessageID was seen
// within the duplicate-detection window is accepted but not stored (its first sequence
// number is returned); one with a ScheduledEnqueueTime in the future is scheduled; a
// topic copies each message to every subscription with a matching rule.
func (s *Store) Send(address string, msgs ...*Message) ([]int64, error) {
	return s.send(address, false, msgs)
}

// Schedule is Send for the schedule-message management operation: every message gets a
// sequence number that CancelScheduled accepts, and one whose time has already come is
// enqueued at once.
func (s *Store) Schedule(address string, msgs ...*Message) ([]int64, error) {
	return s.send(address, true, msgs)
}

func (s *Store) send(address string, schedule bool, in []*Message) ([]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.sendable(address)
	if err != nil {
		return nil, err
	}
	msgs := make([]*Message, len(in))
	for i, m := range in {
		if m == nil || m.AMQP == nil {
			return nil, fmt.Errorf("store: send to %q: message %d has no AMQP message: %w", e.path, i, ErrInvalid)
		}
		msgs[i] = fromClient(m)
		if err := s.checkSession(e, msgs[i], 0); err != nil {
			return nil, err
		}
	}
	now := s.clk.Now()
	seqs := make([]int64, len(msgs))
	for i, m := range msgs {
		if seq, dup := e.duplicate(m.MessageID, now); dup {
			s.log.Debug("servicebus: duplicate message dropped", "entity", e.path, "messageId", m.MessageID)
			seqs[i] = seq
			continue
		}
		s.seq++
		m.SequenceNumber = s.seq
		seqs[i] = m.SequenceNumber
		e.remember(m, now)
		if m.ScheduledEnqueueTime.After(now) {
			s.scheduleLocked(e, m)
			continue
		}
		m.ScheduledEnqueueTime = scheduledOrZero(schedule, m.ScheduledEnqueueTime)
		s.enqueue(e, m, now, 0)
	}
	s.signal()
	return seqs, nil
}

func scheduledOrZero(keep bool, t time.Time) time.Time {
	if keep {
		return t
	}
	return time.Time{}
}

// checkSession rejects a message without SessionId headed for an entity that requires
// sessions (for a topic: any subscription whose rules it matches, following ForwardTo).
func (s *Store) checkSession(e *entity, m *Message, hops int) error {
	if m.SessionID != "" || hops > maxForwardHops {
		return nil
	}
	if e.cfg.forwardTo != "" {
		if t, err := s.resolve(e.cfg.forwardTo); err == nil {
			return s.checkSession(t, m, hops+1)
		}
	}
	if e.kind == KindTopic {
		for _, sub := range e.subs {
			if sub.accepts(m) {
				if err := s.checkSession(sub, m, hops+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if e.cfg.requiresSession {
		return fmt.Errorf("store: send to %q: message %q has no SessionId but the %s requires sessions: %w", e.path, m.MessageID, e.kind, ErrInvalid)
	}
	return nil
}

func (e *entity) accepts(m *Message) bool {
	if len(e.rules) == 0 {
		return true
	}
	for _, r := range e.rules {
		if r.matches(m) {
			return true
		}
	}
	return false
}

// duplicate reports whether id was sent within the window, pruning expired records.
func (e *entity) duplicate(id string, now time.Time) (int64, bool) {
	if !e.cfg.requiresDup || id == "" {
		return 0, false
	}
	for k, r := range e.dups {
		if !now.Before(r.seen.Add(e.cfg.dupWindow)) {
			delete(e.dups, k)
		}
	}
	r, ok := e.dups[id]
	return r.seq, ok
}

func (e *entity) remember(m *Message, now time.Time) {
	if e.cfg.requiresDup && m.MessageID != "" {
		e.dups[m.MessageID] = dupRecord{seen: now, seq: m.SequenceNumber}
	}
}

// scheduleLocked holds m on its send entity until its time comes.
func (s *Store) scheduleLocked(e *entity, m *Message) {
	m.State = StateScheduled
	it := &item{m: m}
	e.scheduled[m.SequenceNumber] = it
	seq := m.SequenceNumber
	it.schedTimer = s.clk.At(m.ScheduledEnqueueTime, func() { s.activate(e, seq) })
}

func (s *Store) activate(e *entity, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := e.scheduled[seq]
	if s.closed || !ok {
		return
	}
	delete(e.scheduled, seq)
	it.schedTimer = nil
	s.enqueue(e, it.m, s.clk.Now(), 0)
	s.signal()
}

// CancelScheduled removes scheduled messages by sequence number. Numbers that are not
// (or no longer) scheduled are reported with ErrMessageNotFound after the others are
// cancelled.
func (s *Store) CancelScheduled(address string, seqs ...int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.sendable(address)
	if err != nil {
		return err
	}
	var missing []int64
	for _, seq := range seqs {
		it, ok := e.scheduled[seq]
		if !ok {
			missing = append(missing, seq)
			continue
		}
		it.stopTimers()
		delete(e.scheduled, seq)
	}
	s.signal()
	if len(missing) > 0 {
		return fmt.Errorf("store: cancel scheduled on %q: sequence numbers %v are not scheduled: %w", e.path, missing, ErrMessageNotFound)
	}
	return nil
}

// enqueue makes m active on e: forwarded, fanned out to subscriptions, or stored.
func (s *Store) enqueue(e *entity, m *Message, now time.Time, hops int) {
	if e.cfg.forwardTo != "" && hops < maxForwardHops {
		if t, err := s.resolve(e.cfg.forwardTo); err == nil && !t.isDLQ {
			s.enqueue(t, m, now, hops+1)
			return
		}
		s.log.Warn("servicebus: ForwardTo target unusable, keeping the message", "entity", e.path, "forwardTo", e.cfg.forwardTo)
	}
	if e.kind == KindTopic {
		// Every subscription's copy keeps the topic's sequence number, as on the service.
		for _, sub := range e.subs {
			if sub.accepts(m) {
				s.enqueue(sub, m.clone(), now, hops)
			}
		}
		return
	}
	if _, taken := e.msgs[m.SequenceNumber]; taken || m.SequenceNumber == 0 {
		s.seq++
		m.SequenceNumber = s.seq
	}
	m.State = StateActive
	m.EnqueuedTime = now
	m.ExpiresAt = time.Time{}
	if ttl := m.ttl(e.cfg.ttl); !e.isDLQ && ttl < 100*365*24*time.Hour {
		m.ExpiresAt = now.Add(ttl)
		// The service reports the effective TTL (capped by the entity default) in the
		// header, which is where the SDK computes ExpiresAt from. header.ttl is a uint
		// of milliseconds, so longer TTLs are left as the client sent them.
		if ttl <= math.MaxUint32*time.Millisecond {
			h := amqp.MessageHeader{Priority: 4}
			if m.AMQP.Header != nil {
				h = *m.AMQP.Header
			}
			h.TTL = ttl
			m.AMQP.Header = &h
		}
	}
	it := &item{m: m}
	e.msgs[m.SequenceNumber] = it
	e.markReady(it)
	if !m.ExpiresAt.IsZero() {
		seq := m.SequenceNumber
		it.expiry = s.clk.At(m.ExpiresAt, func() { s.expireTimer(e, seq) })
	}
}

func (s *Store) expireTimer(e *entity, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := e.msgs[seq]
	if s.closed || !ok {
		return
	}
	it.expiry = nil
	if it.locked {
		return // a locked message expires when it is unlocked (as the service does)
	}
	s.expire(e, it)
	s.signal()
}

func (it *item) expired(now time.Time) bool {
	return !it.m.ExpiresAt.IsZero() && !now.Before(it.m.ExpiresAt)
}

// expire drops an expired message, or dead-letters it when the entity says so.
func (s *Store) expire(e *entity, it *item) {
	if e.cfg.dlqOnExpiry {
		s.deadLetter(e, it, ReasonTTLExpired, "The message expired and was dead lettered.", nil)
		return
	}
	e.remove(it)
}

// deadLetter moves a message to e's dead-letter queue (or ForwardDeadLetteredMessagesTo).
func (s *Store) deadLetter(e *entity, it *item, reason, description string, props map[string]any) error {
	if e.isDLQ {
		return fmt.Errorf("store: %q: a dead-lettered message cannot be dead-lettered again: %w", e.path, ErrInvalid)
	}
	e.remove(it)
	m := it.m.clone()
	m.setProperties(props)
	dl := map[string]any{}
	if reason != "" {
		dl[PropDeadLetterReason] = reason
	}
	if description != "" {
		dl[PropDeadLetterErrorDescription] = description
	}
	m.setProperties(dl)
	m.DeadLetterSource = e.path
	m.LockToken, m.LockedUntil, m.State = [16]byte{}, time.Time{}, StateActive
	now := s.clk.Now()
	if e.cfg.forwardDLQTo != "" {
		if t, err := s.resolve(e.cfg.forwardDLQTo); err == nil && !t.isDLQ {
			s.seq++
			m.SequenceNumber = s.seq
			s.enqueue(t, m, now, 1)
			return nil
		}
	}
	enq := m.EnqueuedTime
	s.enqueue(e.dlq, m, now, maxForwardHops)
	m.EnqueuedTime = enq
	return nil
}
