package servicebus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/servicebus"
)

func to[T any](v T) *T { return &v }

// deadLetter puts a message on queue (in session, if any) and dead-letters it as a
// consumer would, leaving it in queue's dead-letter queue.
func (f *fixture) deadLetter(t *testing.T, queue string, m *azservicebus.Message) {
	t.Helper()
	ctx := context.Background()
	s, err := f.client.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := s.SendMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	var got *azservicebus.ReceivedMessage
	var settle func(*azservicebus.ReceivedMessage) error
	if m.SessionID != nil {
		sr, err := f.client.AcceptSessionForQueue(ctx, queue, *m.SessionID, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sr.Close(ctx)
		got = f.receive(t, sr, 1)[0]
		settle = func(x *azservicebus.ReceivedMessage) error {
			return sr.DeadLetterMessage(ctx, x, &azservicebus.DeadLetterOptions{Reason: to("test")})
		}
	} else {
		r, err := f.client.NewReceiverForQueue(queue, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		got = f.receive(t, r, 1)[0]
		settle = func(x *azservicebus.ReceivedMessage) error {
			return r.DeadLetterMessage(ctx, x, &azservicebus.DeadLetterOptions{Reason: to("test")})
		}
	}
	if err := settle(got); err != nil {
		t.Fatal(err)
	}
}

func TestResubmittingADeadLetterKeepsItsSessionAndPropertiesUnderANewID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.deadLetter(t, contract.QueueRotations, &azservicebus.Message{MessageID: to("op-1"), SessionID: to("pat-a"), Subject: to("wakeup"),
		Body: []byte(`{"secret":"pat-a"}`), ApplicationProperties: map[string]any{"secret": "pat-a"}})
	// A second dead letter that must stay where it is.
	f.deadLetter(t, contract.QueueRotations, &azservicebus.Message{MessageID: to("op-2"), SessionID: to("pat-b"), Body: []byte(`{}`)})

	m, newID, err := f.bus.ResubmitDeadLetter(ctx, contract.QueueRotations, "op-1")
	if err != nil {
		t.Fatal(err)
	}
	if m.DeadLetterReason != "test" || newID == "op-1" || !strings.HasSuffix(newID, "op-1") {
		t.Errorf("resubmitted %+v as %q", m, newID)
	}
	sr, err := f.client.AcceptSessionForQueue(ctx, contract.QueueRotations, "pat-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close(ctx)
	got := f.receive(t, sr, 1)[0]
	if got.MessageID != newID || string(got.Body) != `{"secret":"pat-a"}` || got.ApplicationProperties["secret"] != "pat-a" ||
		got.Subject == nil || *got.Subject != "wakeup" {
		t.Errorf("the copy: id %s, body %s, properties %v, subject %v", got.MessageID, got.Body, got.ApplicationProperties, got.Subject)
	}
	if _, ok := got.ApplicationProperties["DeadLetterReason"]; ok {
		t.Error("the copy carries the original's DeadLetterReason")
	}
	left, err := f.bus.PeekDeadLetters(ctx, contract.QueueRotations, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].MessageID != "op-2" {
		t.Errorf("dead letters left: %+v, want op-2 only", left)
	}
}

func TestDiscardingAMessageThatIsNotThereFailsAndTouchesNothing(t *testing.T) {
	f := newFixture(t)
	f.deadLetter(t, contract.QueueOffboarding, &azservicebus.Message{MessageID: to("hr-1"), Body: []byte(`{}`)})
	_, err := f.bus.DiscardDeadLetter(context.Background(), contract.QueueOffboarding, "hr-2")
	if !errors.Is(err, servicebus.ErrNoSuchMessage) {
		t.Fatalf("discard hr-2: %v, want ErrNoSuchMessage", err)
	}
	if c := f.counts(t, contract.QueueOffboarding+"/$DeadLetterQueue"); c.Active != 1 {
		t.Errorf("dead-letter queue counts %+v, want hr-1 still there", c)
	}
	if m, err := f.bus.DiscardDeadLetter(context.Background(), contract.QueueOffboarding, "hr-1"); err != nil || m.MessageID != "hr-1" {
		t.Fatalf("discard hr-1: %+v, %v", m, err)
	}
	if c := f.counts(t, contract.QueueOffboarding+"/$DeadLetterQueue"); c.Active != 0 {
		t.Errorf("dead-letter queue counts %+v after discard, want empty", c)
	}
}

func TestScheduledRevocationsArePeekedAndCancelledBySequenceNumber(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := rotation.Revocation{Secret: "pat-a", Org: "contoso", PATID: "0f8fad5b-d9cb-469f-a165-70867728950e", Op: "op-1", Owner: "svc@contoso.com", Account: "svc@contoso.com",
		GraceEnd: start.Add(72 * time.Hour)}
	if err := f.bus.ScheduleRevocation(ctx, r, r.GraceEnd); err != nil {
		t.Fatal(err)
	}
	// An active (due) revocation is not a scheduled one.
	due := r
	due.PATID, due.GraceEnd = "1f8fad5b-d9cb-469f-a165-70867728950e", start
	if err := f.bus.ScheduleRevocation(ctx, due, start); err != nil {
		t.Fatal(err)
	}
	got, err := f.bus.PeekScheduled(ctx, contract.QueueRevocations)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].MessageID != r.MessageID() || !got[0].ScheduledAt.Equal(r.GraceEnd) {
		t.Fatalf("scheduled: %+v, want only %s at %s", got, r.MessageID(), r.GraceEnd)
	}
	if err := f.bus.CancelScheduled(ctx, contract.QueueRevocations, got[0].SequenceNumber); err != nil {
		t.Fatal(err)
	}
	if got, err := f.bus.PeekScheduled(ctx, contract.QueueRevocations); err != nil || len(got) != 0 {
		t.Errorf("after cancel: %+v, %v", got, err)
	}
}

func TestAResubmittedIDFitsServiceBusLimit(t *testing.T) {
	id := servicebus.ResubmittedID(strings.Repeat("x", 128), start)
	if len(id) > 128 || !strings.HasPrefix(id, "resubmit-") {
		t.Errorf("ResubmittedID = %q (%d chars)", id, len(id))
	}
}
