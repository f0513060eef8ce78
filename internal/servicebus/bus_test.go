package servicebus_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	sbemu "github.com/patrol-dev/patrol/internal/local/emulator/servicebus"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/servicebus"
)

var start = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

type fixture struct {
	clk    *clock.Clock
	faults *fault.Injector
	b      *sbemu.Emulator
	bus    *servicebus.Bus
	client *azservicebus.Client // an independent consumer, as the Functions host is
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := clock.NewManual(start)
	faults := fault.New()
	b, err := sbemu.New(sbemu.Options{Config: store.PatrolConfig(), Clock: clk, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	retry := azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond}
	bus, err := servicebus.NewFromConnectionString(b.ConnectionString(), servicebus.Options{Clock: rotation.NowFunc(clk.Now), RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	c, err := azservicebus.NewClientFromConnectionString(b.ConnectionString(), &azservicebus.ClientOptions{RetryOptions: retry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return &fixture{clk: clk, faults: faults, b: b, bus: bus, client: c}
}

func (f *fixture) counts(t *testing.T, entity string) store.Counts {
	t.Helper()
	c, err := f.b.Counts(entity)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) receive(t *testing.T, r interface {
	ReceiveMessages(context.Context, int, *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []*azservicebus.ReceivedMessage
	for len(out) < n {
		ms, err := r.ReceiveMessages(ctx, n-len(out), nil)
		if err != nil {
			t.Fatalf("receive: %v (got %d of %d)", err, len(out), n)
		}
		out = append(out, ms...)
	}
	return out
}

const patID = "0f8fad5b-d9cb-469f-a165-70867728950e"

func TestScheduledRevocationIsOnePerPATAndDecodesAsTheHandlerExpects(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rev := rotation.Revocation{Secret: "feed", Org: "contoso", PATID: patID, Account: "svc-build@contoso.com", Op: "abcdefgh12345678"}
	at := start.Add(24 * time.Hour)
	for range 2 { // a redelivered command repeats its effects
		if err := f.bus.ScheduleRevocation(ctx, rev, at); err != nil {
			t.Fatal(err)
		}
	}
	if c := f.counts(t, contract.QueueRevocations); c.Scheduled != 1 || c.Active != 0 {
		t.Fatalf("counts = %+v, want one scheduled message", c)
	}
	f.clk.Advance(25 * time.Hour)
	r, err := f.client.NewReceiverForQueue(contract.QueueRevocations, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := f.receive(t, r, 1)[0]
	if m.MessageID != rev.MessageID() || m.ScheduledEnqueueTime == nil || !m.ScheduledEnqueueTime.Equal(at) {
		t.Fatalf("message id %q scheduled %v", m.MessageID, m.ScheduledEnqueueTime)
	}
	cmd, err := contract.DecodeRevocationCommand(m.Body)
	if err != nil {
		t.Fatalf("the handler cannot decode it: %v", err)
	}
	if cmd.PATID != patID || cmd.OperationID != rev.Op || cmd.Account != rev.Account || cmd.Org != "contoso" {
		t.Fatalf("decoded %+v", cmd)
	}
}

func TestWakeUpsAreSessionCommandsThatSurviveDuplicateDetection(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const secret = "feed"
	version := strings.Repeat("ab", 16)
	w := rotation.NewWakeup(secret, version)
	at := start.Add(time.Hour)

	// The command that leads to the wake-up carries the same operation id when it
	// is itself the wake-up: its MessageId must not collide.
	if err := f.bus.SendRotation(ctx, contract.RotationCommand{Secret: secret, OperationID: w.Op, Trigger: contract.TriggerWakeup, Version: version}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.bus.ScheduleWakeup(ctx, w, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.bus.ScheduleWakeup(ctx, w, at.Add(time.Hour)); err != nil { // re-planned
		t.Fatal(err)
	}
	if c := f.counts(t, contract.QueueRotations); c.Active != 1 || c.Scheduled != 2 {
		t.Fatalf("counts = %+v, want the command and two distinct wake-ups", c)
	}
	f.clk.Advance(3 * time.Hour)
	sr, err := f.client.AcceptSessionForQueue(ctx, contract.QueueRotations, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := f.receive(t, sr, 3)
	ids := map[string]bool{}
	for _, m := range ms {
		ids[m.MessageID] = true
		if m.SessionID == nil || *m.SessionID != secret {
			t.Errorf("session = %v, want %s", m.SessionID, secret)
		}
		cmd, err := contract.DecodeRotationCommand(m.Body)
		if err != nil || cmd.Trigger != contract.TriggerWakeup || cmd.Version != version || cmd.OperationID != w.Op {
			t.Errorf("decoded %+v, %v", cmd, err)
		}
	}
	if len(ids) != 3 || !ids[w.Op] {
		t.Errorf("message ids %v: want the command's (%s) and two others", ids, w.Op)
	}
}

func TestSendRotationValidatesBeforeSending(t *testing.T) {
	f := newFixture(t)
	err := f.bus.SendRotation(context.Background(), contract.RotationCommand{Secret: "bad name!", OperationID: "x", Trigger: contract.TriggerManual}, time.Time{})
	if err == nil || !rotation.IsPermanent(err) || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v", err)
	}
	if c := f.counts(t, contract.QueueRotations); c.Active+c.Scheduled != 0 {
		t.Fatalf("something was sent: %+v", c)
	}
}

func TestOutcomesArePublishedWithStatusAsSubject(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	o := rotation.Outcome{Status: rotation.StatusRotated, Secret: "feed", Op: "op1", Trigger: rotation.TriggerManual, PATID: patID, Time: start}
	if err := f.bus.Publish(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := f.bus.ReportFailure(ctx, contract.Failure{Queue: "pat-rotations", MessageID: "m1", Secret: "feed", OperationID: "op2", Reason: contract.DeadLetterMalformed, Description: "bad body"}); err != nil {
		t.Fatal(err)
	}
	r, err := f.client.NewReceiverForSubscription(contract.TopicEvents, "all", nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := f.receive(t, r, 2)
	var got []rotation.Outcome
	for _, m := range ms {
		var x rotation.Outcome
		if err := json.Unmarshal(m.Body, &x); err != nil {
			t.Fatal(err)
		}
		if m.Subject == nil || *m.Subject != string(x.Status) || m.ApplicationProperties["secret"] != "feed" {
			t.Errorf("subject %v, properties %v for %s", m.Subject, m.ApplicationProperties, x.Status)
		}
		got = append(got, x)
	}
	if got[0].Status != rotation.StatusRotated || got[1].Status != rotation.StatusFailed || !strings.Contains(got[1].Message, "bad body") {
		t.Fatalf("outcomes = %+v", got)
	}
}

// Service Bus operations have one retry layer, the SDK's (see the package doc): a
// persistently busy broker costs the first send and three retries, no more (the core
// does not retry effects) and no fewer (only the SDK's loop recovers a lost connection).
func TestAPersistentlyBusyBrokerCostsFourSendsPerCall(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Open the link first: only the send itself is under test.
	if err := f.bus.Publish(ctx, rotation.Outcome{Secret: "feed", Op: "warm", Status: rotation.StatusSkipped}); err != nil {
		t.Fatal(err)
	}
	f.faults.Set("send", fault.Fault{Status: 503})
	err := f.bus.Publish(ctx, rotation.Outcome{Secret: "feed", Op: "busy", Status: rotation.StatusSkipped})
	if err == nil || rotation.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	if n := f.faults.Hits("send"); n != 4 {
		t.Errorf("%d sends, want 4", n)
	}
}

func TestADroppedConnectionIsRecovered(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.bus.Publish(ctx, rotation.Outcome{Secret: "feed", Op: "warm", Status: rotation.StatusSkipped}); err != nil {
		t.Fatal(err)
	}
	f.faults.Set("send", fault.Fault{Drop: true, Times: 1})
	if err := f.bus.Publish(ctx, rotation.Outcome{Secret: "feed", Op: "after-drop", Status: rotation.StatusSkipped}); err != nil {
		t.Fatalf("publish across a dropped connection: %v", err)
	}
	if err := f.bus.Publish(ctx, rotation.Outcome{Secret: "feed", Op: "later", Status: rotation.StatusSkipped}); err != nil {
		t.Fatalf("a later publish: %v", err)
	}
}

func TestAMalformedConnectionStringIsNotEchoed(t *testing.T) {
	const key = "c2VjcmV0LWtleS12YWx1ZQ"
	// A ',' instead of ';' runs the key into the value before it, which the SDK's
	// parse error quotes.
	_, err := servicebus.NewFromConnectionString("Endpoint=sb://localhost:5672/;SharedAccessKeyName=k;UseDevelopmentEmulator=true,SharedAccessKey="+key, servicebus.Options{})
	if err == nil {
		t.Fatal("a malformed connection string was accepted")
	}
	if strings.Contains(err.Error(), key) {
		t.Errorf("the error carries the key: %v", err)
	}
}

// The outcome that ends a rotation operation is readable by operation id from any
// connection, as often as asked (peeked, not consumed); a revocation's outcome, which
// carries the id of the rotation that replaced its PAT, is not the operation's.
func TestReplyReportsHowAnOperationEndedToAnyReader(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	failed := rotation.Outcome{Secret: "feed", Op: "op9", Trigger: rotation.TriggerManual, Status: rotation.StatusFailed,
		Reason: "create", Message: "devops: 400", Time: start}
	retrying := failed
	retrying.Op, retrying.Retryable = "op10", true
	revoked := rotation.Outcome{Secret: "feed", Op: "op11", Trigger: rotation.TriggerRevoke, Status: rotation.StatusRevoked, Time: start}
	for _, o := range []rotation.Outcome{failed, failed, retrying, revoked} {
		if err := f.bus.Publish(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		o, ok, err := f.bus.Reply(ctx, "op9")
		if err != nil || !ok || o.Status != contract.StatusFailed || o.Message != "devops: 400" || o.Secret != "feed" {
			t.Fatalf("reply for op9 = %+v, %v, %v; want the failure", o, ok, err)
		}
	}
	if c := f.counts(t, contract.QueueReplies); c.Active != 1 {
		t.Errorf("pat-replies counts %+v, want the one reply (the repeat dropped as a duplicate)", c)
	}
	for _, op := range []string{"op10", "op11", "never-sent"} {
		if o, ok, err := f.bus.Reply(ctx, op); err != nil || ok {
			t.Errorf("reply for %s = %+v, %v, %v; want none", op, o, ok, err)
		}
	}
}
