package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/emulator/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// StepTimeout bounds each wait of the tour for an outcome.
const StepTimeout = 20 * time.Second

// Report is the tour's result.
type Report struct {
	Checks []Check
}

// OK reports whether every invariant held.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK() {
			return false
		}
	}
	return len(r.Checks) > 0
}

// timeline prints numbered lines with the wall time since the start and the emulated
// time, and keeps a copy for the token-leak check.
type timeline struct {
	w     io.Writer
	copy  bytes.Buffer
	start time.Time
	sys   *System
}

func (t *timeline) say(format string, a ...any) {
	line := fmt.Sprintf("[%5.1fs | emulated %s] %s\n", time.Since(t.start).Seconds(),
		t.sys.Stack.Clock.Now().Format("Jan 02 15:04"), fmt.Sprintf(format, a...))
	t.copy.WriteString(line)
	fmt.Fprint(t.w, line)
}

func (t *timeline) detail(format string, a ...any) {
	line := "                               " + fmt.Sprintf(format, a...) + "\n"
	t.copy.WriteString(line)
	fmt.Fprint(t.w, line)
}

// Tour plays the scripted tour on a started, seeded System and checks the invariants.
// The returned error is for a tour that could not run; failed invariants are in the
// Report.
//
// Why the clock jumps stay under an hour: the SDKs patrol uses (azidentity, MSAL)
// decide whether a cached access token is still good by the wall clock, while the
// emulators check its expiry on the emulated clock. A jump of more than the tokens'
// lifetime (1h) would make every cached token look valid to the client and expired to
// the server. So the demo secrets use patrol's shortest lifetime (1h, renewed in its
// last third) and a 10-minute grace period.
func Tour(ctx context.Context, sys *System, w io.Writer) (Report, error) {
	t := &timeline{w: w, start: time.Now(), sys: sys}
	fmt.Fprintf(w, "\npatrol local --demo: the scripted tour (function app under devhost: %s)\n\n", sys.Host.URL())
	if sys.Outcomes == nil {
		if err := sys.WatchOutcomes(ctx); err != nil {
			return Report{}, err
		}
	}
	wait := func(what string, match func(rotation.Outcome) bool) (rotation.Outcome, error) {
		wctx, cancel := context.WithTimeout(ctx, StepTimeout)
		defer cancel()
		o, _, err := sys.Outcomes.Wait(wctx, 0, match)
		if err != nil {
			return o, fmt.Errorf("demo: waiting for %s: %w", what, err)
		}
		return o, nil
	}
	is := func(secret string, trig rotation.TriggerKind, st rotation.Status) func(rotation.Outcome) bool {
		return func(o rotation.Outcome) bool { return o.Secret == secret && o.Trigger == trig && o.Status == st }
	}

	revoked := func(secret, pat string) error {
		o, err := wait("the revocation of "+pat, func(o rotation.Outcome) bool {
			return o.Secret == secret && o.Trigger == rotation.TriggerRevoke && o.PreviousPATID == pat &&
				(o.Status == rotation.StatusRevoked || o.Status == rotation.StatusFailed || o.Status == rotation.StatusNeedsAttention)
		})
		if err != nil {
			return err
		}
		how := "revoked at the end of its grace period"
		if o.Owner != "" && !strings.EqualFold(o.Owner, stack.ServiceAccount) {
			how += ", through the token administration API (owner " + o.Owner + ")"
		}
		if o.Status != rotation.StatusRevoked {
			how = string(o.Status) + ": " + o.Message
		}
		t.say("Revoke: %s's replaced PAT %s %s", secret, pat, how)
		return nil
	}

	// 1. Adoption (done by Seed, as `patrol adopt` would).
	adopt, err := wait("the adoption of "+SecretBuild, is(SecretBuild, rotation.TriggerAdopt, rotation.StatusRotated))
	if err != nil {
		return Report{}, err
	}
	t.say("adopt %s: patrol issued PAT %s under %s (expires %s, lifetime 1h)", SecretBuild, adopt.PATID, stack.ServiceAccount, adopt.Expires.Format("15:04"))
	legacy, err := sys.Stack.KV.Secrets(stack.Vault)
	if err != nil {
		return Report{}, err
	}
	for _, s := range legacy {
		if s.Name == SecretLegacy {
			t.say("%s holds PAT %s that %s created by hand; it is tagged for patrol (service account %s)",
				SecretLegacy, s.Current.Tags[rotation.TagPATID], stack.Person, stack.ServiceAccount)
		}
	}

	// 2. Near expiry: Key Vault raises SecretNearExpiry at once for a PAT living less
	// than 30 days; patrol sees it is outside its renew window and schedules a wake-up.
	near, err := wait("the near-expiry event's outcome", func(o rotation.Outcome) bool {
		return o.Secret == SecretBuild && o.Trigger == rotation.TriggerNearExpiry && o.Version == "" && o.Status == rotation.StatusSkipped
	})
	if err != nil {
		return Report{}, err
	}
	t.say("Key Vault → Event Grid → KeyVaultEvents: SecretNearExpiry for %s (a 1h PAT is \"near expiry\" at once)", SecretBuild)
	t.detail("Rotate: %s (%s) — wake-up scheduled for %s, so no rotation loop", near.Reason, near.Message, near.NextCheck.Format("15:04"))

	// 3. Offboarding: HR says alice is leaving.
	eventID := "hr-" + randomHex(6)
	msg := handlers.OffboardingMessage{SchemaVersion: handlers.SchemaVersion, EventID: eventID,
		Person: handlers.Person{UPN: stack.Person}, Reason: "leaver"}
	if err := sys.Ops.Bus.SendOffboarding(ctx, msg); err != nil {
		return Report{}, err
	}
	t.say("HR → hr-offboarding: %s is leaving (event %s)", stack.Person, eventID)
	off, err := wait("the offboarding rotation", is(SecretLegacy, rotation.TriggerOffboarding, rotation.StatusRotated))
	if err != nil {
		return Report{}, err
	}
	t.say("Offboarding → Rotate: %s re-issued under %s (%s): PAT %s replaces %s's PAT %s",
		SecretLegacy, off.Owner, off.Reason, off.PATID, stack.Person, off.PreviousPATID)
	t.detail("%s was not touched: its PAT belongs to %s", SecretBuild, stack.ServiceAccount)

	// 4. Emergency: the PAT of pat-build leaked; rotate now and revoke the old one at once.
	res, err := sys.RotateNow(ctx, SecretBuild, `{"revokeNow":true,"reason":"leaked in a build log","requestedBy":"demo"}`, 30*time.Second)
	if err != nil {
		return Report{}, err
	}
	if res.Outcome == nil || res.Outcome.Kind != handlers.OutcomeRotated {
		return Report{}, fmt.Errorf("demo: emergency rotation: HTTP %d, outcome %+v", res.Status, res.Outcome)
	}
	t.say("POST /api/rotate/%s?wait=30s {revokeNow} → HTTP %d %s, operation %s, version %s",
		SecretBuild, res.Status, res.Body.Status, res.Body.OperationID, res.Outcome.Version)
	rev, err := wait("the immediate revocation", func(o rotation.Outcome) bool {
		return o.Secret == SecretBuild && o.Trigger == rotation.TriggerRevoke && o.Status == rotation.StatusRevoked && o.Op == res.Body.OperationID
	})
	if err != nil {
		return Report{}, err
	}
	t.say("Revoke: the leaked PAT %s is revoked now, not after the grace period", rev.PreviousPATID)

	// 5. Renewal: move time to the emergency version's renew window; the wake-up
	// patrol scheduled for it rotates the secret. On the way, alice's replaced PAT
	// reaches the end of its grace period and is revoked.
	st, err := sys.Status(ctx)
	if err != nil {
		return Report{}, err
	}
	var renewAt time.Time
	for _, s := range st.Secrets {
		if s.Name == SecretBuild {
			renewAt = s.RenewAt
		}
	}
	if renewAt.IsZero() {
		return Report{}, fmt.Errorf("demo: status of %s has no renewal time", SecretBuild)
	}
	jump := renewAt.Sub(sys.Stack.Clock.Now()) + time.Minute
	t.say("advance the emulated clock by %s, into %s's renew window", jump.Round(time.Minute), SecretBuild)
	sys.Stack.Clock.Advance(jump)
	woke, err := wait("the wake-up rotation", is(SecretBuild, rotation.TriggerWakeup, rotation.StatusRotated))
	if err != nil {
		return Report{}, err
	}
	t.say("wake-up → Rotate: %s rotated (%s): new PAT %s replaces %s, whose revocation is scheduled after the 10m grace",
		SecretBuild, woke.Reason, woke.PATID, woke.PreviousPATID)
	if err := revoked(SecretLegacy, off.PreviousPATID); err != nil {
		return Report{}, err
	}
	if sw := sweeps(sys.Outcomes.All()); sw > 0 {
		t.detail("(the jump crossed a Sweep firing, %s: %d outcome(s) of sweep commands)", sys.Settings["PATROL_SWEEP_SCHEDULE"], sw)
	}

	// 6. Grace: the PAT the wake-up replaced is revoked when its grace period ends.
	t.say("advance the emulated clock by 11m (past the 10m grace period)")
	sys.Stack.Clock.Advance(11 * time.Minute)
	if err := revoked(SecretBuild, woke.PreviousPATID); err != nil {
		return Report{}, err
	}

	// 7. Status, as an operator sees it.
	if st, err = sys.Status(ctx); err != nil {
		return Report{}, err
	}
	t.say("GET /api/status:")
	for _, s := range st.Secrets {
		t.detail("%-11s owner %-22s PAT %s  expires %s  next %s", s.Name, s.Owner, s.PATID, s.Expires.Format("Jan 02 15:04"), s.RenewAt.Format("Jan 02 15:04"))
	}

	// 8. Invariants.
	checks, err := sys.CheckInvariants(ctx, t.copy.String())
	if err != nil {
		return Report{}, err
	}
	fmt.Fprintln(w, "\nInvariants (DESIGN.md):")
	for _, c := range checks {
		mark := "ok  "
		if !c.OK() {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s (%d checked)\n", mark, c.Name, c.Checked)
		for _, f := range c.Failures {
			fmt.Fprintf(w, "       - %s\n", f)
		}
	}
	return Report{Checks: checks}, nil
}

// RotateNowReply is the HTTP answer of RotateNow.
type RotateNowReply struct {
	Status int
	Body   struct {
		OperationID string            `json:"operationId"`
		Secret      string            `json:"secret"`
		Status      string            `json:"status"`
		StatusURL   string            `json:"statusUrl"`
		Outcome     *handlers.Outcome `json:"outcome"`
		Error       *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	Outcome *handlers.Outcome
}

// RotateNow calls the RotateNow function over HTTP with the function key.
func (s *System) RotateNow(ctx context.Context, secret, body string, wait time.Duration) (RotateNowReply, error) {
	u, err := s.Host.FunctionURL("RotateNow", map[string]string{"secret": secret})
	if err != nil {
		return RotateNowReply{}, err
	}
	if wait > 0 {
		u += "?wait=" + wait.String()
	}
	var r RotateNowReply
	status, err := s.callFunction(ctx, http.MethodPost, u, body, &r.Body)
	r.Status, r.Outcome = status, r.Body.Outcome
	return r, err
}

// Status calls SecretStatus for every managed secret.
func (s *System) Status(ctx context.Context) (handlers.StatusResult, error) {
	u, err := s.Host.FunctionURL("SecretStatus", map[string]string{})
	if err != nil {
		return handlers.StatusResult{}, err
	}
	var res handlers.StatusResult
	status, err := s.callFunction(ctx, http.MethodGet, u, "", &res)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("demo: GET status: HTTP %d", status)
	}
	return res, err
}

func (s *System) callFunction(ctx context.Context, method, u, body string, out any) (int, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("x-functions-key", s.Host.FunctionKey())
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("demo: %s %s: %w", method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("demo: %s %s: HTTP %d, not JSON: %.200s", method, req.URL.Path, res.StatusCode, raw)
		}
	}
	return res.StatusCode, nil
}

// sweeps counts the sweep-triggered outcomes.
func sweeps(all []rotation.Outcome) int {
	n := 0
	for _, o := range all {
		if o.Trigger == rotation.TriggerSweep {
			n++
		}
	}
	return n
}
