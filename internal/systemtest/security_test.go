package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/keyvault"
	"github.com/patrol-dev/patrol/internal/local/demo"
	emukv "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The adversarial suite of docs/security.md: each test plays one principal with the
// real SDK it would use, against the real handler, and checks patrol does not do what
// that principal has no right to make it do.

// sendRaw sends a body to a queue as any holder of Send rights could.
func sendRaw(t *testing.T, sys *demo.System, queue, session, id string, body []byte) {
	t.Helper()
	ctx := context.Background()
	s, err := sys.ServiceBus().NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	m := &azservicebus.Message{Body: body, MessageID: to(id)}
	if session != "" {
		m.SessionID = to(session)
	}
	if err := s.SendMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A queue sender cannot make patrol adopt, mint under its own policy, rotate on demand
// or revoke at once: such commands are refused with a reason and nothing is minted.
func TestQueueSenderCannotCommandWhatOnlyPatrolMay(t *testing.T) {
	sys := start(t, options{seed: true})
	settle(t, sys)
	if _, err := sys.Stack.KV.Put(stack.Vault, "db-password", emukv.NewSecret{Value: "hunter2"}); err != nil {
		t.Fatal(err)
	}
	forged := contract.NewCommandKey("0123456789abcdef0123456789abcdef", []byte(strings.Repeat("f", contract.CommandKeySize)))
	now := sys.Stack.Clock.Now()
	tests := map[string]struct {
		secret string
		cmd    func() any
		reason string
	}{
		"an adopt command for an unmanaged secret, with the sender's policy": {secret: "db-password", reason: contract.DeadLetterMalformed, cmd: func() any {
			return map[string]any{"schemaVersion": "1", "secret": "db-password", "operationId": "evil-adopt", "trigger": "adopt",
				"policy": map[string]string{"patrol-managed": "true", "patrol-org": stack.Organization, "patrol-scopes": "app_token vso.tokens",
					"patrol-allow-full-scope": "true", "patrol-lifetime": "365d", "patrol-service-account": stack.ServiceAccount}}
		}},
		"a sweep command carrying a policy": {secret: demo.SecretBuild, reason: contract.DeadLetterMalformed, cmd: func() any {
			return map[string]any{"secret": demo.SecretBuild, "operationId": "evil-policy", "trigger": "sweep",
				"policy": map[string]string{"patrol-lifetime": "365d"}}
		}},
		"an unsigned manual command": {secret: demo.SecretBuild, reason: contract.DeadLetterUnauthenticated, cmd: func() any {
			return contract.RotationCommand{SchemaVersion: "1", Secret: demo.SecretBuild, OperationID: "evil-manual", Trigger: contract.TriggerManual, RequestedAt: now}
		}},
		"an unsigned revokeNow": {secret: demo.SecretBuild, reason: contract.DeadLetterUnauthenticated, cmd: func() any {
			return contract.RotationCommand{SchemaVersion: "1", Secret: demo.SecretBuild, OperationID: "evil-revokenow", Trigger: contract.TriggerManual, RevokeNow: true, RequestedAt: now}
		}},
		"a manual command signed with a key the sender made up": {secret: demo.SecretBuild, reason: contract.DeadLetterUnauthenticated, cmd: func() any {
			c := contract.RotationCommand{SchemaVersion: "1", Secret: demo.SecretBuild, OperationID: "evil-forged", Trigger: contract.TriggerManual, RevokeNow: true, RequestedAt: now}
			if err := c.Sign(forged); err != nil {
				t.Fatal(err)
			}
			return c
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(sys.Stack.DevOps.PATs(stack.Organization))
			_, _, beforeValue := currentOf(t, sys, tc.secret)
			id := "msg-" + strings.ReplaceAll(strings.ToLower(name[:12]), " ", "-") + strconv.Itoa(len(name))
			sendRaw(t, sys, contract.QueueRotations, tc.secret, id, mustJSON(t, tc.cmd()))
			o := waitOutcome(t, sys, "the refusal", func(o rotation.Outcome) bool {
				return o.Status == rotation.StatusFailed && strings.Contains(o.Message, id)
			})
			if string(o.Reason) != tc.reason {
				t.Errorf("reason %q, want %q (%s)", o.Reason, tc.reason, o.Message)
			}
			// The session queue's message ends in its dead-letter queue, its reason
			// recorded once: patrol cannot settle it (the host holds the session).
			requireRejectedOnce(t, sys, contract.QueueRotations, id, tc.reason)
			if after := len(sys.Stack.DevOps.PATs(stack.Organization)); after != before {
				t.Errorf("%d PATs created", after-before)
			}
			if _, _, v := currentOf(t, sys, tc.secret); v != beforeValue {
				t.Error("the secret's value changed")
			}
		})
	}
	requireInvariants(t, sys)
}

// currentOf reads a secret's current version, tags and value from the emulator.
func currentOf(t *testing.T, sys *demo.System, secret string) (string, map[string]string, string) {
	t.Helper()
	vs, err := sys.Stack.KV.Versions(stack.Vault, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Current {
			val, err := sys.Stack.KV.SecretValue(stack.Vault, secret, v.Version)
			if err != nil {
				t.Fatal(err)
			}
			return v.Version, v.Tags, val
		}
	}
	t.Fatalf("%s has no current version", secret)
	return "", nil, ""
}

// A queue sender cannot make patrol revoke a PAT it has no record of for the secret
// named: not another secret's current PAT, not under a secret that does not exist.
func TestRevocationOfAPATNotOnRecordIsRefused(t *testing.T) {
	sys := start(t, options{seed: true})
	ctx := context.Background()
	settle(t, sys)
	_, buildTags, _ := currentOf(t, sys, demo.SecretBuild)
	victim := buildTags[rotation.TagPATID]
	tests := map[string]string{
		"another secret's current PAT, named under a secret that does not exist": "no-such-secret",
		"another secret's current PAT, named under a managed secret":             demo.SecretLegacy,
	}
	for name, secret := range tests {
		t.Run(name, func(t *testing.T) {
			op := "evilrevoke" + strconv.Itoa(len(name))
			rev := contract.RevocationCommand{SchemaVersion: "1", Secret: secret, Org: stack.Organization, PATID: victim,
				Owner: stack.ServiceAccount, Account: stack.ServiceAccount, OperationID: op}
			sendRaw(t, sys, contract.QueueRevocations, "", "revoke-"+op, mustJSON(t, rev))
			o := waitOutcome(t, sys, "the refused revocation", func(o rotation.Outcome) bool {
				return o.Trigger == rotation.TriggerRevoke && o.Op == op
			})
			if o.Status != rotation.StatusFailed || o.Reason != "not-on-record" {
				t.Errorf("outcome %s/%s (%s), want failed/not-on-record", o.Status, o.Reason, o.Message)
			}
			settle(t, sys)
			if !sys.Stack.DevOps.IsActive(victim) {
				t.Fatal("the victim PAT was revoked")
			}
			dl, err := sys.PeekDeadLetters(ctx, contract.QueueRevocations)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, m := range dl {
				if m.MessageID == "revoke-"+op {
					found = deref(m.DeadLetterReason) == "MaxDeliveryCountExceeded"
				}
			}
			if !found {
				t.Errorf("the revocation did not end in the dead-letter queue")
			}
			// Recorded once over the ten deliveries: the app's own outcome, no second
			// one from the handler.
			refusals := countOutcomes(sys.Outcomes.All(), func(o rotation.Outcome) bool {
				return o.Op == op && o.Status == rotation.StatusFailed
			})
			if refusals != 1 || !strings.Contains(sys.Capture.String(), "revocation refused") {
				t.Errorf("%d failed outcomes record the refusal of revoke-%s, want exactly 1, and the log names it", refusals, op)
			}
		})
	}
}

// A queue sender cannot have a replaced PAT revoked before its grace period ends: only
// the revocation patrol signs for an emergency (revokeNow) is carried out early; any
// other waits for the grace end, when the schedule revokes the PAT anyway.
func TestRevocationBeforeTheGraceEndNeedsPatrolsSignature(t *testing.T) {
	// No cooldown: each case rotates pat-build by hand, whatever the other did.
	sys := start(t, options{seed: true, disable: []string{"Sweep"}, settings: map[string]string{"PATROL_MANUAL_COOLDOWN": "0"}})
	ctx := context.Background()
	settle(t, sys)
	rotateNow := func(t *testing.T, body string) (op, replaced string) {
		t.Helper()
		res, err := sys.RotateNow(ctx, demo.SecretBuild, body, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome == nil || res.Outcome.Status != contract.StatusRotated {
			t.Fatalf("RotateNow: HTTP %d, outcome %+v", res.Status, res.Outcome)
		}
		_, tags, _ := currentOf(t, sys, demo.SecretBuild)
		return res.Body.OperationID, tags[rotation.TagPreviousPATID]
	}

	t.Run("an unsigned revocation of a replaced PAT before its grace end does not revoke it", func(t *testing.T) {
		_, replaced := rotateNow(t, `{"reason":"routine"}`)
		if replaced == "" || !sys.Stack.DevOps.IsActive(replaced) {
			t.Fatalf("the replaced PAT %q is not active during its grace period", replaced)
		}
		const op = "evilearlyrevoke"
		rev := contract.RevocationCommand{SchemaVersion: "1", Secret: demo.SecretBuild, Org: stack.Organization, PATID: replaced,
			Owner: stack.ServiceAccount, Account: stack.ServiceAccount, OperationID: op}
		sendRaw(t, sys, contract.QueueRevocations, "", "msg-"+op, mustJSON(t, rev))
		o := waitOutcome(t, sys, "the early revocation", func(o rotation.Outcome) bool {
			return o.Trigger == rotation.TriggerRevoke && o.Op == op
		})
		if o.Status != rotation.StatusSkipped || o.Reason != "revocation-deferred" || o.NextCheck.IsZero() {
			t.Errorf("outcome %s/%s next %v (%s), want skipped/revocation-deferred to the grace end", o.Status, o.Reason, o.NextCheck, o.Message)
		}
		settle(t, sys)
		if !sys.Stack.DevOps.IsActive(replaced) {
			t.Fatal("the replaced PAT was revoked before its grace period ended")
		}
		// At the grace end the schedule revokes it (and the deferred message finds it gone).
		sys.Stack.Clock.Advance(o.NextCheck.Sub(sys.Stack.Clock.Now()) + time.Minute)
		if err := sys.RefreshCredentials(ctx); err != nil {
			t.Fatal(err)
		}
		if err := sys.SignIn(ctx, stack.ServiceAccount); err != nil {
			t.Fatal(err)
		}
		waitOutcome(t, sys, "the revocation at the grace end", func(o rotation.Outcome) bool {
			return o.Trigger == rotation.TriggerRevoke && o.PreviousPATID == replaced && o.Status == rotation.StatusRevoked
		})
		settle(t, sys)
		if sys.Stack.DevOps.IsActive(replaced) {
			t.Error("the replaced PAT is still active after its grace period")
		}
	})

	t.Run("a signed emergency revocation revokes at once", func(t *testing.T) {
		op, replaced := rotateNow(t, `{"revokeNow":true,"reason":"leaked in a build log"}`)
		o := waitOutcome(t, sys, "the emergency revocation", func(o rotation.Outcome) bool {
			return o.Trigger == rotation.TriggerRevoke && o.Op == op
		})
		if o.Status != rotation.StatusRevoked || o.PreviousPATID != replaced {
			t.Errorf("outcome %s/%s for %s (%s), want %s revoked", o.Status, o.Reason, o.PreviousPATID, o.Message, replaced)
		}
		settle(t, sys)
		if sys.Stack.DevOps.IsActive(replaced) {
			t.Error("the leaked PAT is still active")
		}
	})
	requireInvariants(t, sys)
}

// call makes an HTTP call to a function with the function key, as any key holder.
func call(t *testing.T, sys *demo.System, method, function string, params map[string]string, query, body string) (int, http.Header, string) {
	t.Helper()
	u, err := sys.Host.FunctionURL(function, params)
	if err != nil {
		t.Fatal(err)
	}
	if query != "" {
		u += "?" + query
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-functions-key", sys.Host.FunctionKey())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// An HTTP caller learns nothing about secrets patrol does not manage: status answers
// the same for an unmanaged secret, one of patrol's internal secrets and an absent name.
func TestStatusAnswersTheSameForUnmanagedInternalAndAbsent(t *testing.T) {
	sys := start(t, options{seed: true})
	settle(t, sys)
	if _, err := sys.Stack.KV.Put(stack.Vault, "db-password", emukv.NewSecret{Value: "hunter2"}); err != nil {
		t.Fatal(err)
	}
	// A token cache in the secrets vault, as a deployment from before the identity vault
	// (or an unmigrated one) has it: the status function must not tell it apart.
	cache := keyvault.CacheSecretName(stack.ServiceAccount)
	if _, err := sys.Stack.KV.Put(stack.Vault, cache, emukv.NewSecret{Value: "{}", Tags: map[string]string{keyvault.TagKind: keyvault.KindMSALCache}}); err != nil {
		t.Fatal(err)
	}
	answer := func(name string) string {
		code, _, body := call(t, sys, http.MethodGet, "SecretStatus", map[string]string{"secret": name}, "", "")
		return fmt.Sprintf("%d %s", code, strings.ReplaceAll(body, name, "NAME"))
	}
	absent := answer("no-such-secret")
	if !strings.HasPrefix(absent, "404 ") {
		t.Fatalf("an absent name: %s", absent)
	}
	for what, name := range map[string]string{"an unmanaged secret": "db-password", "a token cache": cache} {
		if got := answer(name); got != absent {
			t.Errorf("%s answers %q; an absent name %q", what, got, absent)
		}
	}
	if got := answer(demo.SecretBuild); !strings.HasPrefix(got, "200 ") {
		t.Errorf("a managed secret: %s", got)
	}
}

// An HTTP caller's emergency rotation leaves a trail (its key and reason on the version
// and the outcome), and a second one inside the cooldown is refused with Retry-After.
func TestRotateNowLeavesATrailAndCoolsDown(t *testing.T) {
	sys := start(t, options{seed: true})
	settle(t, sys)
	code, _, body := call(t, sys, http.MethodPost, "RotateNow", map[string]string{"secret": demo.SecretBuild}, "wait=30s",
		`{"reason":"leaked in a build log","requestedBy":"oncall@contoso.com"}`)
	if code != http.StatusOK {
		t.Fatalf("first RotateNow: HTTP %d %s", code, body)
	}
	var res struct {
		Outcome contract.Outcome `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	_, tags, _ := currentOf(t, sys, demo.SecretBuild)
	// The local host names the key that authorised the call ("default"), as Azure's does.
	const who = `function key "default" for "oncall@contoso.com"`
	if tags[rotation.TagRequestReason] != "leaked in a build log" || tags[rotation.TagRequestedBy] != who {
		t.Errorf("version tags requested-by %q reason %q", tags[rotation.TagRequestedBy], tags[rotation.TagRequestReason])
	}
	o := waitOutcome(t, sys, "the manual rotation", func(o rotation.Outcome) bool {
		return o.Op == res.Outcome.OperationID && o.Status == rotation.StatusRotated
	})
	if o.RequestedBy != who {
		t.Errorf("outcome requestedBy %q", o.RequestedBy)
	}
	code, h, body := call(t, sys, http.MethodPost, "RotateNow", map[string]string{"secret": demo.SecretBuild}, "", `{"reason":"again"}`)
	if code != http.StatusTooManyRequests {
		t.Fatalf("second RotateNow: HTTP %d %s, want 429", code, body)
	}
	if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s <= 0 || time.Duration(s)*time.Second > 10*time.Minute {
		t.Errorf("Retry-After %q, want seconds within the 10m cooldown", h.Get("Retry-After"))
	}
	sys.Stack.Clock.Advance(11 * time.Minute)
	if err := sys.RefreshCredentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _, body := call(t, sys, http.MethodPost, "RotateNow", map[string]string{"secret": demo.SecretBuild}, "", ""); code != http.StatusAccepted {
		t.Errorf("after the cooldown: HTTP %d %s, want 202", code, body)
	}
	settle(t, sys)
	requireInvariants(t, sys)
}
