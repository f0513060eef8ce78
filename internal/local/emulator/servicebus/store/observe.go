package store

import (
	"context"
	"slices"
	"time"
)

// Counts are an entity's message counts.
type Counts struct {
	Active       int // available to a receiver now (not locked, not deferred)
	Locked       int // handed out under a peek-lock, not yet settled
	Deferred     int
	Scheduled    int // waiting for their enqueue time (held by the queue or topic they were sent to)
	DeadLettered int // in the entity's dead-letter queue (subscriptions' summed for a topic)
}

// Idle reports whether nothing is waiting to be delivered or being processed: no active
// and no locked messages. Scheduled, deferred and dead-lettered messages do not count.
func (c Counts) Idle() bool { return c.Active == 0 && c.Locked == 0 }

func (e *entity) counts() Counts {
	var c Counts
	for _, it := range e.msgs {
		switch {
		case it.locked:
			c.Locked++
		case it.m.State == StateDeferred:
			c.Deferred++
		default:
			c.Active++
		}
	}
	c.Scheduled = len(e.scheduled)
	if e.dlq != nil {
		c.DeadLettered = len(e.dlq.msgs)
	}
	for _, sub := range e.subs {
		sc := sub.counts()
		c.Active += sc.Active
		c.Locked += sc.Locked
		c.Deferred += sc.Deferred
		c.DeadLettered += sc.DeadLettered
	}
	return c
}

// Counts returns the counts of a queue, subscription or dead-letter queue; for a topic,
// its scheduled messages plus the sums over its subscriptions.
func (s *Store) Counts(address string) (Counts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.resolve(address)
	if err != nil {
		return Counts{}, err
	}
	return e.counts(), nil
}

// WaitIdle returns nil once the entity is idle (Counts.Idle: no active and no locked
// messages; for a topic, across all its subscriptions), checking after every change, or
// ctx.Err() when ctx ends first. It returns at once for an entity that is already idle.
// Scheduled and deferred messages do not keep an entity busy: advance the clock past a
// scheduled time first when a test needs it delivered.
func (s *Store) WaitIdle(ctx context.Context, address string) error {
	s.mu.Lock()
	e, err := s.resolve(address)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	for {
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if e.counts().Idle() {
			s.mu.Unlock()
			return nil
		}
		wake := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
		s.mu.Lock()
	}
}

// EntitySnapshot is one entity's state for the inspection API. Message bodies are left
// out: they may carry anything a client sent.
type EntitySnapshot struct {
	Path     string            `json:"path"`
	Kind     string            `json:"kind"`
	Counts   Counts            `json:"counts"`
	Sessions []SessionSnapshot `json:"sessions,omitempty"`
	Messages []MessageSummary  `json:"messages,omitempty"`
}

// SessionSnapshot describes a session.
type SessionSnapshot struct {
	ID          string    `json:"id"`
	Owner       string    `json:"owner,omitempty"`
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
	StateBytes  int       `json:"stateBytes"`
}

// MessageSummary describes a message without its body or properties.
type MessageSummary struct {
	SequenceNumber       int64     `json:"sequenceNumber"`
	MessageID            string    `json:"messageId,omitempty"`
	SessionID            string    `json:"sessionId,omitempty"`
	State                string    `json:"state"`
	Locked               bool      `json:"locked"`
	LockedUntil          time.Time `json:"lockedUntil,omitzero"`
	DeliveryCount        uint32    `json:"deliveryCount"`
	EnqueuedTime         time.Time `json:"enqueuedTime,omitzero"`
	ExpiresAt            time.Time `json:"expiresAt,omitzero"`
	ScheduledEnqueueTime time.Time `json:"scheduledEnqueueTime,omitzero"`
	DeadLetterReason     string    `json:"deadLetterReason,omitempty"`
}

// Snapshot returns every entity (queues, topics, subscriptions, each followed by its
// dead-letter queue) with counts, sessions and message summaries in sequence order.
func (s *Store) Snapshot() []EntitySnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []EntitySnapshot
	for _, e := range s.order {
		out = append(out, e.snapshot())
		if e.dlq != nil {
			out = append(out, e.dlq.snapshot())
		}
	}
	return out
}

func (e *entity) snapshot() EntitySnapshot {
	kind := e.kind.String()
	if e.isDLQ {
		kind = "deadletter"
	}
	snap := EntitySnapshot{Path: e.path, Kind: kind, Counts: e.counts()}
	for _, sess := range e.sessions {
		snap.Sessions = append(snap.Sessions, SessionSnapshot{ID: sess.id, Owner: sess.owner, LockedUntil: sess.lockedUntil, StateBytes: len(sess.state)})
	}
	slices.SortFunc(snap.Sessions, func(a, b SessionSnapshot) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	for _, src := range []map[int64]*item{e.msgs, e.scheduled} {
		for _, it := range src {
			m := it.m
			reason, _ := m.AMQP.ApplicationProperties[PropDeadLetterReason].(string)
			snap.Messages = append(snap.Messages, MessageSummary{
				SequenceNumber: m.SequenceNumber, MessageID: m.MessageID, SessionID: m.SessionID,
				State: m.State.String(), Locked: it.locked, LockedUntil: m.LockedUntil, DeliveryCount: m.DeliveryCount,
				EnqueuedTime: m.EnqueuedTime, ExpiresAt: m.ExpiresAt, ScheduledEnqueueTime: m.ScheduledEnqueueTime,
				DeadLetterReason: reason,
			})
		}
	}
	slices.SortFunc(snap.Messages, func(a, b MessageSummary) int {
		return int(min(max(a.SequenceNumber-b.SequenceNumber, -1), 1))
	})
	return snap
}
