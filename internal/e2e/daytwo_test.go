package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The day-2 commands of docs/runbook.md, each run with only the operator's rights
// (operator.env: stack.OperatorRights, held in agreement with servicebus.bicep): follow
// outcomes, list/peek/resubmit/discard dead letters, list and cancel a scheduled
// revocation.
func TestDayTwoCommandsWorkWithOnlyTheOperatorsRoles(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	e.envFile = filepath.Join(filepath.Dir(e.envFile), stack.OperatorEnvFile)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	e.approveDeviceSignIns(ctx)
	run := func(want string, args ...string) string {
		t.Helper()
		out, errOut, code := e.patrol(args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("patrol %s: exit %d, want 0 and %q:\n%s\n%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out
	}
	run("Signed in", "login", "--service-account", stack.ServiceAccount, "--device-code")
	run("feed: rotated (adopt)", "adopt", "feed", "--org", stack.Organization, "--scopes", "vso.packaging")
	run("previous PAT", "rotate", "feed")
	_, tags, value := e.current("feed")
	prev := tags[rotation.TagPreviousPATID]
	if prev == "" {
		t.Fatal("the rotation recorded no previous PAT")
	}
	var printed strings.Builder
	keep := func(s string) string { printed.WriteString(s); return s }

	t.Run("status SECRET names both PATs", func(t *testing.T) {
		keep(run(prev, "status", "feed"))
		out := keep(run(tags[rotation.TagPATID], "status", "feed", "-o", "json"))
		var res contract.StatusResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Secrets) != 1 || res.Secrets[0].PreviousPATID != prev {
			t.Errorf("status feed -o json: %v, %+v", err, res)
		}
		if _, errOut, code := e.patrol("status", "nosuch"); code != 1 || !strings.Contains(errOut, "no managed secret") {
			t.Errorf("status of a secret that is not there: exit %d, %s", code, errOut)
		}
	})

	t.Run("events follow prints the outcomes on the operators subscription", func(t *testing.T) {
		out := keep(run("rotated", "events", "follow", "--status", "rotated", "--idle", "3s", "--max", "2"))
		if n := strings.Count(out, "rotated"); n < 2 || !strings.Contains(out, "trigger=adopt") || !strings.Contains(out, "trigger=manual") {
			t.Errorf("follow printed %d rotated outcomes, want the adopt's and the rotation's:\n%s", n, out)
		}
		// They were completed: a second follow finds none left.
		if out := run("", "events", "follow", "--idle", "2s"); strings.Contains(out, "rotated") {
			t.Errorf("the outcomes are still on the subscription after a follow:\n%s", out)
		}
	})

	t.Run("a scheduled revocation is listed and cancelled, and the PAT stays active after the grace period", func(t *testing.T) {
		keep(run(prev, "revocations", "list"))
		if out := run("No revocation", "revocations", "list", "--secret", "other"); strings.Contains(out, prev) {
			t.Errorf("list --secret other shows feed's revocation:\n%s", out)
		}
		keep(run("Cancelled revocation", "revocations", "cancel", "--secret", "feed", "--pat-id", prev))
		run("No revocation", "revocations", "list", "--secret", "feed")
		e.st.Clock.Advance(config.DefaultGrace + time.Minute)
		if e.scheduled(contract.QueueRevocations, rotation.Revocation{PATID: prev}.MessageID()) {
			t.Errorf("the revocation of %s is still on %s after cancel", prev, contract.QueueRevocations)
		}
		active := false
		for _, p := range e.activePATs("feed") {
			active = active || p.AuthorizationID == prev
		}
		if !active {
			t.Errorf("the replaced PAT %s is not active after the grace period, though its revocation was cancelled", prev)
		}
		_, _, code := e.patrol("revocations", "cancel", "--secret", "feed")
		if code == 0 {
			t.Error("cancel with nothing scheduled succeeded")
		}
	})

	t.Run("a malformed HR message is dead-lettered, listed, peeked, resubmitted (and fails again), then discarded", func(t *testing.T) {
		app := e.appClient()
		const id = "hr-malformed-1"
		send(t, e, app, contract.QueueOffboarding, &azservicebus.Message{MessageID: to(id), Body: []byte(`{"schemaVersion":"1","person":{}}`)})
		failEveryDelivery(t, e, app, contract.QueueOffboarding)
		keep(run(id, "deadletters", "list", "--queue", contract.QueueOffboarding))
		out := keep(run(store.ReasonMaxDeliveryCountExceeded, "deadletters", "peek", "--queue", contract.QueueOffboarding, "--message-id", id))
		if !strings.Contains(out, `"schemaVersion": "1"`) {
			t.Errorf("peek shows no body:\n%s", out)
		}
		keep(run("Resubmitted "+id, "deadletters", "resubmit", "--queue", contract.QueueOffboarding, "--message-id", id))
		run("no dead-lettered messages", "deadletters", "list", "--queue", contract.QueueOffboarding)
		copies := e.messages(contract.QueueOffboarding)
		if len(copies) != 1 || !strings.HasPrefix(copies[0], "resubmit-") || !strings.HasSuffix(copies[0], id) {
			t.Fatalf("%s holds %v, want the resubmitted copy under a new id", contract.QueueOffboarding, copies)
		}
		// Still malformed: it fails every delivery again.
		failEveryDelivery(t, e, app, contract.QueueOffboarding)
		keep(run("Discarded", "deadletters", "discard", "--queue", contract.QueueOffboarding, "--message-id", copies[0]))
		run("no dead-lettered messages", "deadletters", "list", "--queue", contract.QueueOffboarding)
		if _, _, code := e.patrol("deadletters", "discard", "--queue", contract.QueueOffboarding, "--message-id", copies[0]); code == 0 {
			t.Error("discarding a message that is not there succeeded")
		}
	})

	t.Run("a dead-lettered rotation command is resubmitted to its session", func(t *testing.T) {
		app := e.appClient()
		cmd := contract.RotationCommand{SchemaVersion: contract.SchemaVersion, Secret: "feed", OperationID: "wake-dlq-test",
			Trigger: contract.TriggerWakeup, RequestedBy: "patrol", RequestedAt: e.st.Clock.Now()}
		body, _ := json.Marshal(cmd)
		send(t, e, app, contract.QueueRotations, &azservicebus.Message{MessageID: to("wake-dlq-test"), SessionID: to("feed"), Body: body})
		sr, err := app.AcceptSessionForQueue(e.ctx, contract.QueueRotations, "feed", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sr.ReceiveMessages(e.ctx, 1, nil)
		if err != nil || len(got) != 1 {
			t.Fatalf("receive the command: %v", err)
		}
		if err := sr.DeadLetterMessage(e.ctx, got[0], &azservicebus.DeadLetterOptions{Reason: to("test")}); err != nil {
			t.Fatal(err)
		}
		_ = sr.Close(e.ctx)
		keep(run("wake-dlq-test", "deadletters", "list", "--queue", contract.QueueRotations))
		keep(run("Resubmitted", "deadletters", "resubmit", "--queue", contract.QueueRotations, "--message-id", "wake-dlq-test"))
		found := false
		for _, ent := range e.st.SB.Store().Snapshot() {
			if ent.Path != contract.QueueRotations {
				continue
			}
			for _, m := range ent.Messages {
				if strings.HasPrefix(m.MessageID, "resubmit-") && strings.HasSuffix(m.MessageID, "wake-dlq-test") {
					found = true
					if m.SessionID != "feed" {
						t.Errorf("the resubmitted copy %s is in session %q, want feed", m.MessageID, m.SessionID)
					}
				}
			}
		}
		if !found {
			t.Errorf("%s holds no resubmitted copy of wake-dlq-test", contract.QueueRotations)
		}
	})

	if testing.Verbose() {
		t.Log(printed.String())
	}
	if strings.Contains(printed.String(), value) {
		t.Error("a day-2 command printed the secret's PAT")
	}
}

// appClient is a Service Bus client with the app's rights, playing the function host.
func (e *env) appClient() *azservicebus.Client {
	e.t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(e.cfg.ServiceBusConnection, &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 0}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func send(t *testing.T, e *env, c *azservicebus.Client, queue string, m *azservicebus.Message) {
	t.Helper()
	s, err := c.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(e.ctx)
	if err := s.SendMessage(e.ctx, m, nil); err != nil {
		t.Fatalf("send to %s: %v", queue, err)
	}
}

// failEveryDelivery abandons queue's message on each delivery, as the Functions host
// does with one patrol fails, until Service Bus dead-letters it (MaxDeliveryCount).
func failEveryDelivery(t *testing.T, e *env, c *azservicebus.Client, queue string) {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(e.ctx)
	for i := 0; i < 10; i++ {
		rctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		got, err := r.ReceiveMessages(rctx, 1, nil)
		cancel()
		if err != nil || len(got) != 1 {
			t.Fatalf("delivery %d of the message on %s: %d messages, %v", i+1, queue, len(got), err)
		}
		if err := r.AbandonMessage(e.ctx, got[0], nil); err != nil {
			t.Fatal(err)
		}
	}
}
