package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/functionapp"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// app is the function app over the wired services, as `patrol serve` builds it.
func (e *env) app() *functionapp.App { return e.appWith(e.svc.Rotator) }

// appWith is app with another rotator (one that crashes).
func (e *env) appWith(r functionapp.Rotator) *functionapp.App {
	e.t.Helper()
	a, err := functionapp.New(functionapp.Options{
		Rotator: r, Inventory: e.svc.Store, Commands: e.svc.Bus, Publisher: e.svc.Bus, Reschedule: e.svc.Bus,
		Defaults: e.svc.Defaults, Clock: e.svc.Clock, Logger: e.opts.Logger.With("component", "functionapp"),
		CommandKeys: e.svc.Store.CommandKeys(), History: e.svc.Store, ManualCooldown: -1,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// signedManual is the command RotateNow would send for secret.
func (e *env) signedManual(secret, op string) contract.RotationCommand {
	e.t.Helper()
	cmd := contract.RotationCommand{SchemaVersion: contract.SchemaVersion, Secret: secret, OperationID: op,
		Trigger: contract.TriggerManual, RequestedBy: "e2e", RequestedAt: e.st.Clock.Now().UTC()}
	key, err := e.svc.Store.CommandKeys().SigningKey(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Validate(); err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Sign(key); err != nil {
		e.t.Fatal(err)
	}
	return cmd
}

// receiveRotation takes the next available message of the secret's session, as the
// Functions host would, and completes it after run returns nil.
func (e *env) receiveRotation(secret string, run func(contract.RotationCommand, *azservicebus.ReceivedMessage) error) int {
	e.t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(e.cfg.ServiceBusConnection, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close(e.ctx)
	r, err := c.AcceptSessionForQueue(e.ctx, contract.QueueRotations, secret, nil)
	if err != nil {
		e.t.Fatalf("accept session %s: %v", secret, err)
	}
	defer r.Close(e.ctx)
	n := 0
	for {
		msgs, err := r.PeekMessages(e.ctx, 10, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		due := 0
		for _, m := range msgs {
			if m.State != azservicebus.MessageStateScheduled {
				due++
			}
		}
		if due == 0 {
			return n
		}
		got, err := r.ReceiveMessages(e.ctx, 1, nil)
		if err != nil || len(got) == 0 {
			e.t.Fatalf("receive from session %s: %d messages, %v", secret, len(got), err)
		}
		cmd, err := contract.DecodeRotationCommand(got[0].Body)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := run(cmd, got[0]); err != nil {
			e.t.Fatalf("Rotate(%s): %v", got[0].MessageID, err)
		}
		if err := r.CompleteMessage(e.ctx, got[0], nil); err != nil {
			e.t.Fatal(err)
		}
		n++
	}
}

// A 429 whose Retry-After is longer than the core sits out (rotation.MaxRetryWait) does
// not hold the invocation: Rotate reschedules the command as a scheduled message under
// its own MessageId and completes at once; once the emulated clock reaches the
// scheduled time, the rescheduled command runs as the same operation and the rotation
// completes with one PAT.
func TestALongThrottleReschedulesTheCommandInsteadOfWaiting(t *testing.T) {
	e := newEnv(t, envOptions{})
	const name = "throttled"
	e.mustAdopt(name)
	a := e.app()
	op := rotation.NewOpID()
	e.st.DevOps.Faults().Set(devopsemu.OpCreatePat, fault.Fault{Status: http.StatusTooManyRequests, RetryAfter: 10 * time.Minute, Times: 1})

	start := time.Now()
	if err := a.Rotate(e.ctx, e.signedManual(name, op)); err != nil {
		t.Fatalf("Rotate = %v; want the message completed", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the throttled invocation took %v; want it to return promptly", took)
	}
	for _, w := range e.waits.all() {
		if w > rotation.MaxRetryWait {
			t.Errorf("the core waited %v inside the invocation", w)
		}
	}
	id := contract.ThrottledMessageID(op, 1)
	if !e.scheduled(contract.QueueRotations, id) {
		t.Fatalf("no message %s on %s; messages: %v", id, contract.QueueRotations, e.messages(contract.QueueRotations))
	}
	if v, tags, _ := e.current(name); tags[rotation.TagOp] == op {
		t.Fatalf("version %s already written by the throttled run", v)
	}

	if n := e.receiveRotation(name, nil); n != 0 {
		t.Fatalf("%d messages ran before their time", n)
	}
	e.st.Clock.Advance(10*time.Minute + time.Second)
	ran := e.receiveRotation(name, func(cmd contract.RotationCommand, m *azservicebus.ReceivedMessage) error {
		if m.MessageID != id || cmd.OperationID != op || cmd.Attempt != 1 {
			t.Errorf("ran %s (op %s, attempt %d); want %s for op %s", m.MessageID, cmd.OperationID, cmd.Attempt, id, op)
		}
		return a.Rotate(e.ctx, cmd)
	})
	if ran != 1 {
		t.Fatalf("%d rescheduled commands ran, want 1", ran)
	}
	if _, tags, _ := e.current(name); tags[rotation.TagOp] != op {
		t.Fatalf("the current version is from op %q, want %q", tags[rotation.TagOp], op)
	}
	e.assertConverged(name)
	created := 0
	for _, p := range e.st.DevOps.PATs(org) {
		if strings.HasSuffix(p.DisplayName, op) {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d PATs created for operation %s, want 1", created, op)
	}
}
