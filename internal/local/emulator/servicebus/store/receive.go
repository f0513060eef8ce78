package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Receive hands out the next available message, waiting until one arrives or ctx ends
// (then it returns ctx.Err()). On an entity that requires sessions, sessionID must name a
// session currently locked through AcceptSession (else ErrSessionLockLost); elsewhere it
// must be empty. PeekLock locks the message (LockToken, LockedUntil); ReceiveAndDelete
// removes it.
func (s *Store) Receive(ctx context.Context, address, sessionID string, mode ReceiveMode) (*Delivery, error) {
	s.mu.Lock()
	e, err := s.receivable(address)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		var sess *session
		key := ""
		switch {
		case e.cfg.requiresSession:
			if sessionID == "" {
				s.mu.Unlock()
				return nil, fmt.Errorf("store: %q requires sessions; accept a session first: %w", e.path, ErrInvalid)
			}
			sess = e.sessions[sessionID]
			if sess == nil || sess.owner == "" {
				s.mu.Unlock()
				return nil, fmt.Errorf("store: %q session %q is not locked: %w", e.path, sessionID, ErrSessionLockLost)
			}
			key = sessionID
		case sessionID != "":
			s.mu.Unlock()
			return nil, fmt.Errorf("store: %q does not require sessions; receive without a session id: %w", e.path, ErrInvalid)
		}
		d, changed := s.take(e, key, mode, sess, s.clk.Now())
		if changed {
			s.signal()
		}
		if d != nil {
			s.mu.Unlock()
			return d, nil
		}
		wake := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
		s.mu.Lock()
	}
}

// take removes the first available message of e's ready list key, dropping expired ones
// on the way. It reports whether anything changed.
func (s *Store) take(e *entity, key string, mode ReceiveMode, sess *session, now time.Time) (*Delivery, bool) {
	l := e.ready[key]
	changed := false
	for {
		seq, ok := l.first()
		if !ok {
			return nil, changed
		}
		it := e.msgs[seq]
		l.remove(seq)
		changed = true
		if it == nil {
			continue
		}
		if it.expired(now) {
			s.expire(e, it)
			continue
		}
		if mode == ReceiveAndDelete {
			e.remove(it)
			return e.delivery(it), true
		}
		s.lock(e, it, now, sess)
		return e.delivery(it), true
	}
}

func (e *entity) delivery(it *item) *Delivery {
	return &Delivery{Message: *it.m.clone(), Path: e.path}
}

// lock locks a message for a peek-lock receiver. A session's messages share the session
// lock instead of having their own timer, as on the service.
func (s *Store) lock(e *entity, it *item, now time.Time, sess *session) {
	token := uuid.New()
	it.locked = true
	it.m.LockToken = token
	e.locks[token] = it
	if sess != nil {
		it.m.LockedUntil = sess.lockedUntil
		return
	}
	it.m.LockedUntil = now.Add(e.cfg.lockDuration)
	it.lockTimer = s.clk.At(it.m.LockedUntil, func() { s.lockExpired(e, token) })
}

func (s *Store) lockExpired(e *entity, token uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := e.locks[token]
	if s.closed || !ok {
		return
	}
	it.lockTimer = nil
	s.unlock(e, it, true)
	s.signal()
}

// unlock ends a message lock. counted (abandon, lock expiry, session loss) counts a
// failed delivery and dead-letters past MaxDeliveryCount; release does not count.
func (s *Store) unlock(e *entity, it *item, counted bool) {
	if it.lockTimer != nil {
		it.lockTimer.Stop()
		it.lockTimer = nil
	}
	delete(e.locks, it.m.LockToken)
	it.locked = false
	it.m.LockToken, it.m.LockedUntil = uuid.Nil, time.Time{}
	if counted {
		it.m.DeliveryCount++
		if !e.isDLQ && int(it.m.DeliveryCount) >= e.cfg.maxDelivery {
			_ = s.deadLetter(e, it, ReasonMaxDeliveryCountExceeded,
				fmt.Sprintf("Message could not be consumed after %d delivery attempts.", e.cfg.maxDelivery), nil)
			return
		}
	}
	if it.expired(s.clk.Now()) {
		s.expire(e, it)
		return
	}
	if it.m.State != StateDeferred {
		e.markReady(it)
	}
}

// settleable finds the locked message for token on address. An unknown token, or a lock
// whose time has passed but whose timer has not yet run, is ErrLockLost.
func (s *Store) settleable(address string, token uuid.UUID) (*entity, *item, error) {
	e, err := s.receivable(address)
	if err != nil {
		return nil, nil, err
	}
	it, ok := e.locks[token]
	if ok && !s.clk.Now().Before(it.m.LockedUntil) {
		s.unlock(e, it, true)
		s.signal()
		ok = false
	}
	if !ok {
		return nil, nil, fmt.Errorf("store: %q lock token %s: %w", e.path, token, ErrLockLost)
	}
	return e, it, nil
}

// CheckSessionLock refuses to settle or renew, by lock token alone, a message of an
// entity that requires sessions unless heldSession (the session of the receiver link the
// request is associated with) is the message's session: on the service only the session
// receiver that holds the session lock may settle its messages (azservicebus
// example_receiver_test.go: settling with only a lock token "does not work if you're
// using Service Bus sessions"). Non-session entities pass.
func (s *Store) CheckSessionLock(address string, token uuid.UUID, heldSession string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, it, err := s.settleable(address, token)
	if err != nil {
		return err
	}
	if !e.cfg.requiresSession || (heldSession != "" && heldSession == it.m.SessionID) {
		return nil
	}
	return fmt.Errorf("store: %q lock token %s: a session's message settles only through the receiver holding session %q: %w",
		e.path, token, it.m.SessionID, ErrLockLost)
}

// Complete removes a locked message.
func (s *Store) Complete(address string, token uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, it, err := s.settleable(address, token)
	if err != nil {
		return err
	}
	e.remove(it)
	s.signal()
	return nil
}

// Abandon unlocks a message for redelivery, applying props to its application
// properties and counting a failed delivery.
func (s *Store) Abandon(address string, token uuid.UUID, props map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, it, err := s.settleable(address, token)
	if err != nil {
		return err
	}
	it.m.setProperties(props)
	s.unlock(e, it, true)
	s.signal()
	return nil
}

// Defer sets a message aside: only ReceiveDeferred (by sequence number) gets it again.
func (s *Store) Defer(address string, token uuid.UUID, props map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, it, err := s.settleable(address, token)
	if err != nil {
		return err
	}
	it.m.setProperties(props)
	it.m.State = StateDeferred
	s.unlock(e, it, false)
	s.signal()
	return nil
}

// DeadLetter moves a message to the dead-letter queue with the given reason and
// description (set as the DeadLetterReason and DeadLetterErrorDescription application
// properties when not empty).
func (s *Store) DeadLetter(address string, token uuid.UUID, reason, description string, props map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, it, err := s.settleable(address, token)
	if err != nil {
		return err
	}
	if err := s.deadLetter(e, it, reason, description, props); err != nil {
		return err
	}
	s.signal()
	return nil
}

// Release unlocks a message without counting a delivery (the AMQP released outcome).
func (s *Store) Release(address string, token uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, it, err := s.settleable(address, token)
	if err != nil {
		return err
	}
	s.unlock(e, it, false)
	s.signal()
	return nil
}

// RenewLock extends message locks by the entity's lock duration and returns the new
// expiries in token order. A message received through a session shares the session
// lock: its expiry is the session's (renew that with RenewSessionLock).
func (s *Store) RenewLock(address string, tokens ...uuid.UUID) ([]time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]time.Time, len(tokens))
	for i, token := range tokens {
		e, it, err := s.settleable(address, token)
		if err != nil {
			return nil, err
		}
		if e.cfg.requiresSession {
			out[i] = it.m.LockedUntil
			continue
		}
		if it.lockTimer != nil {
			it.lockTimer.Stop()
		}
		it.m.LockedUntil = s.clk.Now().Add(e.cfg.lockDuration)
		it.lockTimer = s.clk.At(it.m.LockedUntil, func() { s.lockExpired(e, token) })
		out[i] = it.m.LockedUntil
	}
	return out, nil
}

// Peek returns up to n messages with sequence numbers from fromSeq on, in sequence
// order, without locking them: active (locked or not), deferred and (for a queue)
// scheduled ones, as the service's peek does. sessionID "" peeks every session.
func (s *Store) Peek(address string, fromSeq int64, n int, sessionID string) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.receivable(address)
	if err != nil {
		return nil, err
	}
	var all []*item
	for _, src := range []map[int64]*item{e.msgs, e.scheduled} {
		for seq, it := range src {
			if seq >= fromSeq && (sessionID == "" || it.m.SessionID == sessionID) {
				all = append(all, it)
			}
		}
	}
	slices.SortFunc(all, func(a, b *item) int { return int(min(max(a.m.SequenceNumber-b.m.SequenceNumber, -1), 1)) })
	if n >= 0 && len(all) > n {
		all = all[:n]
	}
	out := make([]Message, len(all))
	for i, it := range all {
		out[i] = *it.m.clone()
	}
	return out, nil
}

// ReceiveDeferred gets deferred messages by sequence number. Every number must name a
// deferred, unlocked message (of sessionID's session on a session entity, which must be
// locked), else ErrMessageNotFound and nothing is received. Peek-locked deferred
// messages stay deferred when abandoned or when their lock expires.
func (s *Store) ReceiveDeferred(address string, seqs []int64, mode ReceiveMode, sessionID string) ([]*Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.receivable(address)
	if err != nil {
		return nil, err
	}
	var sess *session
	if e.cfg.requiresSession {
		sess = e.sessions[sessionID]
		if sess == nil || sess.owner == "" {
			return nil, fmt.Errorf("store: %q session %q is not locked: %w", e.path, sessionID, ErrSessionLockLost)
		}
	}
	items := make([]*item, len(seqs))
	for i, seq := range seqs {
		it := e.msgs[seq]
		if it == nil || it.m.State != StateDeferred || it.locked || (sess != nil && it.m.SessionID != sessionID) {
			return nil, fmt.Errorf("store: %q: no deferred message with sequence number %d: %w", e.path, seq, ErrMessageNotFound)
		}
		items[i] = it
	}
	now := s.clk.Now()
	out := make([]*Delivery, len(items))
	for i, it := range items {
		if mode == ReceiveAndDelete {
			e.remove(it)
		} else {
			s.lock(e, it, now, sess)
		}
		out[i] = e.delivery(it)
	}
	s.signal()
	return out, nil
}
