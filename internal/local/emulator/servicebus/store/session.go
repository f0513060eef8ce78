package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// session is one session of a session-enabled entity.
type session struct {
	id          string
	state       []byte
	owner       string // "" = not locked
	lockedUntil time.Time
	timer       *clock.Timer
	lost        chan struct{}
	gen         uint64 // bumps on every lock, so a stale timer cannot end a newer lock
}

// SessionLock is a granted session lock.
type SessionLock struct {
	Path        string // canonical entity path
	SessionID   string
	Owner       string
	LockedUntil time.Time
	// Lost is closed when this lock ends: it expired, or ReleaseSession released it.
	// The wire layer detaches the session receiver when it closes.
	Lost <-chan struct{}
}

// AcceptSession locks a session of a session-enabled entity for owner (the wire layer
// passes something unique per receiver link, e.g. connection id + link name). A named
// session locked by another owner fails at once with ErrSessionCannotBeLocked; the same
// owner gets its lock back. sessionID "" picks the unlocked session whose oldest
// available message is oldest, waiting for one until ctx ends: a ctx deadline gives
// ErrTimeout, a cancellation ctx.Err().
func (s *Store) AcceptSession(ctx context.Context, address, sessionID, owner string) (*SessionLock, error) {
	if owner == "" {
		return nil, fmt.Errorf("store: accept session on %q: empty owner: %w", address, ErrInvalid)
	}
	s.mu.Lock()
	e, err := s.receivable(address)
	if err == nil && !e.cfg.requiresSession {
		err = fmt.Errorf("store: %q does not require sessions: %w", e.path, ErrInvalid)
	}
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if sessionID != "" {
			lk, err := s.acceptNamed(e, sessionID, owner)
			s.mu.Unlock()
			return lk, err
		}
		if sess := e.nextSession(); sess != nil {
			s.lockSession(e, sess, owner)
			s.signal()
			s.mu.Unlock()
			return sess.lockInfo(e), nil
		}
		wake := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("store: %q: no session available: %w", e.path, ErrTimeout)
			}
			return nil, ctx.Err()
		case <-wake:
		}
		s.mu.Lock()
	}
}

// acceptNamed locks a named session now or fails: the service does not queue a receiver
// behind another one's lock.
func (s *Store) acceptNamed(e *entity, sessionID, owner string) (*SessionLock, error) {
	sess := e.session(sessionID)
	switch sess.owner {
	case owner:
		return sess.lockInfo(e), nil
	case "":
		s.lockSession(e, sess, owner)
		s.signal()
		return sess.lockInfo(e), nil
	}
	return nil, fmt.Errorf("store: %q session %q is locked by another receiver: %w", e.path, sessionID, ErrSessionCannotBeLocked)
}

func (e *entity) session(id string) *session {
	sess := e.sessions[id]
	if sess == nil {
		sess = &session{id: id}
		e.sessions[id] = sess
	}
	return sess
}

// nextSession is the unlocked session holding the oldest available message.
func (e *entity) nextSession() *session {
	var best *session
	var bestSeq int64
	for id, l := range e.ready {
		seq, ok := l.first()
		if !ok {
			continue
		}
		if sess := e.sessions[id]; sess != nil && sess.owner != "" {
			continue
		}
		if best == nil || seq < bestSeq {
			best, bestSeq = e.session(id), seq
		}
	}
	return best
}

func (sess *session) lockInfo(e *entity) *SessionLock {
	return &SessionLock{Path: e.path, SessionID: sess.id, Owner: sess.owner, LockedUntil: sess.lockedUntil, Lost: sess.lost}
}

func (s *Store) lockSession(e *entity, sess *session, owner string) {
	sess.owner = owner
	sess.lost = make(chan struct{})
	sess.gen++
	if s.owners[owner] == nil {
		s.owners[owner] = map[*session]*entity{}
	}
	s.owners[owner][sess] = e
	s.armSession(e, sess, s.clk.Now().Add(e.cfg.lockDuration))
}

func (s *Store) armSession(e *entity, sess *session, until time.Time) {
	if sess.timer != nil {
		sess.timer.Stop()
	}
	sess.lockedUntil = until
	gen := sess.gen
	sess.timer = s.clk.At(until, func() { s.sessionExpired(e, sess, gen) })
	for _, it := range e.locks {
		if it.m.SessionID == sess.id {
			it.m.LockedUntil = until
		}
	}
}

func (s *Store) sessionExpired(e *entity, sess *session, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || sess.gen != gen || sess.owner == "" {
		return
	}
	sess.timer = nil
	s.unlockSession(e, sess)
	s.signal()
}

// unlockSession ends a session lock; the session's messages still locked count a failed
// delivery, as when a message lock expires.
func (s *Store) unlockSession(e *entity, sess *session) {
	if sess.timer != nil {
		sess.timer.Stop()
		sess.timer = nil
	}
	if m := s.owners[sess.owner]; m != nil {
		delete(m, sess)
		if len(m) == 0 {
			delete(s.owners, sess.owner)
		}
	}
	sess.owner = ""
	sess.lockedUntil = time.Time{}
	close(sess.lost)
	var held []*item
	for _, it := range e.locks {
		if it.m.SessionID == sess.id {
			held = append(held, it)
		}
	}
	slices.SortFunc(held, func(a, b *item) int { return int(min(max(a.m.SequenceNumber-b.m.SequenceNumber, -1), 1)) })
	for _, it := range held {
		s.unlock(e, it, true)
	}
}

// ReleaseSession releases every session lock owner holds (call it when the receiver
// link closes). Messages still locked under them count a failed delivery.
func (s *Store) ReleaseSession(owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess, e := range s.owners[owner] {
		s.unlockSession(e, sess)
	}
	delete(s.owners, owner)
	s.signal()
}

// lockedSession finds a session that is currently locked.
func (s *Store) lockedSession(address, sessionID string) (*entity, *session, error) {
	e, err := s.receivable(address)
	if err != nil {
		return nil, nil, err
	}
	if !e.cfg.requiresSession {
		return nil, nil, fmt.Errorf("store: %q does not require sessions: %w", e.path, ErrInvalid)
	}
	sess := e.sessions[sessionID]
	if sess == nil || sess.owner == "" {
		return nil, nil, fmt.Errorf("store: %q session %q is not locked: %w", e.path, sessionID, ErrSessionLockLost)
	}
	if !s.clk.Now().Before(sess.lockedUntil) {
		s.unlockSession(e, sess)
		s.signal()
		return nil, nil, fmt.Errorf("store: %q session %q lock expired: %w", e.path, sessionID, ErrSessionLockLost)
	}
	return e, sess, nil
}

// RenewSessionLock extends a session lock (and its messages' locks) by the entity's lock
// duration.
func (s *Store) RenewSessionLock(address, sessionID string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, sess, err := s.lockedSession(address, sessionID)
	if err != nil {
		return time.Time{}, err
	}
	s.armSession(e, sess, s.clk.Now().Add(e.cfg.lockDuration))
	return sess.lockedUntil, nil
}

// GetSessionState returns a locked session's state (nil when none was set).
func (s *Store) GetSessionState(address, sessionID string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, sess, err := s.lockedSession(address, sessionID)
	if err != nil {
		return nil, err
	}
	return slices.Clone(sess.state), nil
}

// SetSessionState sets a locked session's state; nil clears it.
func (s *Store) SetSessionState(address, sessionID string, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, sess, err := s.lockedSession(address, sessionID)
	if err != nil {
		return err
	}
	sess.state = slices.Clone(state)
	return nil
}

// ListSessions returns, sorted, the ids of the sessions that hold messages or state
// (the get-message-sessions operation; the wire layer applies skip/top).
func (s *Store) ListSessions(address string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.receivable(address)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for id, sess := range e.sessions {
		if sess.state != nil {
			set[id] = true
		}
	}
	if e.cfg.requiresSession {
		for _, it := range e.msgs {
			set[it.m.SessionID] = true
		}
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
