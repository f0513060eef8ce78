package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// Errors the wire layer maps to AMQP conditions and management status codes. Every
// error the store returns wraps exactly one of them (test with errors.Is).
var (
	ErrNotFound              = errors.New("entity not found")         // amqp:not-found, 404
	ErrInvalid               = errors.New("operation not allowed")    // amqp:not-allowed, 400
	ErrLockLost              = errors.New("message lock lost")        // com.microsoft:message-lock-lost, 410
	ErrSessionLockLost       = errors.New("session lock lost")        // com.microsoft:session-lock-lost, 410
	ErrSessionCannotBeLocked = errors.New("session cannot be locked") // com.microsoft:session-cannot-be-locked, 409
	ErrTimeout               = errors.New("timed out")                // com.microsoft:timeout, 408
	ErrMessageNotFound       = errors.New("message not found")        // com.microsoft:message-not-found, 404
	ErrClosed                = errors.New("store closed")             // amqp:internal-error, 500
)

// Kind is an entity kind.
type Kind int

// Entity kinds.
const (
	KindQueue Kind = iota + 1
	KindTopic
	KindSubscription
)

func (k Kind) String() string {
	switch k {
	case KindQueue:
		return "queue"
	case KindTopic:
		return "topic"
	case KindSubscription:
		return "subscription"
	}
	return "unknown"
}

// Entity describes a resolved address.
type Entity struct {
	Path             string // canonical: "orders", "events/Subscriptions/all", "orders/$DeadLetterQueue"
	Kind             Kind   // of the entity itself; a DLQ has its owner's kind
	DeadLetter       bool   // the address is the entity's dead-letter sub-queue
	RequiresSession  bool   // receivers must accept a session (never for a DLQ)
	LockDuration     time.Duration
	MaxDeliveryCount int
	DefaultTTL       time.Duration
}

// CanSend reports whether messages may be sent to the entity (queues and topics).
func (e Entity) CanSend() bool { return !e.DeadLetter && e.Kind != KindSubscription }

// CanReceive reports whether the entity holds messages (queues, subscriptions, DLQs).
func (e Entity) CanReceive() bool { return e.DeadLetter || e.Kind != KindTopic }

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// Store holds every entity and message of one emulated namespace. All methods are safe
// for concurrent use. One mutex guards everything: operations are short, and a single
// lock makes the cross-entity moves (dead-lettering, forwarding, fan-out) atomic.
type Store struct {
	clk *clock.Clock
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	seq      int64
	entities map[string]*entity // lower-case path (no DLQ suffix) → queue, topic or subscription
	order    []*entity          // queues, topics, subscriptions in config order
	owners   map[string]map[*session]*entity
	changed  chan struct{} // closed and replaced on every state change: wakes waiters
}

// entity is a queue, topic, subscription or dead-letter queue.
type entity struct {
	kind  Kind
	path  string
	cfg   entityConfig
	isDLQ bool
	owner *entity // DLQ: the entity it belongs to
	dlq   *entity // queue, subscription: its dead-letter queue
	topic *entity // subscription: its topic
	subs  []*entity
	rules []compiledRule

	// Sendable (queue, topic).
	dups      map[string]dupRecord
	scheduled map[int64]*item

	// Receivable (queue, subscription, DLQ).
	msgs     map[int64]*item
	ready    map[string]*seqList // available (active, unlocked) by session id ("" without sessions)
	locks    map[uuid.UUID]*item
	sessions map[string]*session
}

type dupRecord struct {
	seen time.Time
	seq  int64
}

// item is a stored message and its timers.
type item struct {
	m          *Message
	locked     bool
	lockTimer  *clock.Timer
	expiry     *clock.Timer
	schedTimer *clock.Timer
}

// New builds a store with cfg's entities, timed by clk.
func New(cfg Config, clk *clock.Clock, opts ...Option) (*Store, error) {
	cc, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{
		clk:      clk,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		entities: map[string]*entity{},
		owners:   map[string]map[*session]*entity{},
		changed:  make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	for _, q := range cc.queues {
		s.add(newEntity(KindQueue, q.name, q.cfg))
	}
	for _, t := range cc.topics {
		te := newEntity(KindTopic, t.name, t.cfg)
		s.add(te)
		for _, sub := range t.subs {
			se := newEntity(KindSubscription, t.name+"/Subscriptions/"+sub.name, sub.cfg)
			se.topic, se.rules = te, sub.rules
			te.subs = append(te.subs, se)
			s.add(se)
			for _, r := range sub.rules {
				if r.warning != "" {
					s.log.Warn("servicebus: subscription rule not fully supported", "subscription", se.path, "rule", r.name, "detail", r.warning)
				}
			}
		}
	}
	return s, nil
}

func newEntity(kind Kind, path string, cfg entityConfig) *entity {
	e := &entity{kind: kind, path: path, cfg: cfg, dups: map[string]dupRecord{}, scheduled: map[int64]*item{}}
	e.initMessages()
	if kind != KindTopic {
		d := &entity{kind: kind, path: path + "/$DeadLetterQueue", isDLQ: true, owner: e, cfg: cfg}
		d.cfg.requiresSession, d.cfg.forwardTo, d.cfg.forwardDLQTo = false, "", ""
		d.initMessages()
		e.dlq = d
	}
	return e
}

func (e *entity) initMessages() {
	e.msgs, e.ready, e.locks, e.sessions = map[int64]*item{}, map[string]*seqList{}, map[uuid.UUID]*item{}, map[string]*session{}
}

func (s *Store) add(e *entity) {
	s.entities[strings.ToLower(e.path)] = e
	s.order = append(s.order, e)
}

// Close stops every timer and wakes every waiter with ErrClosed. The store must not be
// used afterwards.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, e := range s.order {
		for _, x := range []*entity{e, e.dlq} {
			if x == nil {
				continue
			}
			for _, it := range x.msgs {
				it.stopTimers()
			}
			for _, it := range x.scheduled {
				it.stopTimers()
			}
			for _, ss := range x.sessions {
				if ss.timer != nil {
					ss.timer.Stop()
				}
			}
		}
	}
	s.signal()
}

func (it *item) stopTimers() {
	for _, t := range []*clock.Timer{it.lockTimer, it.expiry, it.schedTimer} {
		if t != nil {
			t.Stop()
		}
	}
	it.lockTimer, it.expiry, it.schedTimer = nil, nil, nil
}

// signal wakes everything waiting for a change. Callers hold s.mu.
func (s *Store) signal() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Resolve maps an address to its entity. Matching is case-insensitive; a leading "/" or
// an "amqp://host" / "sb://host" prefix is ignored; "<entity>/$DeadLetterQueue" is the
// dead-letter sub-queue of a queue or subscription.
func (s *Store) Resolve(address string) (Entity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.resolve(address)
	if err != nil {
		return Entity{}, err
	}
	return e.describe(), nil
}

func (e *entity) describe() Entity {
	return Entity{
		Path: e.path, Kind: e.kind, DeadLetter: e.isDLQ, RequiresSession: e.cfg.requiresSession,
		LockDuration: e.cfg.lockDuration, MaxDeliveryCount: e.cfg.maxDelivery, DefaultTTL: e.cfg.ttl,
	}
}

const dlqSuffix = "/$deadletterqueue"

func (s *Store) resolve(address string) (*entity, error) {
	key := strings.ToLower(address)
	if i := strings.Index(key, "://"); i >= 0 {
		rest := key[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			key = rest[j:]
		}
	}
	key = strings.Trim(key, "/")
	dlq := strings.HasSuffix(key, dlqSuffix)
	key = strings.TrimSuffix(key, dlqSuffix)
	e, ok := s.entities[key]
	if !ok || (dlq && e.dlq == nil) {
		return nil, fmt.Errorf("store: %q: %w", address, ErrNotFound)
	}
	if dlq {
		return e.dlq, nil
	}
	return e, nil
}

func (s *Store) receivable(address string) (*entity, error) {
	if s.closed {
		return nil, ErrClosed
	}
	e, err := s.resolve(address)
	if err != nil {
		return nil, err
	}
	if e.kind == KindTopic {
		return nil, fmt.Errorf("store: %q is a topic; receive from one of its subscriptions: %w", e.path, ErrInvalid)
	}
	return e, nil
}

func (s *Store) sendable(address string) (*entity, error) {
	if s.closed {
		return nil, ErrClosed
	}
	e, err := s.resolve(address)
	if err != nil {
		return nil, err
	}
	if e.isDLQ || e.kind == KindSubscription {
		return nil, fmt.Errorf("store: %q: messages can only be sent to queues and topics: %w", e.path, ErrInvalid)
	}
	return e, nil
}

// seqList is an ascending list of sequence numbers: messages return to their place in
// sequence order when unlocked, as on the real service.
type seqList struct{ s []int64 }

func (l *seqList) insert(v int64) {
	i := sort.Search(len(l.s), func(i int) bool { return l.s[i] >= v })
	if i < len(l.s) && l.s[i] == v {
		return
	}
	l.s = slices.Insert(l.s, i, v)
}

func (l *seqList) remove(v int64) {
	i := sort.Search(len(l.s), func(i int) bool { return l.s[i] >= v })
	if i < len(l.s) && l.s[i] == v {
		l.s = slices.Delete(l.s, i, i+1)
	}
}

func (l *seqList) first() (int64, bool) {
	if l == nil || len(l.s) == 0 {
		return 0, false
	}
	return l.s[0], true
}

func (e *entity) readyKey(m *Message) string {
	if e.cfg.requiresSession {
		return m.SessionID
	}
	return ""
}

func (e *entity) markReady(it *item) {
	k := e.readyKey(it.m)
	l := e.ready[k]
	if l == nil {
		l = &seqList{}
		e.ready[k] = l
	}
	l.insert(it.m.SequenceNumber)
}

func (e *entity) unready(it *item) {
	if l := e.ready[e.readyKey(it.m)]; l != nil {
		l.remove(it.m.SequenceNumber)
	}
}

// remove deletes a message from the entity entirely.
func (e *entity) remove(it *item) {
	it.stopTimers()
	e.unready(it)
	if it.locked {
		delete(e.locks, it.m.LockToken)
	}
	it.locked = false
	delete(e.msgs, it.m.SequenceNumber)
}
