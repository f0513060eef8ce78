package functionapp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

func TestReschedule(t *testing.T) {
	throttled := func(d time.Duration) error {
		return &rotation.StepError{Secret: "pat-a", Step: rotation.StepCreate, Err: throttledErr{d}}
	}
	tests := map[string]struct {
		err      error
		attempt  int
		signedAt time.Time
		want     time.Time // zero: not rescheduled
	}{
		"a Retry-After longer than the core waits is rescheduled at now + Retry-After": {
			err: throttled(10 * time.Minute), want: now.Add(10 * time.Minute)},
		"a throttle the core already sat out as long as it would is rescheduled, not redelivered": {
			err: throttled(rotation.MaxRetryWait), want: now.Add(rotation.MaxRetryWait)},
		"an error without Retry-After goes back to the trigger": {err: errors.New("connection reset")},
		"a permanent error is never rescheduled": {
			err: &rotation.StepError{Secret: "pat-a", Step: rotation.StepCreate, Err: permanentThrottle{}}},
		"no error, nothing to reschedule":             {},
		"the last reschedule allowed is made":         {err: throttled(time.Minute), attempt: MaxReschedules - 1, want: now.Add(time.Minute)},
		"after MaxReschedules the trigger takes over": {err: throttled(time.Minute), attempt: MaxReschedules},
		"a signed command young enough to run is rescheduled": {
			err: throttled(10 * time.Minute), signedAt: now.Add(-30 * time.Minute), want: now.Add(10 * time.Minute)},
		"a signed command that would be too old to verify is not": {
			err: throttled(10 * time.Minute), signedAt: now.Add(-55 * time.Minute)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			at, ok := Reschedule(tc.err, tc.attempt, tc.signedAt, now)
			if ok != !tc.want.IsZero() || !at.Equal(tc.want) {
				t.Errorf("Reschedule = %v, %v; want %v", at, ok, tc.want)
			}
		})
	}
}

type permanentThrottle struct{}

func (permanentThrottle) Error() string             { return "403 with Retry-After" }
func (permanentThrottle) Permanent() bool           { return true }
func (permanentThrottle) RetryAfter() time.Duration { return time.Hour }

type memRescheduler struct {
	mu   sync.Mutex
	rot  []rescheduled[contract.RotationCommand]
	fail error
}

type rescheduled[T any] struct {
	cmd T
	id  string
	at  time.Time
}

func (m *memRescheduler) RescheduleRotation(_ context.Context, c contract.RotationCommand, id string, at time.Time) error {
	if err := c.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rot = append(m.rot, rescheduled[contract.RotationCommand]{c, id, at})
	return m.fail
}

func TestRotateReschedulesALongThrottleInsteadOfHoldingTheMessage(t *testing.T) {
	r := &memRotator{run: func(string, rotation.Trigger) (rotation.Outcome, error) {
		return rotation.Outcome{Status: rotation.StatusFailed, Retryable: true},
			&rotation.StepError{Secret: "pat-a", Step: rotation.StepCreate, Err: throttledErr{10 * time.Minute}}
	}}
	b, rs := &memBus{}, &memRescheduler{}
	a, err := New(Options{Rotator: r, Inventory: r, Commands: b, Publisher: b, Defaults: defaults, CommandKeys: testKeys,
		Reschedule: rs, Clock: rotation.NowFunc(func() time.Time { return now })})
	if err != nil {
		t.Fatal(err)
	}
	cmd := contract.RotationCommand{Secret: "pat-a", OperationID: "op-1", Trigger: contract.TriggerSweep, Attempt: 2}
	if err := a.Rotate(context.Background(), cmd); err != nil {
		t.Fatalf("Rotate = %v; want the message completed (nil)", err)
	}
	if len(rs.rot) != 1 {
		t.Fatalf("%d rescheduled, want 1", len(rs.rot))
	}
	got := rs.rot[0]
	if got.id != "op-1-throttled-3" || !got.at.Equal(now.Add(10*time.Minute)) || got.cmd.OperationID != "op-1" || got.cmd.Attempt != 3 {
		t.Errorf("rescheduled %q at %v as op %q attempt %d; want op-1-throttled-3 at now+10m, same operation, attempt 3",
			got.id, got.at, got.cmd.OperationID, got.cmd.Attempt)
	}

	t.Run("a failed reschedule goes back to the trigger", func(t *testing.T) {
		rs.fail = errors.New("broker down")
		if err := a.Rotate(context.Background(), cmd); err == nil || rotation.IsPermanent(err) {
			t.Errorf("Rotate = %v; want a retryable error", err)
		}
	})
}

func TestRevokeReschedulesALongThrottle(t *testing.T) {
	rs := &memRescheduler{}
	cmd := contract.RevocationCommand{Secret: "pat-a", Org: "contoso", PATID: "11111111-2222-3333-4444-555555555555",
		Account: "svc@contoso.com", OperationID: "op-1"}
	r, b := &memRotator{}, &memBus{}
	a, aerr := New(Options{Rotator: r, Inventory: r, Commands: b, Publisher: b, Reschedule: rs, Clock: rotation.NowFunc(func() time.Time { return now })})
	if aerr != nil {
		t.Fatal(aerr)
	}
	err := &rotation.StepError{Secret: "pat-a", Step: rotation.StepRevoke, Err: throttledErr{5 * time.Minute}}
	handled, rerr := a.rescheduleRevocation(context.Background(), cmd, err)
	if !handled || rerr != nil || len(b.revocations) != 1 || len(rs.rot) != 0 {
		t.Fatalf("handled %v, err %v, %d rescheduled; want one", handled, rerr, len(b.revocations))
	}
	if got := b.revocations[0]; got.id != "revoke-11111111-2222-3333-4444-555555555555-throttled-1" || !got.at.Equal(now.Add(5*time.Minute)) || got.cmd.Attempt != 1 {
		t.Errorf("rescheduled %q at %v attempt %d", got.id, got.at, got.cmd.Attempt)
	}
}
