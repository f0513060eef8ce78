package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const lock = 30 * time.Second

func testConfig() Config {
	q := func(name string, p QueueProperties) Queue {
		if p.LockDuration == "" {
			p.LockDuration = "PT30S"
		}
		return Queue{Name: name, Properties: p}
	}
	return Config{UserConfig: UserConfig{Namespaces: []Namespace{{
		Name: "sbemulatorns",
		Queues: []Queue{
			q("work", QueueProperties{MaxDeliveryCount: 3}),
			q("expiring", QueueProperties{DefaultMessageTimeToLive: "PT5M", DeadLetteringOnMessageExpiration: true}),
			q("vanishing", QueueProperties{DefaultMessageTimeToLive: "PT5M"}),
			q("dedup", QueueProperties{RequiresDuplicateDetection: true, DuplicateDetectionHistoryTimeWindow: "PT1M"}),
			q("sessions", QueueProperties{RequiresSession: true, MaxDeliveryCount: 5}),
			q("inbox", QueueProperties{ForwardTo: "events"}),
			q("fragile", QueueProperties{MaxDeliveryCount: 1, ForwardDeadLetteredMessagesTo: "graveyard"}),
			q("graveyard", QueueProperties{}),
		},
		Topics: []Topic{{
			Name: "events",
			Subscriptions: []Subscription{
				{Name: "all"},
				{Name: "red", Rules: []Rule{{Name: "red", Properties: RuleProperties{
					FilterType:        "Correlation",
					CorrelationFilter: &CorrelationFilter{Label: "paint", Properties: map[string]any{"color": "red", "coats": float64(2)}},
				}}}},
				{Name: "nothing", Rules: []Rule{{Name: "never", Properties: RuleProperties{FilterType: "Sql", SqlFilter: &SQLExpression{SqlExpression: "1 = 0"}}}}},
			},
		}},
	}}}}
}

func newTestStore(t *testing.T) (*Store, *clock.Clock) {
	t.Helper()
	clk := clock.NewManual(t0)
	st, err := New(testConfig(), clk)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(st.Close)
	return st, clk
}

type msgOpt func(*amqp.Message)

func withSession(id string) msgOpt { return func(m *amqp.Message) { m.Properties.GroupID = &id } }
func withTTL(d time.Duration) msgOpt {
	return func(m *amqp.Message) { m.Header = &amqp.MessageHeader{TTL: d} }
}
func withScheduled(at time.Time) msgOpt {
	return func(m *amqp.Message) {
		m.Annotations = amqp.Annotations{amqp.Symbol("x-opt-scheduled-enqueue-time"): at}
	}
}
func withProps(p map[string]any) msgOpt { return func(m *amqp.Message) { m.ApplicationProperties = p } }
func withSubject(s string) msgOpt       { return func(m *amqp.Message) { m.Properties.Subject = &s } }

func msg(id string, opts ...msgOpt) *Message {
	m := amqp.NewMessage([]byte("body of " + id))
	m.Properties = &amqp.MessageProperties{MessageID: id}
	for _, o := range opts {
		o(m)
	}
	return &Message{AMQP: m}
}

func send(t *testing.T, st *Store, addr string, msgs ...*Message) []int64 {
	t.Helper()
	seqs, err := st.Send(addr, msgs...)
	if err != nil {
		t.Fatalf("Send(%q): %v", addr, err)
	}
	return seqs
}

// receiveNow receives without waiting: nil when nothing is available.
func receiveNow(t *testing.T, st *Store, addr, session string, mode ReceiveMode) *Delivery {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := st.Receive(ctx, addr, session, mode)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		t.Fatalf("Receive(%q, %q): %v", addr, session, err)
	}
	return d
}

func mustReceive(t *testing.T, st *Store, addr, session string) *Delivery {
	t.Helper()
	d := receiveNow(t, st, addr, session, PeekLock)
	if d == nil {
		t.Fatalf("Receive(%q, %q): no message available", addr, session)
	}
	return d
}

func counts(t *testing.T, st *Store, addr string) Counts {
	t.Helper()
	c, err := st.Counts(addr)
	if err != nil {
		t.Fatalf("Counts(%q): %v", addr, err)
	}
	return c
}

func wantCounts(t *testing.T, st *Store, addr string, want Counts) {
	t.Helper()
	if got := counts(t, st, addr); got != want {
		t.Fatalf("Counts(%q) = %+v, want %+v", addr, got, want)
	}
}

func accept(t *testing.T, st *Store, addr, session, owner string) *SessionLock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lk, err := st.AcceptSession(ctx, addr, session, owner)
	if err != nil {
		t.Fatalf("AcceptSession(%q, %q, %q): %v", addr, session, owner, err)
	}
	return lk
}

func TestStore(t *testing.T) {
	tests := map[string]func(t *testing.T, st *Store, clk *clock.Clock){
		"lock expiry redelivers the message with its delivery count incremented": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"))
			d := mustReceive(t, st, "work", "")
			if d.DeliveryCount != 0 || !d.LockedUntil.Equal(t0.Add(lock)) || d.LockToken == uuid.Nil {
				t.Fatalf("first delivery: count %d, locked until %v, token %v", d.DeliveryCount, d.LockedUntil, d.LockToken)
			}
			clk.Advance(lock - time.Millisecond)
			if again := receiveNow(t, st, "work", "", PeekLock); again != nil {
				t.Fatalf("message redelivered before its lock expired")
			}
			clk.Advance(time.Millisecond)
			d2 := mustReceive(t, st, "work", "")
			if d2.DeliveryCount != 1 || d2.LockToken == d.LockToken {
				t.Fatalf("redelivery: count %d (want 1), token reused %v", d2.DeliveryCount, d2.LockToken == d.LockToken)
			}
			if err := st.Complete("work", d.LockToken); !errors.Is(err, ErrLockLost) {
				t.Fatalf("Complete with the expired token = %v, want ErrLockLost", err)
			}
		},
		"abandon counts a delivery and applies the properties to modify": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"))
			d := mustReceive(t, st, "work", "")
			if err := st.Abandon("work", d.LockToken, map[string]any{"tries": int64(1)}); err != nil {
				t.Fatal(err)
			}
			d2 := mustReceive(t, st, "work", "")
			if d2.DeliveryCount != 1 || d2.AMQP.ApplicationProperties["tries"] != int64(1) {
				t.Fatalf("after abandon: count %d, props %v", d2.DeliveryCount, d2.AMQP.ApplicationProperties)
			}
		},
		"release unlocks without counting a delivery": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"))
			for range 5 { // more releases than MaxDeliveryCount: still no dead-lettering
				d := mustReceive(t, st, "work", "")
				if d.DeliveryCount != 0 {
					t.Fatalf("count %d after releases, want 0", d.DeliveryCount)
				}
				if err := st.Release("work", d.LockToken); err != nil {
					t.Fatal(err)
				}
			}
			wantCounts(t, st, "work", Counts{Active: 1})
		},
		"exceeding the max delivery count dead-letters with reason MaxDeliveryCountExceeded": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"))
			for i := range 3 { // MaxDeliveryCount 3: two abandons, then a lock expiry
				d := mustReceive(t, st, "work", "")
				if i < 2 {
					if err := st.Abandon("work", d.LockToken, nil); err != nil {
						t.Fatal(err)
					}
				} else {
					clk.Advance(lock)
				}
			}
			wantCounts(t, st, "work", Counts{DeadLettered: 1})
			dl := receiveNow(t, st, "work/$DeadLetterQueue", "", ReceiveAndDelete)
			if dl == nil {
				t.Fatal("dead-letter queue is empty")
			}
			props := dl.AMQP.ApplicationProperties
			if props[PropDeadLetterReason] != ReasonMaxDeliveryCountExceeded || props[PropDeadLetterErrorDescription] == "" || dl.DeadLetterSource != "work" || dl.DeliveryCount != 3 {
				t.Fatalf("dead-lettered message: props %v, source %q, count %d", props, dl.DeadLetterSource, dl.DeliveryCount)
			}
		},
		"TTL expiry dead-letters with TTLExpiredException when the entity dead-letters on expiry": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "expiring", msg("default-ttl"), msg("short", withTTL(time.Minute)), msg("too-long", withTTL(time.Hour)))
			clk.Advance(time.Minute)
			wantCounts(t, st, "expiring", Counts{Active: 2, DeadLettered: 1})
			clk.Advance(4 * time.Minute) // the entity default (PT5M) caps the hour-long TTL
			wantCounts(t, st, "expiring", Counts{DeadLettered: 3})
			for range 3 {
				dl := receiveNow(t, st, "expiring/$deadletterqueue", "", ReceiveAndDelete)
				if dl.AMQP.ApplicationProperties[PropDeadLetterReason] != ReasonTTLExpired || !dl.ExpiresAt.IsZero() {
					t.Fatalf("dead-lettered %q: props %v, expires %v", dl.MessageID, dl.AMQP.ApplicationProperties, dl.ExpiresAt)
				}
			}
		},
		"TTL expiry drops the message when the entity does not dead-letter on expiry": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "vanishing", msg("a"))
			clk.Advance(5 * time.Minute)
			wantCounts(t, st, "vanishing", Counts{})
		},
		"a locked message expires only once its lock ends": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "expiring", msg("a", withTTL(10*time.Second)))
			d := mustReceive(t, st, "expiring", "")
			clk.Advance(20 * time.Second)
			wantCounts(t, st, "expiring", Counts{Locked: 1})
			if err := st.Abandon("expiring", d.LockToken, nil); err != nil {
				t.Fatal(err)
			}
			wantCounts(t, st, "expiring", Counts{DeadLettered: 1})
		},
		"a duplicate within the window is accepted but not enqueued, and one after the window is": func(t *testing.T, st *Store, clk *clock.Clock) {
			first := send(t, st, "dedup", msg("same"))
			clk.Advance(59 * time.Second)
			dup := send(t, st, "dedup", msg("same"), msg("other"))
			if dup[0] != first[0] {
				t.Fatalf("duplicate got sequence number %d, want the first copy's %d", dup[0], first[0])
			}
			wantCounts(t, st, "dedup", Counts{Active: 2})
			clk.Advance(time.Second) // a minute after the first send
			send(t, st, "dedup", msg("same"))
			wantCounts(t, st, "dedup", Counts{Active: 3})
		},
		"a scheduled message becomes active exactly at its time and cancelling removes another": func(t *testing.T, st *Store, clk *clock.Clock) {
			at := t0.Add(time.Hour)
			seqs, err := st.Schedule("work", msg("later", withScheduled(at)), msg("cancelled", withScheduled(at)))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CancelScheduled("work", seqs[1]); err != nil {
				t.Fatal(err)
			}
			wantCounts(t, st, "work", Counts{Scheduled: 1})
			clk.Advance(time.Hour - time.Nanosecond)
			if receiveNow(t, st, "work", "", PeekLock) != nil {
				t.Fatal("scheduled message delivered before its time")
			}
			clk.Advance(time.Nanosecond)
			d := mustReceive(t, st, "work", "")
			if d.MessageID != "later" || d.SequenceNumber != seqs[0] || !d.EnqueuedTime.Equal(at) {
				t.Fatalf("got %q seq %d enqueued %v", d.MessageID, d.SequenceNumber, d.EnqueuedTime)
			}
			if receiveNow(t, st, "work", "", PeekLock) != nil {
				t.Fatal("the cancelled message was delivered")
			}
			if err := st.CancelScheduled("work", seqs[0]); !errors.Is(err, ErrMessageNotFound) {
				t.Fatalf("cancelling an activated message = %v, want ErrMessageNotFound", err)
			}
		},
		"a plain send with a future scheduled enqueue time is scheduled": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("later", withScheduled(t0.Add(time.Minute))))
			wantCounts(t, st, "work", Counts{Scheduled: 1})
			clk.Advance(time.Minute)
			wantCounts(t, st, "work", Counts{Active: 1})
		},
		"messages of a session arrive in FIFO order and only to that session": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "sessions", msg("a1", withSession("a")), msg("b1", withSession("b")), msg("a2", withSession("a")), msg("a3", withSession("a")))
			accept(t, st, "sessions", "a", "link-1")
			for _, want := range []string{"a1", "a2", "a3"} {
				d := mustReceive(t, st, "sessions", "a")
				if d.MessageID != want || d.SessionID != "a" {
					t.Fatalf("got %q of session %q, want %q", d.MessageID, d.SessionID, want)
				}
			}
			if receiveNow(t, st, "sessions", "a", PeekLock) != nil {
				t.Fatal("session a delivered a message of another session")
			}
		},
		"a session has one owner at a time": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "sessions", msg("a1", withSession("a")))
			accept(t, st, "sessions", "a", "link-1")
			if _, err := st.AcceptSession(context.Background(), "sessions", "a", "link-2"); !errors.Is(err, ErrSessionCannotBeLocked) {
				t.Fatalf("second owner: %v, want ErrSessionCannotBeLocked", err)
			}
			st.ReleaseSession("link-1")
			accept(t, st, "sessions", "a", "link-2")
		},
		"accept-next skips locked sessions and times out when none is free": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "sessions", msg("a1", withSession("a")), msg("b1", withSession("b")))
			if lk := accept(t, st, "sessions", "", "link-1"); lk.SessionID != "a" {
				t.Fatalf("first accept-next got %q, want the oldest session a", lk.SessionID)
			}
			if lk := accept(t, st, "sessions", "", "link-2"); lk.SessionID != "b" {
				t.Fatalf("second accept-next got %q, want b", lk.SessionID)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if _, err := st.AcceptSession(ctx, "sessions", "", "link-3"); !errors.Is(err, ErrTimeout) {
				t.Fatalf("accept-next with every session locked = %v, want ErrTimeout", err)
			}
		},
		"accept-next waits for a session that gets a message": func(t *testing.T, st *Store, clk *clock.Clock) {
			got := make(chan *SessionLock, 1)
			go func() {
				lk, err := st.AcceptSession(context.Background(), "sessions", "", "link-1")
				if err != nil {
					t.Error(err)
				}
				got <- lk
			}()
			send(t, st, "sessions", msg("c1", withSession("c")))
			if lk := <-got; lk == nil || lk.SessionID != "c" {
				t.Fatalf("accept-next got %+v, want session c", lk)
			}
		},
		"session state round-trips and needs the session lock": func(t *testing.T, st *Store, clk *clock.Clock) {
			if _, err := st.GetSessionState("sessions", "a"); !errors.Is(err, ErrSessionLockLost) {
				t.Fatalf("state of an unlocked session: %v, want ErrSessionLockLost", err)
			}
			accept(t, st, "sessions", "a", "link-1")
			if err := st.SetSessionState("sessions", "a", []byte("step 2")); err != nil {
				t.Fatal(err)
			}
			got, err := st.GetSessionState("sessions", "a")
			if err != nil || string(got) != "step 2" {
				t.Fatalf("state = %q, %v", got, err)
			}
			ids, err := st.ListSessions("sessions")
			if err != nil || len(ids) != 1 || ids[0] != "a" {
				t.Fatalf("ListSessions = %v, %v", ids, err)
			}
			if err := st.SetSessionState("sessions", "a", nil); err != nil {
				t.Fatal(err)
			}
			if got, _ := st.GetSessionState("sessions", "a"); got != nil {
				t.Fatalf("cleared state = %q", got)
			}
		},
		"session lock expiry unlocks its messages with a delivery counted and signals Lost": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "sessions", msg("a1", withSession("a")))
			lk := accept(t, st, "sessions", "a", "link-1")
			d := mustReceive(t, st, "sessions", "a")
			if !d.LockedUntil.Equal(lk.LockedUntil) {
				t.Fatalf("message locked until %v, session until %v", d.LockedUntil, lk.LockedUntil)
			}
			clk.Advance(lock / 2)
			until, err := st.RenewSessionLock("sessions", "a")
			if err != nil || !until.Equal(t0.Add(lock/2+lock)) {
				t.Fatalf("RenewSessionLock = %v, %v", until, err)
			}
			clk.Advance(lock)
			select {
			case <-lk.Lost:
			default:
				t.Fatal("Lost not closed after the session lock expired")
			}
			if err := st.Complete("sessions", d.LockToken); !errors.Is(err, ErrLockLost) {
				t.Fatalf("Complete after session expiry = %v, want ErrLockLost", err)
			}
			if _, err := st.Receive(context.Background(), "sessions", "a", PeekLock); !errors.Is(err, ErrSessionLockLost) {
				t.Fatalf("Receive on the expired session = %v, want ErrSessionLockLost", err)
			}
			accept(t, st, "sessions", "a", "link-2")
			if d2 := mustReceive(t, st, "sessions", "a"); d2.DeliveryCount != 1 {
				t.Fatalf("redelivered count %d, want 1", d2.DeliveryCount)
			}
		},
		"deferred messages are received only by sequence number": func(t *testing.T, st *Store, clk *clock.Clock) {
			seqs := send(t, st, "work", msg("a"), msg("b"))
			d := mustReceive(t, st, "work", "")
			if err := st.Defer("work", d.LockToken, nil); err != nil {
				t.Fatal(err)
			}
			if next := mustReceive(t, st, "work", ""); next.MessageID != "b" {
				t.Fatalf("after deferring a, Receive got %q", next.MessageID)
			}
			wantCounts(t, st, "work", Counts{Locked: 1, Deferred: 1})
			if _, err := st.ReceiveDeferred("work", []int64{seqs[1]}, PeekLock, ""); !errors.Is(err, ErrMessageNotFound) {
				t.Fatalf("ReceiveDeferred of a non-deferred message = %v, want ErrMessageNotFound", err)
			}
			ds, err := st.ReceiveDeferred("work", []int64{seqs[0]}, PeekLock, "")
			if err != nil || len(ds) != 1 || ds[0].MessageID != "a" || ds[0].State != StateDeferred || ds[0].LockToken == uuid.Nil {
				t.Fatalf("ReceiveDeferred = %+v, %v", ds, err)
			}
			if err := st.Complete("work", ds[0].LockToken); err != nil {
				t.Fatal(err)
			}
			wantCounts(t, st, "work", Counts{Locked: 1})
		},
		"a topic fans out to every subscription whose rules match": func(t *testing.T, st *Store, clk *clock.Clock) {
			red := withProps(map[string]any{"color": "red", "coats": int32(2)})
			send(t, st, "events",
				msg("red-paint", withSubject("paint"), red),
				msg("blue-paint", withSubject("paint"), withProps(map[string]any{"color": "blue", "coats": int64(2)})),
				msg("red-other", withSubject("other"), red))
			wantCounts(t, st, "events/Subscriptions/all", Counts{Active: 3})
			wantCounts(t, st, "events/Subscriptions/nothing", Counts{})
			wantCounts(t, st, "EVENTS/subscriptions/RED", Counts{Active: 1})
			d := mustReceive(t, st, "events/Subscriptions/red", "")
			all := mustReceive(t, st, "events/Subscriptions/all", "")
			if d.MessageID != "red-paint" || d.SequenceNumber != all.SequenceNumber || d.Path != "events/Subscriptions/red" {
				t.Fatalf("red got %q seq %d path %q; all's copy has seq %d", d.MessageID, d.SequenceNumber, d.Path, all.SequenceNumber)
			}
			wantCounts(t, st, "events", Counts{Active: 2, Locked: 2})
		},
		"a message can be settled from another link by its lock token": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"))
			d := mustReceive(t, st, "work", "")
			// The management link (or another receiver) knows only the address and the token.
			if err := st.Complete("WORK", d.LockToken); err != nil {
				t.Fatal(err)
			}
			wantCounts(t, st, "work", Counts{})
			if err := st.Complete("work", d.LockToken); !errors.Is(err, ErrLockLost) {
				t.Fatalf("second Complete = %v, want ErrLockLost", err)
			}
			if err := st.Abandon("work", uuid.New(), nil); !errors.Is(err, ErrLockLost) {
				t.Fatalf("Abandon with an unknown token = %v, want ErrLockLost", err)
			}
		},
		"dead-lettering sets reason and description and the DLQ address is case-insensitive": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "events", msg("a"))
			d := mustReceive(t, st, "events/Subscriptions/all", "")
			if err := st.DeadLetter("events/Subscriptions/all", d.LockToken, "bad input", "field x is missing", map[string]any{"extra": "yes"}); err != nil {
				t.Fatal(err)
			}
			for _, addr := range []string{"events/Subscriptions/all/$DeadLetterQueue", "Events/subscriptions/ALL/$deadletterqueue", "/events/Subscriptions/all/$DEADLETTERQUEUE"} {
				ent, err := st.Resolve(addr)
				if err != nil || !ent.DeadLetter || ent.Path != "events/Subscriptions/all/$DeadLetterQueue" {
					t.Fatalf("Resolve(%q) = %+v, %v", addr, ent, err)
				}
			}
			dl := mustReceive(t, st, "Events/subscriptions/ALL/$deadletterqueue", "")
			p := dl.AMQP.ApplicationProperties
			if p[PropDeadLetterReason] != "bad input" || p[PropDeadLetterErrorDescription] != "field x is missing" || p["extra"] != "yes" {
				t.Fatalf("dead-lettered properties %v", p)
			}
			if err := st.DeadLetter("events/Subscriptions/all/$DeadLetterQueue", dl.LockToken, "again", "", nil); !errors.Is(err, ErrInvalid) {
				t.Fatalf("dead-lettering from the DLQ = %v, want ErrInvalid", err)
			}
		},
		"receive-and-delete removes the message at once": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"))
			d := receiveNow(t, st, "work", "", ReceiveAndDelete)
			if d == nil || d.LockToken != uuid.Nil {
				t.Fatalf("got %+v", d)
			}
			wantCounts(t, st, "work", Counts{})
		},
		"renew lock extends a message lock past its first expiry": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"))
			d := mustReceive(t, st, "work", "")
			clk.Advance(lock - time.Second)
			until, err := st.RenewLock("work", d.LockToken)
			if err != nil || !until[0].Equal(t0.Add(2*lock-time.Second)) {
				t.Fatalf("RenewLock = %v, %v", until, err)
			}
			clk.Advance(lock - time.Second)
			if err := st.Complete("work", d.LockToken); err != nil {
				t.Fatalf("Complete within the renewed lock: %v", err)
			}
		},
		"peek returns active, locked, deferred and scheduled messages without locking them": func(t *testing.T, st *Store, clk *clock.Clock) {
			seqs := send(t, st, "work", msg("a"), msg("b"), msg("c"), msg("later", withScheduled(t0.Add(time.Hour))))
			d := mustReceive(t, st, "work", "")
			if err := st.Defer("work", d.LockToken, nil); err != nil {
				t.Fatal(err)
			}
			mustReceive(t, st, "work", "") // b locked
			got, err := st.Peek("work", seqs[0], 10, "")
			if err != nil || len(got) != 4 {
				t.Fatalf("Peek = %d messages, %v", len(got), err)
			}
			wantStates := []MessageState{StateDeferred, StateActive, StateActive, StateScheduled}
			for i, m := range got {
				if m.SequenceNumber != seqs[i] || m.State != wantStates[i] {
					t.Fatalf("peeked #%d: seq %d state %v, want %d %v", i, m.SequenceNumber, m.State, seqs[i], wantStates[i])
				}
			}
			if page, _ := st.Peek("work", seqs[2], 1, ""); len(page) != 1 || page[0].MessageID != "c" {
				t.Fatalf("Peek from seq %d = %+v", seqs[2], page)
			}
			wantCounts(t, st, "work", Counts{Active: 1, Locked: 1, Deferred: 1, Scheduled: 1})
		},
		"WaitIdle returns once the last message is settled": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"))
			done := make(chan error, 1)
			go func() { done <- st.WaitIdle(context.Background(), "work") }()
			d := mustReceive(t, st, "work", "")
			select {
			case err := <-done:
				t.Fatalf("WaitIdle returned %v while a message is locked", err)
			default:
			}
			if err := st.Complete("work", d.LockToken); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		},
		"sending without SessionId to a session queue is rejected naming the message": func(t *testing.T, st *Store, clk *clock.Clock) {
			_, err := st.Send("sessions", msg("ok", withSession("s")), msg("lost-one"))
			if !errors.Is(err, ErrInvalid) || !containsAll(err.Error(), "lost-one", "sessions", "SessionId") {
				t.Fatalf("Send = %v", err)
			}
			wantCounts(t, st, "sessions", Counts{}) // nothing of the batch was stored
		},
		"unknown entities are not found and topics cannot be received from": func(t *testing.T, st *Store, clk *clock.Clock) {
			for _, addr := range []string{"nope", "events/Subscriptions/nope", "events/$DeadLetterQueue", "work/$DeadLetterQueue/$DeadLetterQueue"} {
				if _, err := st.Resolve(addr); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Resolve(%q) = %v, want ErrNotFound", addr, err)
				}
			}
			if _, err := st.Receive(context.Background(), "events", "", PeekLock); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Receive from a topic = %v, want ErrInvalid", err)
			}
			if _, err := st.Send("work/$DeadLetterQueue", msg("a")); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Send to a DLQ = %v, want ErrInvalid", err)
			}
		},
		"a delivered message carries its effective TTL, capped by the entity default": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "expiring", msg("long", withTTL(time.Hour)), msg("short", withTTL(time.Minute)), msg("none"))
			for _, want := range []time.Duration{5 * time.Minute, time.Minute, 5 * time.Minute} {
				d := receiveNow(t, st, "expiring", "", ReceiveAndDelete)
				if d.AMQP.Header == nil || d.AMQP.Header.TTL != want || !d.ExpiresAt.Equal(t0.Add(want)) {
					t.Fatalf("%q: header %+v, expires %v; want TTL %v", d.MessageID, d.AMQP.Header, d.ExpiresAt, want)
				}
			}
		},
		"ForwardTo moves messages on and ForwardDeadLetteredMessagesTo moves dead letters": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "inbox", msg("a"))
			wantCounts(t, st, "inbox", Counts{})
			wantCounts(t, st, "events/Subscriptions/all", Counts{Active: 1})
			send(t, st, "fragile", msg("b"))
			d := mustReceive(t, st, "fragile", "")
			if err := st.Abandon("fragile", d.LockToken, nil); err != nil {
				t.Fatal(err)
			}
			wantCounts(t, st, "fragile", Counts{})
			g := mustReceive(t, st, "graveyard", "")
			if g.MessageID != "b" || g.DeadLetterSource != "fragile" || g.AMQP.ApplicationProperties[PropDeadLetterReason] != ReasonMaxDeliveryCountExceeded {
				t.Fatalf("forwarded dead letter %q from %q props %v", g.MessageID, g.DeadLetterSource, g.AMQP.ApplicationProperties)
			}
		},
		"a message body handed out is a copy the caller may change": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a", withProps(map[string]any{"k": "v"})))
			d := mustReceive(t, st, "work", "")
			d.AMQP.ApplicationProperties["k"] = "changed"
			d.AMQP.Annotations = nil
			peeked, _ := st.Peek("work", 0, 1, "")
			if peeked[0].AMQP.ApplicationProperties["k"] != "v" {
				t.Fatalf("store copy changed through a delivery: %v", peeked[0].AMQP.ApplicationProperties)
			}
		},
		"Close stops every timer and wakes waiting receivers": func(t *testing.T, st *Store, clk *clock.Clock) {
			send(t, st, "work", msg("a"), msg("later", withScheduled(t0.Add(time.Hour))))
			mustReceive(t, st, "work", "")
			done := make(chan error, 1)
			go func() { _, err := st.Receive(context.Background(), "work", "", PeekLock); done <- err }()
			st.Close()
			if err := <-done; !errors.Is(err, ErrClosed) {
				t.Fatalf("waiting Receive after Close = %v, want ErrClosed", err)
			}
			if p := clk.Pending(); len(p) != 0 {
				t.Fatalf("%d timers still pending after Close", len(p))
			}
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			st, clk := newTestStore(t)
			test(t, st, clk)
		})
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
