package functionapp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// These tests drive the App through its own small interfaces with in-memory stand-ins:
// what is under test is how outcomes and errors map to the handler's answers. The
// adapters themselves are exercised against the emulators in internal/systemtest.

type memRotator struct {
	mu      sync.Mutex
	secrets map[string]rotation.Version
	run     func(secret string, trig rotation.Trigger) (rotation.Outcome, error)
	revoked []rotation.Revocation // what the core was asked to revoke
}

func (m *memRotator) Gather(_ context.Context, secret string) (rotation.Input, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.secrets[secret]
	return rotation.Input{Exists: ok, Current: v, Defaults: defaults}, nil
}

func (m *memRotator) Run(_ context.Context, secret string, trig rotation.Trigger) (rotation.Outcome, error) {
	return m.run(secret, trig)
}

func (m *memRotator) Revoke(_ context.Context, rev rotation.Revocation) (rotation.Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked = append(m.revoked, rev)
	return rotation.Outcome{}, rotation.ErrNotFound
}

func (m *memRotator) ListManaged(context.Context) ([]rotation.Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []rotation.Version
	for _, v := range m.secrets {
		out = append(out, v)
	}
	return out, nil
}

type memBus struct {
	mu          sync.Mutex
	sent        []contract.RotationCommand
	revocations []sentRevocation
	published   []rotation.Outcome
	onSend      func(contract.RotationCommand)
}

type sentRevocation struct {
	cmd contract.RevocationCommand
	id  string
	at  time.Time
}

func (b *memBus) SendRotation(_ context.Context, c contract.RotationCommand, _ time.Time) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	b.sent = append(b.sent, c)
	f := b.onSend
	b.mu.Unlock()
	if f != nil {
		go f(c)
	}
	return nil
}

func (b *memBus) ScheduleRevocation(context.Context, rotation.Revocation, time.Time) error {
	return nil
}

func (b *memBus) SendRevocation(_ context.Context, c contract.RevocationCommand, id string, at time.Time) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.revocations = append(b.revocations, sentRevocation{c, id, at})
	return nil
}

func (b *memBus) Publish(_ context.Context, o rotation.Outcome) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.published = append(b.published, o)
	return nil
}

func newApp(t *testing.T, r *memRotator, b *memBus) *App {
	t.Helper()
	a, err := New(Options{Rotator: r, Inventory: r, Commands: b, Publisher: b, Defaults: defaults, CommandKeys: testKeys,
		Clock: rotation.NowFunc(func() time.Time { return now }), PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type permanentErr struct{}

func (permanentErr) Error() string   { return "policy violation" }
func (permanentErr) Permanent() bool { return true }

func TestRotateMapsTheCoreResult(t *testing.T) {
	tests := map[string]struct {
		outcome rotation.Outcome
		err     error
		retry   bool // the handler must see an error (the message comes back)
	}{
		"a rotation acknowledges the message": {outcome: rotation.Outcome{Status: rotation.StatusRotated}},
		"a permanent failure, already published by the core, acknowledges it": {
			outcome: rotation.Outcome{Status: rotation.StatusFailed}, err: &rotation.StepError{Secret: "pat-a", Step: rotation.StepCreate, Err: permanentErr{}}},
		"a transient failure is returned so the message is retried": {
			outcome: rotation.Outcome{Status: rotation.StatusFailed, Retryable: true}, err: &rotation.StepError{Secret: "pat-a", Step: rotation.StepCreate, Err: errors.New("connection reset")},
			retry: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := &memRotator{run: func(string, rotation.Trigger) (rotation.Outcome, error) { return tc.outcome, tc.err }}
			a := newApp(t, r, &memBus{})
			err := a.Rotate(context.Background(), signed(t, contract.RotationCommand{Secret: "pat-a", OperationID: "op", Trigger: contract.TriggerManual}))
			if (err != nil) != tc.retry {
				t.Fatalf("err = %v, want an error: %v", err, tc.retry)
			}
			if err != nil && handlers.Classify(err) != handlers.Transient {
				t.Errorf("class = %v, want transient", handlers.Classify(err))
			}
		})
	}
}

func TestRotateNowWaitsForTheOutcome(t *testing.T) {
	r := &memRotator{secrets: map[string]rotation.Version{"pat-a": managed("pat-a", ver1, nil)}}
	b := &memBus{}
	a := newApp(t, r, b)
	// The "worker": when the command is sent, run it through the App as the host would.
	r.run = func(secret string, trig rotation.Trigger) (rotation.Outcome, error) {
		r.mu.Lock()
		r.secrets[secret] = managed(secret, ver2, map[string]string{rotation.TagOp: trig.Op, rotation.TagPATID: pat2})
		r.mu.Unlock()
		return rotation.Outcome{Status: rotation.StatusRotated, Secret: secret, Op: trig.Op, Version: ver2, Time: now}, nil
	}
	b.onSend = func(c contract.RotationCommand) { _ = a.Rotate(context.Background(), c) }

	res, err := a.RotateNow(context.Background(), handlers.RotateNowRequest{Secret: "pat-a", OperationID: "op-7", RevokeNow: true, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome == nil || res.Outcome.Status != contract.StatusRotated || res.Outcome.Version != ver2 {
		t.Fatalf("outcome = %+v, want rotated to %s", res.Outcome, ver2)
	}
	if len(b.sent) != 1 || !b.sent[0].RevokeNow || b.sent[0].Trigger != contract.TriggerManual || b.sent[0].OperationID != "op-7" {
		t.Errorf("sent %+v, want one manual command op-7 with revokeNow", b.sent)
	}

	// The same request again: answered from the vault, nothing re-sent.
	res, err = a.RotateNow(context.Background(), handlers.RotateNowRequest{Secret: "pat-a", OperationID: "op-7"})
	if err != nil || res.Outcome == nil || len(b.sent) != 1 {
		t.Errorf("a retried request: outcome %+v, err %v, %d commands sent (want 1)", res.Outcome, err, len(b.sent))
	}
}

func TestRotateNowWithoutWaitAnswersAtOnce(t *testing.T) {
	r := &memRotator{secrets: map[string]rotation.Version{"pat-a": managed("pat-a", ver1, nil)}}
	a := newApp(t, r, &memBus{})
	res, err := a.RotateNow(context.Background(), handlers.RotateNowRequest{Secret: "pat-a", OperationID: "op-8"})
	if err != nil || res.Outcome != nil || res.OperationID != "op-8" {
		t.Errorf("res = %+v, err = %v; want 202-style (no outcome) with the operation id", res, err)
	}
	if _, err := a.RotateNow(context.Background(), handlers.RotateNowRequest{Secret: "nope", OperationID: "op-9"}); handlers.Classify(err) != handlers.NotFound {
		t.Errorf("unknown secret: err = %v, want not found", err)
	}
}

func TestOffboardPublishesNeedsAttention(t *testing.T) {
	r := &memRotator{secrets: map[string]rotation.Version{
		"pat-a": managed("pat-a", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com"}),
		"pat-b": managed("pat-b", ver1, map[string]string{rotation.TagServiceAccount: "alice@contoso.com", rotation.TagOwner: "alice@contoso.com"}),
		"pat-c": managed("pat-c", ver1, nil),
	}}
	b := &memBus{}
	a := newApp(t, r, b)
	err := a.Offboard(context.Background(), contract.OffboardingMessage{EventID: "hr-1", Person: contract.Person{UPN: "alice@contoso.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.sent) != 1 || b.sent[0].Secret != "pat-a" {
		t.Errorf("sent %+v, want one command for pat-a", b.sent)
	}
	// Then the account of the person: without a People to list with, it says the
	// listing was refused rather than reporting no PATs.
	if len(b.published) != 2 || b.published[0].Secret != "pat-b" || b.published[0].Status != rotation.StatusNeedsAttention {
		t.Fatalf("published %+v, want needs-attention for pat-b, then the report", b.published)
	}
	if r := b.published[1]; r.Status != contract.StatusOffboardingReport || r.Account == nil || r.Account.EventID != "hr-1" ||
		!strings.HasPrefix(r.Account.Organizations[0].Problem, "listing refused") {
		t.Errorf("report %+v, want an offboarding-report for hr-1 whose organization says it was not listed", r)
	}
}

type throttledErr struct{ wait time.Duration }

func (e throttledErr) Error() string             { return "HTTP 429" }
func (e throttledErr) RetryAfter() time.Duration { return e.wait }

// The core is the one layer that retries and sits out throttling (rotation's retry.go);
// what it hands back goes to the trigger's redelivery, not round the command again.
func TestRotateLeavesRetriesToTheCoreAndTheQueue(t *testing.T) {
	runs := 0
	r := &memRotator{run: func(string, rotation.Trigger) (rotation.Outcome, error) {
		runs++
		return rotation.Outcome{Status: rotation.StatusFailed, Retryable: true},
			&rotation.StepError{Secret: "pat-a", Step: rotation.StepCreate, Err: throttledErr{time.Second}}
	}}
	b := &memBus{}
	a, err := New(Options{Rotator: r, Inventory: r, Commands: b, Publisher: b, Defaults: defaults, CommandKeys: testKeys, Clock: rotation.NowFunc(func() time.Time { return now })})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Rotate(context.Background(), signed(t, contract.RotationCommand{Secret: "pat-a", OperationID: "op", Trigger: contract.TriggerManual}))
	if err == nil || rotation.IsPermanent(err) || runs != 1 {
		t.Errorf("err %v after %d runs; want a retryable error after one run", err, runs)
	}
}

// memReplies is pat-replies: the outcomes published that end an operation, by
// operation id, readable from any App (instance).
type memReplies struct{ b *memBus }

func (m memReplies) Reply(_ context.Context, op string) (contract.Outcome, bool, error) {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	for i := len(m.b.published) - 1; i >= 0; i-- {
		if o := m.b.published[i].Contract(); o.OperationID == op && o.Replies() {
			return o, true, nil
		}
	}
	return contract.Outcome{}, false, nil
}

// On Flex Consumption RotateNow and Rotate run on different instances: the HTTP
// instance learns a failure only from what both can read (the reply), never from the
// worker's memory.
func TestRotateNowReportsAFailureFromAnotherInstance(t *testing.T) {
	failed := func(secret string, trig rotation.Trigger) rotation.Outcome {
		return rotation.Outcome{Status: rotation.StatusFailed, Secret: secret, Op: trig.Op, Trigger: rotation.TriggerManual,
			Reason: "create", Message: "devops: create pat: 400 invalid scope", Time: now}
	}
	for name, withReplies := range map[string]bool{
		"with the replies the failure is reported to the waiting caller and to status": true,
		"without them the caller hears nothing (no instance memory stands in)":         false,
	} {
		t.Run(name, func(t *testing.T) {
			r := &memRotator{secrets: map[string]rotation.Version{"pat-a": managed("pat-a", ver1, nil)}}
			b := &memBus{}
			worker := newApp(t, r, b)
			o := Options{Rotator: r, Inventory: r, Commands: b, Publisher: b, Defaults: defaults, CommandKeys: testKeys,
				Clock: rotation.NowFunc(func() time.Time { return now }), PollInterval: time.Millisecond}
			if withReplies {
				o.Replies = memReplies{b}
			}
			web, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			// The core publishes its outcome, then returns it with a permanent error.
			r.run = func(secret string, trig rotation.Trigger) (rotation.Outcome, error) {
				out := failed(secret, trig)
				_ = b.Publish(context.Background(), out)
				return out, &rotation.StepError{Secret: secret, Step: rotation.StepCreate, Err: permanentErr{}}
			}
			b.onSend = func(c contract.RotationCommand) { _ = worker.Rotate(context.Background(), c) }
			wait := 5 * time.Second
			if !withReplies {
				wait = 50 * time.Millisecond
			}
			res, err := web.RotateNow(context.Background(), handlers.RotateNowRequest{Secret: "pat-a", OperationID: "op-f", Wait: wait})
			if err != nil {
				t.Fatal(err)
			}
			st, err := web.Status(context.Background(), handlers.StatusRequest{Secret: "pat-a", OperationID: "op-f"})
			if err != nil {
				t.Fatal(err)
			}
			if !withReplies {
				if res.Outcome != nil || st.Operation.Status != contract.StatusPending {
					t.Errorf("outcome %+v, status %s: want none and pending", res.Outcome, st.Operation.Status)
				}
				return
			}
			if res.Outcome == nil || res.Outcome.Status != contract.StatusFailed || res.Outcome.Message != "devops: create pat: 400 invalid scope" {
				t.Errorf("RotateNow outcome = %+v, want the failure", res.Outcome)
			}
			if st.Operation == nil || st.Operation.Status != contract.StatusFailed {
				t.Errorf("status of the operation = %+v, want failed", st.Operation)
			}
		})
	}
}
