package servicebus

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	goamqp "github.com/Azure/go-amqp"
)

func TestSendReceiveComplete(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", &azservicebus.Message{Body: []byte("hello"), ApplicationProperties: map[string]any{"k": "v"}})
	r := f.receiver(t, "plain", nil)
	m := receiveOne(t, r)
	if string(m.Body) != "hello" || m.ApplicationProperties["k"] != "v" {
		t.Fatalf("got body %q props %v", m.Body, m.ApplicationProperties)
	}
	if m.DeliveryCount != 1 {
		t.Errorf("DeliveryCount = %d, want 1", m.DeliveryCount)
	}
	if m.SequenceNumber == nil || m.EnqueuedTime == nil || m.LockedUntil == nil {
		t.Fatalf("missing broker annotations: seq %v enq %v locked %v", m.SequenceNumber, m.EnqueuedTime, m.LockedUntil)
	}
	if want := f.clk.Now().Add(30 * time.Second); !m.LockedUntil.Equal(want.Truncate(time.Millisecond)) {
		t.Errorf("LockedUntil = %v, want %v", m.LockedUntil, want)
	}
	if c := f.counts(t, "plain"); c.Locked != 1 {
		t.Errorf("counts before complete = %+v", c)
	}
	if err := r.CompleteMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if err := f.broker.WaitIdle(ctxT(t, 5*time.Second), "plain"); err != nil {
		t.Fatal(err)
	}
}

func TestBatchSendDeliversEveryMessage(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, "plain")
	// AddMessage fails for every message when the broker advertises no max-message-size.
	batch, err := s.NewMessageBatch(ctxT(t, 10*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"one", "two", "three"} {
		if err := batch.AddMessage(body(b), nil); err != nil {
			t.Fatalf("add %s: %v", b, err)
		}
	}
	if err := s.SendMessageBatch(ctxT(t, 10*time.Second), batch, nil); err != nil {
		t.Fatal(err)
	}
	if c := f.counts(t, "plain"); c.Active != 3 {
		t.Fatalf("counts = %+v, want 3 active", c)
	}
	r := f.receiver(t, "plain", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	var got []string
	for len(got) < 3 {
		msgs, err := r.ReceiveMessages(ctxT(t, 10*time.Second), 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, string(m.Body))
		}
	}
	if got[0] != "one" || got[1] != "two" || got[2] != "three" {
		t.Fatalf("received %v, want one two three in order", got)
	}
	if c := f.counts(t, "plain"); c.Active != 0 || c.Locked != 0 {
		t.Fatalf("receive-and-delete left %+v", c)
	}
}

func TestLargeMessagesCrossFrameBoundaries(t *testing.T) {
	f := newFixture(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 200*1024/16) // 200 KiB: several 64 KiB frames each way
	f.send(t, "plain", &azservicebus.Message{Body: big})
	m := receiveOne(t, f.receiver(t, "plain", nil))
	if !bytes.Equal(m.Body, big) {
		t.Fatalf("body of %d bytes came back as %d bytes", len(big), len(m.Body))
	}
	tooBig := &azservicebus.Message{Body: make([]byte, MaxMessageSize+1)}
	err := f.sender(t, "plain").SendMessage(ctxT(t, 10*time.Second), tooBig, nil)
	if !errors.Is(err, azservicebus.ErrMessageTooLarge) {
		t.Fatalf("sending %d bytes: %v, want ErrMessageTooLarge", len(tooBig.Body), err)
	}
}

func TestAbandonRedeliversWithHigherDeliveryCount(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("x"))
	r := f.receiver(t, "plain", nil)
	m := receiveOne(t, r)
	if err := r.AbandonMessage(ctxT(t, 10*time.Second), m, &azservicebus.AbandonMessageOptions{
		PropertiesToModify: map[string]any{"attempt": "first"}}); err != nil {
		t.Fatal(err)
	}
	m2 := receiveOne(t, r)
	if m2.DeliveryCount != 2 || m2.ApplicationProperties["attempt"] != "first" {
		t.Fatalf("redelivery: DeliveryCount %d props %v, want 2 and attempt=first", m2.DeliveryCount, m2.ApplicationProperties)
	}
	if *m2.SequenceNumber != *m.SequenceNumber {
		t.Fatalf("sequence number changed %d → %d", *m.SequenceNumber, *m2.SequenceNumber)
	}
}

func TestDeferThenReceiveDeferredBySequenceNumber(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("later"))
	r := f.receiver(t, "plain", nil)
	m := receiveOne(t, r)
	if err := r.DeferMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
		t.Fatal(err)
	}
	if c := f.counts(t, "plain"); c.Active != 0 || c.Deferred != 1 {
		t.Fatalf("after defer counts = %+v", c)
	}
	got, err := r.ReceiveDeferredMessages(ctxT(t, 10*time.Second), []int64{*m.SequenceNumber}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0].Body) != "later" || got[0].State != azservicebus.MessageStateDeferred {
		t.Fatalf("deferred receive = %+v", got)
	}
	if err := r.CompleteMessage(ctxT(t, 10*time.Second), got[0], nil); err != nil {
		t.Fatalf("complete deferred: %v", err)
	}
	if c := f.counts(t, "plain"); c.Deferred != 0 || c.Locked != 0 {
		t.Fatalf("after complete counts = %+v", c)
	}
}

func TestDeadLetterWithReasonGoesToTheDeadLetterQueue(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("poison"))
	r := f.receiver(t, "plain", nil)
	m := receiveOne(t, r)
	before := f.broker.nextID.Load()
	reason, desc := "BadInput", "field x missing"
	if err := r.DeadLetterMessage(ctxT(t, 10*time.Second), m, &azservicebus.DeadLetterOptions{Reason: &reason, ErrorDescription: &desc}); err != nil {
		t.Fatal(err)
	}
	// Answering the dead-letter disposition wrongly makes the SDK reconnect and retry.
	if after := f.broker.nextID.Load(); after != before {
		t.Fatalf("dead-lettering opened %d new connections; the settlement answer was not accepted", after-before)
	}
	if c := f.counts(t, "plain"); c.DeadLettered != 1 || c.Active != 0 {
		t.Fatalf("counts = %+v", c)
	}
	dlq := f.receiver(t, "plain", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	d := receiveOne(t, dlq)
	if string(d.Body) != "poison" || d.DeadLetterReason == nil || *d.DeadLetterReason != reason ||
		d.DeadLetterErrorDescription == nil || *d.DeadLetterErrorDescription != desc {
		t.Fatalf("DLQ message body %q reason %v desc %v", d.Body, d.DeadLetterReason, d.DeadLetterErrorDescription)
	}
	if err := dlq.CompleteMessage(ctxT(t, 10*time.Second), d, nil); err != nil {
		t.Fatal(err)
	}
}

// patrol dead-letters a message the Functions host holds, by lock token alone: the SDK
// then settles through update-disposition on the management link.
func TestSettleByLockTokenFromAnotherReceiver(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("held"), body("held too"))
	holder := f.receiver(t, "plain", nil)
	m := receiveOne(t, holder)
	m2 := receiveOne(t, holder)
	other := f.receiver(t, "plain", nil)
	reason := "Revoked"
	if err := other.DeadLetterMessage(ctxT(t, 10*time.Second), &azservicebus.ReceivedMessage{LockToken: m.LockToken}, &azservicebus.DeadLetterOptions{Reason: &reason}); err != nil {
		t.Fatalf("dead-letter by lock token: %v", err)
	}
	if err := other.CompleteMessage(ctxT(t, 10*time.Second), &azservicebus.ReceivedMessage{LockToken: m2.LockToken}, nil); err != nil {
		t.Fatalf("complete by lock token: %v", err)
	}
	if c := f.counts(t, "plain"); c.DeadLettered != 1 || c.Locked != 0 || c.Active != 0 {
		t.Fatalf("counts = %+v", c)
	}
}

// D5: on an entity that requires sessions only the session receiver holding the
// session may settle its messages; a lock token alone, from another receiver, is
// refused (the Functions host holds pat-rotations' sessions, so patrol cannot settle
// them itself). The session receiver still settles, by link or by management link.
func TestSessionMessageSettlesOnlyThroughItsSessionReceiver(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("s1", "held"), sessionMsg("s1", "held too"))
	sr, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sr.Close(ctxT(t, 5*time.Second)) })
	msgs, err := sr.ReceiveMessages(ctxT(t, 10*time.Second), 2, nil)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("receive: %d messages, %v", len(msgs), err)
	}
	byToken := func(m *azservicebus.ReceivedMessage) *azservicebus.ReceivedMessage {
		return &azservicebus.ReceivedMessage{LockToken: m.LockToken}
	}
	// A receiver on another connection (as patrol's own Bus is to the host's) can only
	// be a session receiver on this queue (a plain one cannot attach); it holds
	// another session.
	c2 := f.newClient(t, f.broker.ConnectionString())
	other, err := c2.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "s2", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close(ctxT(t, 5*time.Second)) })
	// A session receiver's SDK treats lock-lost as recoverable and retries until its
	// context ends, hence the short contexts.
	if err := other.DeadLetterMessage(ctxT(t, time.Second), byToken(msgs[0]), nil); err == nil {
		t.Fatal("dead-letter by lock token from another connection settled a session message")
	}
	if err := other.CompleteMessage(ctxT(t, time.Second), byToken(msgs[1]), nil); err == nil {
		t.Fatal("complete by lock token from another connection settled a session message")
	}
	if c := f.counts(t, "sessions"); c.DeadLettered != 0 || c.Locked != 2 {
		t.Fatalf("after the refused settlements: counts = %+v, want both still locked", c)
	}
	for _, m := range msgs {
		if err := sr.CompleteMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
			t.Fatalf("the session receiver completes its message: %v", err)
		}
	}
}

func TestLockExpiryRedeliversAndOldLockIsLost(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("slow"))
	r := f.receiver(t, "plain", nil)
	m := receiveOne(t, r)
	f.clk.Advance(31 * time.Second)
	m2 := receiveOne(t, r)
	if m2.DeliveryCount != 2 {
		t.Fatalf("redelivered DeliveryCount = %d, want 2", m2.DeliveryCount)
	}
	err := r.CompleteMessage(ctxT(t, 10*time.Second), m, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("complete with the expired lock: %v, want CodeLockLost", err)
	}
	err = r.RenewMessageLock(ctxT(t, 10*time.Second), m, nil)
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("renew the expired lock: %v, want CodeLockLost", err)
	}
	if err := r.CompleteMessage(ctxT(t, 10*time.Second), m2, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRenewLockExtendsTheLock(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("long job"))
	r := f.receiver(t, "plain", nil)
	m := receiveOne(t, r)
	f.clk.Advance(20 * time.Second)
	if err := r.RenewMessageLock(ctxT(t, 10*time.Second), m, nil); err != nil {
		t.Fatal(err)
	}
	if want := f.clk.Now().Add(30 * time.Second).Truncate(time.Millisecond); !m.LockedUntil.Equal(want) {
		t.Fatalf("LockedUntil after renew = %v, want %v", m.LockedUntil, want)
	}
	f.clk.Advance(20 * time.Second) // past the original lock, within the renewed one
	if err := r.CompleteMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
		t.Fatalf("complete within the renewed lock: %v", err)
	}
}

func TestMaxDeliveryCountDeadLetters(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("fails"))
	r := f.receiver(t, "plain", nil)
	for i := 1; i <= 3; i++ {
		m := receiveOne(t, r)
		if int(m.DeliveryCount) != i {
			t.Fatalf("attempt %d has DeliveryCount %d", i, m.DeliveryCount)
		}
		if err := r.AbandonMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if c := f.counts(t, "plain"); c.DeadLettered != 1 || c.Active != 0 {
		t.Fatalf("counts = %+v, want the message dead-lettered", c)
	}
	d := receiveOne(t, f.receiver(t, "plain", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}))
	if d.DeadLetterReason == nil || *d.DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Fatalf("reason = %v", d.DeadLetterReason)
	}
}

func TestTTLExpiryDeadLetters(t *testing.T) {
	f := newFixture(t)
	f.send(t, "expiring", body("stale"), &azservicebus.Message{Body: []byte("short"), TimeToLive: to.Ptr(time.Minute)})
	f.clk.Advance(2 * time.Minute)
	if c := f.counts(t, "expiring"); c.Active != 1 || c.DeadLettered != 1 {
		t.Fatalf("after 2m counts = %+v, want the 1m message expired", c)
	}
	f.clk.Advance(4 * time.Minute)
	if c := f.counts(t, "expiring"); c.Active != 0 || c.DeadLettered != 2 {
		t.Fatalf("after 6m counts = %+v, want both expired", c)
	}
	d := receiveOne(t, f.receiver(t, "expiring", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}))
	if d.DeadLetterReason == nil || *d.DeadLetterReason != "TTLExpiredException" {
		t.Fatalf("reason = %v", d.DeadLetterReason)
	}
}

func TestDuplicateDetectionByMessageID(t *testing.T) {
	f := newFixture(t)
	id := "cmd-1"
	f.send(t, "dedup", &azservicebus.Message{MessageID: &id, Body: []byte("a")}, &azservicebus.Message{MessageID: &id, Body: []byte("b")})
	if c := f.counts(t, "dedup"); c.Active != 1 {
		t.Fatalf("counts = %+v, want the duplicate dropped", c)
	}
	s := f.sender(t, "dedup")
	when := f.clk.Now().Add(time.Hour)
	other := "cmd-2"
	if _, err := s.ScheduleMessages(ctxT(t, 10*time.Second), []*azservicebus.Message{{MessageID: &other}}, when, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ScheduleMessages(ctxT(t, 10*time.Second), []*azservicebus.Message{{MessageID: &other}}, when, nil); err != nil {
		t.Fatal(err)
	}
	if c := f.counts(t, "dedup"); c.Scheduled != 1 {
		t.Fatalf("counts = %+v, want one scheduled despite two schedules of one MessageID", c)
	}
}

func TestScheduledMessagesArriveOnTimeAndCanBeCancelled(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, "plain")
	when := f.clk.Now().Add(time.Hour)
	seqs, err := s.ScheduleMessages(ctxT(t, 10*time.Second), []*azservicebus.Message{body("due"), body("cancelled")}, when, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 2 {
		t.Fatalf("sequence numbers %v", seqs)
	}
	if err := s.CancelScheduledMessages(ctxT(t, 10*time.Second), seqs[1:], nil); err != nil {
		t.Fatal(err)
	}
	// A plain send with ScheduledEnqueueTime is scheduled too.
	later := when.Add(time.Hour)
	if err := s.SendMessage(ctxT(t, 10*time.Second), &azservicebus.Message{Body: []byte("plain send"), ScheduledEnqueueTime: &later}, nil); err != nil {
		t.Fatal(err)
	}
	if c := f.counts(t, "plain"); c.Scheduled != 2 || c.Active != 0 {
		t.Fatalf("counts = %+v, want 2 scheduled", c)
	}
	f.clk.Advance(time.Hour - time.Second)
	if c := f.counts(t, "plain"); c.Active != 0 {
		t.Fatalf("a second early: counts = %+v", c)
	}
	f.clk.Advance(time.Second)
	m := receiveOne(t, f.receiver(t, "plain", nil))
	if string(m.Body) != "due" || m.SequenceNumber == nil || *m.SequenceNumber != seqs[0] {
		t.Fatalf("got %q seq %v, want due seq %d", m.Body, m.SequenceNumber, seqs[0])
	}
	if m.ScheduledEnqueueTime == nil || !m.ScheduledEnqueueTime.Equal(when.Truncate(time.Millisecond)) {
		t.Errorf("ScheduledEnqueueTime = %v, want %v", m.ScheduledEnqueueTime, when)
	}
}

func TestPeekDoesNotLock(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("p1"), body("p2"), body("p3"))
	r := f.receiver(t, "plain", nil)
	first, err := r.PeekMessages(ctxT(t, 10*time.Second), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || string(first[0].Body) != "p1" || string(first[1].Body) != "p2" {
		t.Fatalf("peek = %d messages", len(first))
	}
	rest, err := r.PeekMessages(ctxT(t, 10*time.Second), 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 1 || string(rest[0].Body) != "p3" {
		t.Fatalf("second peek = %d messages, want p3 only", len(rest))
	}
	if c := f.counts(t, "plain"); c.Active != 3 || c.Locked != 0 {
		t.Fatalf("peek changed counts: %+v", c)
	}
}

func TestTopicFansOutToEverySubscription(t *testing.T) {
	f := newFixture(t)
	f.send(t, "events", body("evt"))
	for _, sub := range []string{"a", "b"} {
		r, err := f.client.NewReceiverForSubscription("events", sub, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := receiveOne(t, r)
		if string(m.Body) != "evt" {
			t.Fatalf("subscription %s got %q", sub, m.Body)
		}
		if err := r.CompleteMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
			t.Fatal(err)
		}
		r.Close(ctxT(t, 5*time.Second))
	}
}

func TestErrorPaths(t *testing.T) {
	f := newFixture(t)
	t.Run("an unknown entity is amqp:not-found", func(t *testing.T) {
		err := f.sender(t, "nope").SendMessage(ctxT(t, 10*time.Second), body("x"), nil)
		var amqpErr *goamqp.Error
		if !errors.As(err, &amqpErr) || amqpErr.Condition != "amqp:not-found" {
			t.Fatalf("send to unknown entity: %v", err)
		}
	})
	t.Run("a wrong key is unauthorized", func(t *testing.T) {
		bad := strings.Replace(f.broker.ConnectionString(), DefaultKey, "wrong-key", 1)
		s, err := f.newClient(t, bad).NewSender("plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		err = s.SendMessage(ctxT(t, 10*time.Second), body("x"), nil)
		var sbErr *azservicebus.Error
		if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeUnauthorizedAccess {
			t.Fatalf("send with a wrong key: %v, want CodeUnauthorizedAccess", err)
		}
		if strings.Contains(f.logs.String(), "wrong-key") || strings.Contains(f.logs.String(), DefaultKey) {
			t.Fatal("a key appears in the broker log")
		}
	})
	t.Run("a message without a session cannot go to a session queue", func(t *testing.T) {
		if err := f.sender(t, "sessions").SendMessage(ctxT(t, 10*time.Second), body("x"), nil); err == nil {
			t.Fatal("send without SessionID succeeded")
		}
	})
}

func sessionMsg(session, text string) *azservicebus.Message {
	return &azservicebus.Message{SessionID: &session, Body: []byte(text)}
}

func TestAcceptNamedSessionGetsOnlyItsMessagesInOrder(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("s1", "1a"), sessionMsg("s2", "2a"), sessionMsg("s1", "1b"), sessionMsg("s1", "1c"))
	sr, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close(ctxT(t, 5*time.Second))
	if sr.SessionID() != "s1" {
		t.Fatalf("SessionID = %q", sr.SessionID())
	}
	if want := f.clk.Now().Add(30 * time.Second).Truncate(time.Millisecond); !sr.LockedUntil().Equal(want) {
		t.Errorf("LockedUntil = %v, want %v", sr.LockedUntil(), want)
	}
	// The Go SDK peeks without a session-id: the broker scopes it by the receiver link.
	peeked, err := sr.PeekMessages(ctxT(t, 10*time.Second), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(peeked) != 3 {
		t.Fatalf("peek on session s1 returned %d messages, want its 3", len(peeked))
	}
	var got []string
	for len(got) < 3 {
		msgs, err := sr.ReceiveMessages(ctxT(t, 10*time.Second), 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if *m.SessionID != "s1" {
				t.Fatalf("session s1 received a message of %q", *m.SessionID)
			}
			got = append(got, string(m.Body))
			if err := sr.CompleteMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got[0] != "1a" || got[1] != "1b" || got[2] != "1c" {
		t.Fatalf("order %v, want FIFO", got)
	}
	peeked, err = sr.PeekMessages(ctxT(t, 10*time.Second), 10, nil)
	if err != nil || len(peeked) != 0 {
		t.Fatalf("peek on the drained session: %d messages, %v", len(peeked), err)
	}
}

func TestSessionStateAndLockRenewal(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("st", "x"))
	sr, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "st", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close(ctxT(t, 5*time.Second))
	if s, err := sr.GetSessionState(ctxT(t, 10*time.Second), nil); err != nil || s != nil {
		t.Fatalf("initial state %q, %v", s, err)
	}
	if err := sr.SetSessionState(ctxT(t, 10*time.Second), []byte("step-2"), nil); err != nil {
		t.Fatal(err)
	}
	if s, err := sr.GetSessionState(ctxT(t, 10*time.Second), nil); err != nil || string(s) != "step-2" {
		t.Fatalf("state %q, %v", s, err)
	}
	f.clk.Advance(20 * time.Second)
	if err := sr.RenewSessionLock(ctxT(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if want := f.clk.Now().Add(30 * time.Second).Truncate(time.Millisecond); !sr.LockedUntil().Equal(want) {
		t.Fatalf("LockedUntil after renew = %v, want %v", sr.LockedUntil(), want)
	}
	ids := listSessions(t, f)
	if len(ids) != 1 || ids[0] != "st" {
		t.Fatalf("sessions = %v", ids)
	}
}

// listSessions drives com.microsoft:get-message-sessions through the SDK's pager.
func listSessions(t *testing.T, f *fixture) []string {
	t.Helper()
	var ids []string
	pager := f.client.NewListSessionsForQueuePager("sessions", nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatalf("list sessions: %v", err)
		}
		ids = append(ids, page.Sessions...)
	}
	return ids
}

func TestAcceptNextSessionAndTimeout(t *testing.T) {
	f := newFixture(t)
	t.Run("no session available times out", func(t *testing.T) {
		_, err := f.client.AcceptNextSessionForQueue(ctxT(t, 300*time.Millisecond), "sessions", nil)
		var sbErr *azservicebus.Error
		if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeTimeout {
			t.Fatalf("accept next on an empty queue: %v, want CodeTimeout", err)
		}
	})
	t.Run("a waiting accept gets a session sent later", func(t *testing.T) {
		done := make(chan *azservicebus.SessionReceiver, 1)
		go func() {
			sr, err := f.client.AcceptNextSessionForQueue(ctxT(t, 10*time.Second), "sessions", nil)
			if err != nil {
				t.Error(err)
			}
			done <- sr
		}()
		f.send(t, "sessions", sessionMsg("late", "x"))
		sr := <-done
		if sr == nil {
			return
		}
		defer sr.Close(ctxT(t, 5*time.Second))
		if sr.SessionID() != "late" {
			t.Fatalf("accepted %q", sr.SessionID())
		}
	})
}

func TestConcurrentSessionReceiversNeverShareASession(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("c1", "x"), sessionMsg("c2", "y"))
	var wg sync.WaitGroup
	ids := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sr, err := f.client.AcceptNextSessionForQueue(ctxT(t, 10*time.Second), "sessions", nil)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { sr.Close(ctxT(t, 5*time.Second)) })
			ids[i] = sr.SessionID()
		}()
	}
	wg.Wait()
	if ids[0] == ids[1] || ids[0] == "" || ids[1] == "" {
		t.Fatalf("two receivers got sessions %q and %q", ids[0], ids[1])
	}
	_, err := f.client.AcceptSessionForQueue(ctxT(t, 5*time.Second), "sessions", "c1", nil)
	var amqpErr *goamqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Condition != "com.microsoft:session-cannot-be-locked" {
		t.Fatalf("accepting a locked session: %v, want com.microsoft:session-cannot-be-locked", err)
	}
}

func TestSessionLockExpiryDetachesTheReceiver(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("exp", "x"))
	sr, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "exp", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close(ctxT(t, 5*time.Second))
	m, err := sr.ReceiveMessages(ctxT(t, 10*time.Second), 1, nil)
	if err != nil || len(m) != 1 {
		t.Fatalf("receive: %d, %v", len(m), err)
	}
	f.clk.Advance(31 * time.Second)
	// The session is free again: another receiver gets it, with the message redelivered.
	sr2, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "exp", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr2.Close(ctxT(t, 5*time.Second))
	m2, err := sr2.ReceiveMessages(ctxT(t, 10*time.Second), 1, nil)
	if err != nil || len(m2) != 1 || m2[0].DeliveryCount != 2 {
		t.Fatalf("redelivery: %d messages, %v", len(m2), err)
	}
}
