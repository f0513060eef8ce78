package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/demo"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// plantDue plants a service-account PAT 85 days into its 90-day life: inside the renew
// window, so Key Vault's near-expiry event for it asks for a rotation.
func plantDue(t *testing.T, sys *demo.System, secret string) {
	t.Helper()
	ctx := context.Background()
	tok, err := sys.PersonToken(ctx, stack.ServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	now := sys.Stack.Clock.Now()
	if _, err := sys.PlantIssued(ctx, tok, secret, stack.ServiceAccount, svcPolicy, now.Add(-85*24*time.Hour), now.Add(5*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// svcPolicy is a managed secret issued under the service account with the defaults
// (90-day lifetime, 14-day renew window).
var svcPolicy = map[string]string{
	rotation.TagManaged: "true", rotation.TagOrg: stack.Organization, rotation.TagScopes: "vso.code",
	rotation.TagServiceAccount: stack.ServiceAccount,
}

// The scripted tour of `patrol-dev local --demo` drives the Event Grid, Service Bus and
// HTTP triggers through the real handler; every invariant must hold after it.
func TestTheTourHoldsEveryInvariant(t *testing.T) {
	sys := start(t, options{seed: true})
	var out bytes.Buffer
	report, err := demo.Tour(context.Background(), sys, &out)
	if err != nil {
		t.Fatalf("tour: %v\n%s", err, out.String())
	}
	if !report.OK() {
		t.Fatalf("invariants failed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "offboarding-report") || !strings.Contains(out.String(), demo.UnmanagedPATName) {
		t.Errorf("the tour does not show the offboarding report naming alice's unmanaged PAT:\n%s", out.String())
	}
	for _, f := range []string{"KeyVaultEvents", "Offboarding", "Rotate", "Revoke", "RotateNow", "SecretStatus"} {
		if c := sys.Host.Counts(f); c.Succeeded == 0 {
			t.Errorf("%s was never invoked successfully (%+v)", f, c)
		}
	}
}

// The timer trigger: a sweep finds pat-legacy due (its PAT belongs to a person, not
// the service account) and rotates it.
func TestSweepTimerRotatesWhatIsDue(t *testing.T) {
	sys := start(t, options{seed: true})
	if err := sys.Host.TriggerTimer(context.Background(), "Sweep"); err != nil {
		t.Fatal(err)
	}
	o := waitOutcome(t, sys, "the sweep's rotation of pat-legacy", func(o rotation.Outcome) bool {
		return o.Secret == demo.SecretLegacy && o.Trigger == rotation.TriggerSweep && o.Status == rotation.StatusRotated
	})
	if o.Reason != rotation.ReasonOwnerNotServiceAccount {
		t.Errorf("reason = %s, want %s", o.Reason, rotation.ReasonOwnerNotServiceAccount)
	}
	// A second sweep finds nothing due and enqueues nothing new.
	settle(t, sys)
	if err := sys.Host.TriggerTimer(context.Background(), "Sweep"); err != nil {
		t.Fatal(err)
	}
	settle(t, sys)
	if n := countOutcomes(sys.Outcomes.All(), func(o rotation.Outcome) bool {
		return o.Trigger == rotation.TriggerSweep && o.Status == rotation.StatusRotated
	}); n != 1 {
		t.Errorf("%d sweep rotations, want 1", n)
	}
	if c := sys.Host.Counts("Sweep"); c.Succeeded != 2 {
		t.Errorf("Sweep invocations %+v, want 2 successful", c)
	}
}

// HTTP errors are the ones an operator can act on.
func TestRotateNowErrors(t *testing.T) {
	sys := start(t, options{seed: true})
	ctx := context.Background()
	if _, err := sys.Stack.KV.Put(stack.Vault, "not-ours", kvemu.NewSecret{Value: "x"}); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		secret, body string
		status       int
		code         string
	}{
		"an unknown secret is 404":                 {secret: "no-such-secret", status: 404, code: "NotFound"},
		"a secret patrol does not manage is 409":   {secret: "not-ours", status: 409, code: "Conflict"},
		"a misspelt body field is 400":             {secret: demo.SecretBuild, body: `{"revoke_now":true}`, status: 400, code: "BadRequest"},
		"a managed secret is accepted with 202":    {secret: demo.SecretBuild, status: 202},
		"a managed secret with a body is accepted": {secret: demo.SecretLegacy, body: `{"reason":"drill"}`, status: 202},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := sys.RotateNow(ctx, tc.secret, tc.body, 0)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status {
				t.Fatalf("HTTP %d, want %d (%+v)", res.Status, tc.status, res.Body)
			}
			if tc.code != "" && (res.Body.Error == nil || res.Body.Error.Code != tc.code) {
				t.Errorf("error %+v, want code %s", res.Body.Error, tc.code)
			}
			if tc.status == 202 && res.Body.OperationID == "" {
				t.Error("202 without an operation id")
			}
		})
	}
	settle(t, sys)
	requireInvariants(t, sys)
}

// deliverEvent POSTs a Key Vault event to the KeyVaultEvents webhook as Event Grid does.
func deliverEvent(t *testing.T, sys *demo.System, ev kvemu.Event) {
	t.Helper()
	body, err := json.Marshal([]map[string]any{{
		"id": ev.ID, "topic": ev.Topic, "subject": ev.Subject, "eventType": ev.Type,
		"eventTime": ev.Time.UTC().Format(time.RFC3339Nano), "data": ev.Data, "dataVersion": "1", "metadataVersion": "1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, sys.Host.EventGridURL("KeyVaultEvents"), bytes.NewReader(body))
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Errorf("Event Grid delivery: HTTP %d", res.StatusCode)
	}
}

func nearExpiryEvent(t *testing.T, sys *demo.System, secret string) kvemu.Event {
	t.Helper()
	for _, ev := range sys.Stack.KV.Events() {
		if ev.Subject == secret && ev.Type == kvemu.EventSecretNearExpiry {
			return ev
		}
	}
	t.Fatalf("Key Vault raised no SecretNearExpiry for %s", secret)
	return kvemu.Event{}
}

// The same Event Grid event delivered twice (at once, and again later) is one rotation.
func TestTheSameEventTwiceIsOneRotation(t *testing.T) {
	sys := start(t, options{seed: true})
	// Deliver by hand only, so the test controls every delivery.
	sys.Stack.KV.Unsubscribe("patrol-keyvault-events")
	plantDue(t, sys, "pat-dup")
	ev := nearExpiryEvent(t, sys, "pat-dup")
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { deliverEvent(t, sys, ev) })
	}
	wg.Wait()
	o := waitOutcome(t, sys, "the rotation", func(o rotation.Outcome) bool {
		return o.Secret == "pat-dup" && o.Status == rotation.StatusRotated
	})
	deliverEvent(t, sys, ev) // a late redelivery: the version is no longer current
	settle(t, sys)

	rotated := countOutcomes(sys.Outcomes.All(), func(x rotation.Outcome) bool { return x.Secret == "pat-dup" && x.Status == rotation.StatusRotated })
	if rotated != 1 {
		t.Errorf("%d rotations of pat-dup, want 1:%s", rotated, summarize(sys.Outcomes.All()))
	}
	if o.Trigger != rotation.TriggerNearExpiry || o.Reason != rotation.ReasonRenewWindow {
		t.Errorf("outcome %s/%s, want near-expiry/renew-window", o.Trigger, o.Reason)
	}
	if n := patsFor(sys, "pat-dup"); n != 1 {
		t.Errorf("%d PATs created for pat-dup, want 1", n)
	}
	if c := sys.Host.Counts("KeyVaultEvents"); c.Succeeded < 3 {
		t.Errorf("KeyVaultEvents %+v, want 3 deliveries handled", c)
	}
	requireInvariants(t, sys)
}

// patsFor counts the PATs patrol created for a secret.
func patsFor(sys *demo.System, secret string) int {
	n := 0
	for _, p := range sys.Stack.DevOps.PATs(stack.Organization) {
		if s, _, ok := rotation.ParseDisplayName(p.DisplayName); ok && s == secret {
			n++
		}
	}
	return n
}

// A near-expiry event and an emergency rotation of the same secret at the same time are
// serialised by the session: the emergency always rotates; the event either rotates
// first or finds its version replaced; neither loses the other's update.
func TestNearExpiryAndEmergencyAtOnceAreSerialised(t *testing.T) {
	sys := start(t, options{seed: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	var res demo.RotateNowReply
	var rerr error
	plantDue(t, sys, "pat-race")
	wg.Go(func() {
		res, rerr = sys.RotateNow(ctx, "pat-race", `{"reason":"leak","requestedBy":"systemtest"}`, 30*time.Second)
	})
	near := waitOutcome(t, sys, "the near-expiry command", func(o rotation.Outcome) bool {
		return o.Secret == "pat-race" && o.Trigger == rotation.TriggerNearExpiry && o.Status != rotation.StatusFailed
	})
	wg.Wait()
	if rerr != nil {
		t.Fatal(rerr)
	}
	if res.Status != http.StatusOK || res.Outcome == nil || res.Outcome.Status != contract.StatusRotated {
		t.Fatalf("emergency rotation: HTTP %d, outcome %+v", res.Status, res.Outcome)
	}
	manual := waitOutcome(t, sys, "the manual rotation", func(o rotation.Outcome) bool {
		return o.Secret == "pat-race" && o.Trigger == rotation.TriggerManual && o.Status == rotation.StatusRotated
	})
	switch near.Status {
	case rotation.StatusRotated:
		if manual.PreviousPATID != near.PATID {
			t.Errorf("the manual rotation replaced %s, not the near-expiry rotation's %s: the two overlapped", manual.PreviousPATID, near.PATID)
		}
	case rotation.StatusSkipped:
		if near.Reason != rotation.ReasonStaleVersion {
			t.Errorf("near-expiry skipped for %s, want %s", near.Reason, rotation.ReasonStaleVersion)
		}
	default:
		t.Errorf("near-expiry outcome %s", near.Status)
	}
	settle(t, sys)
	requireInvariants(t, sys)
}

// One person owning 50 PATs across 500 managed secrets: every one re-issued, none
// missed, none duplicated, even when HR sends the message twice.
func TestOffboardingFiftyOfFiveHundred(t *testing.T) {
	sys := start(t, options{sessionIdle: 500 * time.Millisecond})
	ctx := context.Background()
	owned := seedOffboarding(t, sys, 500, 50)
	// 50 re-issues cost the service account exactly the emulator's default budget of 200
	// requests per 5 minutes (list, create, who-am-I, verify); each of the two HR
	// deliveries then lists the person's PATs for the offboarding report (Graph and
	// token administration: 2 more). Give the account room for both, or the last
	// re-issue rightly waits out a 5-minute Retry-After.
	sys.Stack.DevOps.SetRateLimit(devopsemu.RateLimit{Limit: 200 + 2*2})
	msg := contract.OffboardingMessage{SchemaVersion: contract.SchemaVersion, EventID: "hr-500", Person: contract.Person{UPN: stack.Person}}
	for range 2 {
		if err := sys.Ops.Bus.SendOffboarding(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	waitOffboarded(t, sys, owned)
	settle(t, sys)
	t.Logf("largest handler peak RSS after offboarding 50 of 500: %d KiB", largestPeakRSS(t, sys))

	rotations := map[string]int{}
	for _, o := range sys.Outcomes.All() {
		if o.Status == rotation.StatusRotated {
			rotations[o.Secret]++
		}
	}
	for _, name := range owned {
		if rotations[name] != 1 {
			t.Errorf("%s rotated %d times, want once", name, rotations[name])
		}
		v, err := sys.Ops.Store.Current(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if v.Tags[rotation.TagOwner] != serviceAccount {
			t.Errorf("%s is still owned by %s", name, v.Tags[rotation.TagOwner])
		}
	}
	if len(rotations) != len(owned) {
		t.Errorf("%d secrets rotated, want %d (only alice's)", len(rotations), len(owned))
	}
	created := 0
	for _, p := range sys.Stack.DevOps.PATs(stack.Organization) {
		if _, _, ok := rotation.ParseDisplayName(p.DisplayName); ok {
			created++
		}
	}
	if created != len(owned) {
		t.Errorf("%d PATs created, want %d", created, len(owned))
	}
	if n := len(sys.Stack.DevOps.ActivePATs(stack.Organization, stack.Person)); n != len(owned) {
		// Alice's PATs are revoked after the grace period (3 days), not yet.
		t.Errorf("alice has %d active PATs, want %d until the grace period ends", n, len(owned))
	}
}

// seedOffboarding plants total managed secrets, the first `mine` holding real PATs of
// alice, the rest tagged as the service account's; it returns alice's secret names.
func seedOffboarding(tb testing.TB, sys *demo.System, total, mine int) []string {
	tb.Helper()
	ctx := context.Background()
	if err := sys.SignIn(ctx, stack.ServiceAccount); err != nil {
		tb.Fatal(err)
	}
	tok, err := sys.PersonToken(ctx, stack.Person)
	if err != nil {
		tb.Fatal(err)
	}
	var owned []string
	exp := sys.Stack.Clock.Now().Add(90 * 24 * time.Hour)
	for i := range total {
		name := fmt.Sprintf("pat-%03d", i)
		if i < mine {
			if _, err := sys.PlantWithToken(ctx, tok, name, stack.Person, svcPolicy, 90*24*time.Hour); err != nil {
				tb.Fatal(err)
			}
			owned = append(owned, name)
			continue
		}
		tags := map[string]string{rotation.TagOwner: serviceAccount, rotation.TagPATID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i)}
		for k, v := range svcPolicy {
			tags[k] = v
		}
		if _, err := sys.Stack.KV.Put(stack.Vault, name, kvemu.NewSecret{Value: "placeholder-" + name, Tags: tags, Expires: &exp}); err != nil {
			tb.Fatal(err)
		}
	}
	return owned
}

func waitOffboarded(tb testing.TB, sys *demo.System, owned []string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := map[string]bool{}
	from := 0
	for len(done) < len(owned) {
		o, next, err := sys.Outcomes.Wait(ctx, from, func(o rotation.Outcome) bool {
			return o.Trigger == rotation.TriggerOffboarding && o.Status == rotation.StatusRotated
		})
		if err != nil {
			tb.Fatalf("%d of %d re-issued: %v", len(done), len(owned), err)
		}
		done[o.Secret], from = true, next
	}
}

// A malformed HR message is never settled by patrol: its reason (naming what is wrong)
// is recorded once, and Service Bus moves it, unchanged, to the queue's dead-letter
// queue after MaxDeliveryCount.
func TestMalformedHRMessageIsDeadLettered(t *testing.T) {
	sys := start(t, options{})
	ctx := context.Background()
	s, err := sys.ServiceBus().NewSender("hr-offboarding", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	body := `{"schemaVersion":"1","eventId":"hr-bad"}`
	if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte(body), MessageID: to("hr-bad")}, nil); err != nil {
		t.Fatal(err)
	}
	m, o := requireRejectedOnce(t, sys, contract.QueueOffboarding, "hr-bad", contract.DeadLetterMalformed)
	if !strings.Contains(o.Message, "person") {
		t.Errorf("the recorded reason %q does not name the missing field person", o.Message)
	}
	if string(m.Body) != body {
		t.Errorf("the dead-lettered body changed: %s", m.Body)
	}
}

// requireRejectedOnce waits until the message ends in queue's dead-letter queue, where
// Service Bus puts it after MaxDeliveryCount failed deliveries, and checks its real
// reason was recorded exactly once: one failed outcome on pat-events and one error log
// line, both naming the message; and that no settlement failed on the way (the host
// owns the lock and patrol never settles).
func requireRejectedOnce(t *testing.T, sys *demo.System, queue, messageID, reason string) (*azservicebus.ReceivedMessage, rotation.Outcome) {
	t.Helper()
	ctx := context.Background()
	var dead *azservicebus.ReceivedMessage
	for deadline := time.Now().Add(60 * time.Second); dead == nil; time.Sleep(50 * time.Millisecond) {
		dl, err := sys.PeekDeadLetters(ctx, queue)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range dl {
			if m.MessageID == messageID {
				dead = m
			}
		}
		if dead == nil && time.Now().After(deadline) {
			t.Fatalf("%s: message %s not dead-lettered; invocations %+v", queue, messageID, sys.Host.AllCounts())
		}
	}
	if got := deref(dead.DeadLetterReason); got != "MaxDeliveryCountExceeded" {
		t.Errorf("dead-letter reason %q, want MaxDeliveryCountExceeded (Service Bus's, after the host's abandons)", got)
	}
	settle(t, sys)
	failed := func(o rotation.Outcome) bool {
		return o.Status == rotation.StatusFailed && string(o.Reason) == reason && strings.Contains(o.Message, messageID)
	}
	o := waitOutcome(t, sys, "the recorded reason", failed)
	if n := countOutcomes(sys.Outcomes.All(), failed); n != 1 {
		t.Errorf("%d failed outcomes name message %s, want exactly 1", n, messageID)
	}
	logs := sys.Capture.String()
	rejected := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "message rejected; Service Bus dead-letters it") && strings.Contains(line, messageID) {
			rejected++
		}
	}
	if rejected != 1 {
		t.Errorf("%d error lines record the rejection of %s, want exactly 1", rejected, messageID)
	}
	if strings.Contains(logs, "devhost: complete message") {
		t.Error("a completion failed: something other than the host settled a message")
	}
	return dead, o
}

// The handler killed in the middle of a rotation (after it asked Azure DevOps for the
// PAT, before it stored it) and restarted: the redelivered command revokes what the
// first attempt created and converges to one working PAT.
func TestHandlerKilledMidRotationConverges(t *testing.T) {
	sys := start(t, options{seed: true})
	ctx := context.Background()
	settle(t, sys)
	j, faults := sys.Stack.DevOps.Journal(), sys.Stack.DevOps.Faults()
	before, hits := j.Count(devopsemu.OpCreatePat), faults.Hits(devopsemu.OpCreatePat)
	faults.Set(devopsemu.OpCreatePat, fault.Fault{Latency: 1500 * time.Millisecond, Times: 1})
	res, err := sys.RotateNow(ctx, demo.SecretBuild, `{"revokeNow":true}`, 0)
	if err != nil || res.Status != http.StatusAccepted {
		t.Fatalf("RotateNow: %v, HTTP %d", err, res.Status)
	}
	// Wait until the create is on the wire (the fault holds it), then kill.
	deadline := time.Now().Add(10 * time.Second)
	for faults.Hits(devopsemu.OpCreatePat) == hits {
		if time.Now().After(deadline) {
			t.Fatal("the rotation never reached the create step")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := sys.Host.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := sys.Host.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	o := waitOutcome(t, sys, "the rotation after the restart", func(o rotation.Outcome) bool {
		return o.Secret == demo.SecretBuild && o.Op == res.Body.OperationID && o.Status == rotation.StatusRotated
	})
	settle(t, sys)
	t.Logf("creates: %d (the killed attempt's PAT, revoked by the retry, plus the stored one)", j.Count(devopsemu.OpCreatePat)-before)
	cur, err := sys.Ops.Store.Current(ctx, demo.SecretBuild)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Tags[rotation.TagOp] != res.Body.OperationID || cur.Tags[rotation.TagPATID] != o.PATID {
		t.Errorf("current version op %s PAT %s, want %s and %s", cur.Tags[rotation.TagOp], cur.Tags[rotation.TagPATID], res.Body.OperationID, o.PATID)
	}
	requireInvariants(t, sys)
}

func to[T any](v T) *T { return &v }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// The sweep revokes a PAT patrol created that no secret holds (an attempt that never
// stored it), once it is older than any rotation in flight could be.
func TestSweepRevokesOrphanedPATs(t *testing.T) {
	sys := start(t, options{disable: []string{"Sweep"}})
	ctx := context.Background()
	if err := sys.SignIn(ctx, stack.ServiceAccount); err != nil {
		t.Fatal(err)
	}
	tok, err := sys.PersonToken(ctx, stack.ServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	now := sys.Stack.Clock.Now()
	if _, err := sys.PlantIssued(ctx, tok, "pat-keep", stack.ServiceAccount, svcPolicy, now, now.Add(90*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	orphan, err := sys.CreatePAT(ctx, tok, stack.Organization, rotation.DisplayName("pat-keep", "orphanedattempt1"), "vso.code", now.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other, err := sys.CreatePAT(ctx, tok, stack.Organization, "someone's laptop", "vso.code", now.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Past rotation.OrphanMinAge; then fresh tokens (see RefreshCredentials).
	sys.Stack.Clock.Advance(rotation.OrphanMinAge + time.Minute)
	if err := sys.RefreshCredentials(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sys.SignIn(ctx, stack.ServiceAccount); err != nil {
		t.Fatal(err)
	}
	if err := sys.Host.TriggerTimer(ctx, "Sweep"); err != nil {
		t.Fatal(err)
	}
	o := waitOutcome(t, sys, "the orphan's revocation", func(o rotation.Outcome) bool {
		return o.Trigger == rotation.TriggerRevoke && o.PreviousPATID == orphan
	})
	if o.Status != rotation.StatusRevoked || o.Op != "orphanedattempt1" {
		t.Errorf("outcome %s op %s, want revoked under the op its name carries", o.Status, o.Op)
	}
	settle(t, sys)
	if sys.Stack.DevOps.IsActive(orphan) {
		t.Error("the orphan is still active")
	}
	if !sys.Stack.DevOps.IsActive(other) {
		t.Error("a PAT patrol did not create was revoked")
	}
	cur, err := sys.Ops.Store.Current(ctx, "pat-keep")
	if err != nil {
		t.Fatal(err)
	}
	if !sys.Stack.DevOps.IsActive(cur.Tags[rotation.TagPATID]) {
		t.Error("the PAT pat-keep holds was revoked")
	}
}
