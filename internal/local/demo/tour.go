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

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/devhost"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
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
// The demo secrets use patrol's defaults (90-day PATs, a 30-day renew window, three days
// of grace), and the tour moves the emulated clock by months. That used to be unsafe:
// the SDKs judge a cached access token's expiry by the wall clock, the emulators by
// the emulated one, so after a jump every cached token looked valid to its client and
// expired to its server. Each path now recovers as it would from a revoked token in
// Azure: Key Vault answers an expired token with a CAE claims challenge, which
// azcore/azidentity (managed identity included) meet by fetching a new token; the Azure
// DevOps emulator does the same (both deliberate local divergences,
// docs/emulator-fidelity.md D6), and patrol answers the challenge with a token MSAL
// gets for its claims; and the Service Bus emulator checks SAS expiry on the wall clock, as the
// token was signed on it.
//
// What still needs care is ordering. The Sweep timer runs once, past due, after any
// jump over its schedule, so the near-expiry step jumps in two moves: to just before
// the event (the Sweep and the revocations due on the way run and settle, nothing is
// due yet), then over it. And patrol's own wake-up for a version is scheduled for the
// start of its renew window, which for a 90-day PAT is the very instant Key Vault
// raises SecretNearExpiry: the two race, and the wake-up (one hop, no webhook) usually
// wins, the event's command then finding the version already replaced. The tour says
// which of the two did it.
func Tour(ctx context.Context, sys *System, w io.Writer) (Report, error) {
	t := &timeline{w: w, start: time.Now(), sys: sys}
	fmt.Fprintf(w, "\npatrol-dev local --demo: the scripted tour (function app under devhost: %s)\n\n", sys.Host.URL())
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
	grace := sys.Ops.Defaults.Grace

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
	t.say("adopt %s: patrol issued PAT %s under %s (expires %s, lifetime %s)", SecretBuild, adopt.PATID, stack.ServiceAccount,
		adopt.Expires.Format("Jan 02 15:04"), days(sys.Ops.Defaults.Lifetime))
	secrets, err := sys.Stack.KV.Secrets(stack.Vault)
	if err != nil {
		return Report{}, err
	}
	for _, s := range secrets {
		if s.Name == SecretLegacy {
			t.say("%s holds PAT %s that %s created by hand; it is tagged for patrol (service account %s)",
				SecretLegacy, s.Current.Tags[rotation.TagPATID], stack.Person, stack.ServiceAccount)
		}
	}

	// 2. Offboarding: HR says alice is leaving.
	eventID := "hr-" + randomHex(6)
	msg := contract.OffboardingMessage{SchemaVersion: contract.SchemaVersion, EventID: eventID,
		Person: contract.Person{UPN: stack.Person}, Reason: "leaver"}
	if err := sys.Ops.Bus.SendOffboarding(ctx, msg); err != nil {
		return Report{}, err
	}
	t.say("HR → hr-offboarding: %s is leaving (event %s)", stack.Person, eventID)
	off, err := wait("the offboarding rotation", is(SecretLegacy, rotation.TriggerOffboarding, rotation.StatusRotated))
	if err != nil {
		return Report{}, err
	}
	t.say("Offboarding → Rotate: %s re-issued under %s (%s): PAT %s replaces %s's PAT %s, revoked after the %s grace",
		SecretLegacy, off.Owner, off.Reason, off.PATID, stack.Person, off.PreviousPATID, days(grace))
	t.detail("%s was not touched: its PAT belongs to %s", SecretBuild, stack.ServiceAccount)
	report, err := wait("the offboarding report", func(o rotation.Outcome) bool {
		return o.Status == contract.StatusOffboardingReport && o.Account != nil && o.Account.EventID == eventID
	})
	if err != nil {
		return Report{}, err
	}
	t.say("Offboarding → pat-events: offboarding-report for %s: %s", stack.Person, report.Message)
	for _, org := range report.Account.Organizations {
		if org.Problem != "" {
			t.detail("%s: %s", org.Org, org.Problem)
		}
		for _, p := range org.PATs {
			if p.Class == contract.PATUnmanaged {
				t.detail("unmanaged in %s: %q (%s, expires %s), PAT %s: no secret holds it — find what uses it before the account is disabled",
					org.Org, p.DisplayName, strings.Join(p.Scopes, " "), p.Expires.Format("Jan 02"), p.PATID)
			}
		}
	}

	// 3. Near expiry: move the emulated clock to the day Key Vault raises
	// SecretNearExpiry for pat-build (30 days before exp, where patrol's renew window
	// begins) and let Event Grid → KeyVaultEvents → Rotate replace it.
	nearAt, nearVersion, err := nearExpiryAt(sys, SecretBuild)
	if err != nil {
		return Report{}, err
	}
	before, err := stopShortOf(sys, nearAt)
	if err != nil {
		return Report{}, err
	}
	t.say("advance the emulated clock by %s, to just before Key Vault's near-expiry date for %s (%s)",
		days(before.Sub(sys.Stack.Clock.Now())), SecretBuild, nearAt.Format("Jan 02 15:04"))
	sweepsBefore := sys.Host.Counts("Sweep")
	sweepDue := sweepWithin(sys, sys.Stack.Clock.Now(), before)
	if err := sys.advance(ctx, before.Sub(sys.Stack.Clock.Now())); err != nil {
		return Report{}, err
	}
	if err := revoked(SecretLegacy, off.PreviousPATID); err != nil {
		return Report{}, err
	}
	if sweepDue {
		if err := sys.waitSweep(ctx, sweepsBefore); err != nil {
			return Report{}, err
		}
		t.detail("(the jump crossed Sweep's schedule %s: it ran once, past due, and found nothing due yet)", sys.Settings["PATROL_SWEEP_SCHEDULE"])
	}
	if err := sys.settle(ctx); err != nil {
		return Report{}, err
	}
	step := nearAt.Sub(sys.Stack.Clock.Now()) + time.Minute
	t.say("advance the emulated clock by %s, past %s", step.Round(time.Second), nearAt.Format("Jan 02 15:04"))
	if err := sys.advance(ctx, step); err != nil {
		return Report{}, err
	}
	near, err := wait("the near-expiry rotation of "+SecretBuild, is(SecretBuild, rotation.TriggerNearExpiry, rotation.StatusRotated))
	if err != nil {
		return Report{}, err
	}
	t.say("Key Vault → Event Grid → KeyVaultEvents: SecretNearExpiry for %s (version %s)", SecretBuild, nearVersion)
	t.detail("Rotate: %s rotated by the event (%s): new PAT %s replaces %s, whose revocation is scheduled after the %s grace",
		SecretBuild, near.Reason, near.PATID, near.PreviousPATID, days(grace))
	t.detail("(patrol's own wake-up for that version, an hour later, only backs up a lost event: it will find the version replaced)")
	legacyNear, err := wait("the near-expiry of "+SecretLegacy, func(o rotation.Outcome) bool {
		return o.Secret == SecretLegacy && o.Status == rotation.StatusRotated && o.PreviousPATID == off.PATID
	})
	if err != nil {
		return Report{}, err
	}
	t.detail("%s, re-issued the same day, reached its renew window too: %s rotated it (PAT %s replaces %s)",
		SecretLegacy, legacyNear.Trigger, legacyNear.PATID, legacyNear.PreviousPATID)

	// 4. Emergency: the new PAT of pat-build leaked; rotate now and revoke it at once.
	res, err := sys.RotateNow(ctx, SecretBuild, `{"revokeNow":true,"reason":"leaked in a build log","requestedBy":"demo"}`, 30*time.Second)
	if err != nil {
		return Report{}, err
	}
	if res.Outcome == nil || res.Outcome.Status != contract.StatusRotated {
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

	// 5. Grace: the PATs the near-expiry rotations replaced are revoked when their
	// grace period ends.
	if err := sys.settle(ctx); err != nil {
		return Report{}, err
	}
	pastGrace := near.Time.Add(grace).Sub(sys.Stack.Clock.Now()) + time.Minute
	t.say("advance the emulated clock by %s (past the %s grace period)", pastGrace.Round(time.Minute), days(grace))
	if err := sys.advance(ctx, pastGrace); err != nil {
		return Report{}, err
	}
	if err := revoked(SecretBuild, near.PreviousPATID); err != nil {
		return Report{}, err
	}
	if err := revoked(SecretLegacy, legacyNear.PreviousPATID); err != nil {
		return Report{}, err
	}

	// 6. Status, as an operator sees it.
	st, err := sys.Status(ctx)
	if err != nil {
		return Report{}, err
	}
	t.say("GET /api/status:")
	for _, s := range st.Secrets {
		t.detail("%-11s owner %-22s PAT %s  expires %s  next %s", s.Secret, s.Owner, s.PATID, s.Expires.Format("Jan 02 15:04"), s.RenewAt.Format("Jan 02 15:04"))
	}

	// 7. Invariants.
	checks, err := sys.CheckInvariants(ctx, t.copy.String())
	if err != nil {
		return Report{}, err
	}
	fmt.Fprintln(w, "\nInvariants (docs/design.md):")
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
		Outcome     *contract.Outcome `json:"outcome"`
		Error       *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	Outcome *contract.Outcome
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
func (s *System) Status(ctx context.Context) (contract.StatusResult, error) {
	u, err := s.Host.FunctionURL("SecretStatus", map[string]string{})
	if err != nil {
		return contract.StatusResult{}, err
	}
	var res contract.StatusResult
	status, err := s.callFunction(ctx, http.MethodGet, u, "", &res)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("demo: GET status: HTTP %d", status)
	}
	return res, err
}

// Account calls OffboardingReport: the account of a person (UPN or object id), live.
func (s *System) Account(ctx context.Context, person string) (contract.PersonAccount, error) {
	u, err := s.Host.FunctionURL("OffboardingReport", map[string]string{"person": person})
	if err != nil {
		return contract.PersonAccount{}, err
	}
	var acc contract.PersonAccount
	status, err := s.callFunction(ctx, http.MethodGet, u, "", &acc)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("demo: GET offboarding/%s: HTTP %d", person, status)
	}
	return acc, err
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

// nearExpiryAt is when Key Vault raises SecretNearExpiry for the secret's current
// version, and that version.
func nearExpiryAt(sys *System, secret string) (time.Time, string, error) {
	secrets, err := sys.Stack.KV.Secrets(stack.Vault)
	if err != nil {
		return time.Time{}, "", err
	}
	for _, s := range secrets {
		if s.Name == secret && s.Current.Expires != nil {
			return s.Current.Expires.Add(-kvemu.NearExpiryLead), s.Current.Version, nil
		}
	}
	return time.Time{}, "", fmt.Errorf("demo: %s has no current version with an expiry date", secret)
}

// stopShortOf is where the first move of a two-move jump to at ends: a minute before
// it, or earlier if Sweep's next run after that would fall in the second move (a sweep
// then would race Key Vault's event for the same rotation).
func stopShortOf(sys *System, at time.Time) (time.Time, error) {
	sched, err := devhost.ParseSchedule(sys.Settings[config.SettingSweepSchedule])
	if err != nil {
		return time.Time{}, fmt.Errorf("demo: sweep schedule: %w", err)
	}
	stop := at.Add(-time.Minute)
	for range 10 {
		if sched.Next(stop).After(at.Add(2 * time.Minute)) {
			return stop, nil
		}
		stop = stop.Add(-5 * time.Minute)
	}
	return time.Time{}, fmt.Errorf("demo: the sweep schedule %q runs too often to step past %s without a sweep", sys.Settings[config.SettingSweepSchedule], at.Format(time.RFC3339))
}

// sweepWithin reports whether Sweep's schedule has a run in (from, to].
func sweepWithin(sys *System, from, to time.Time) bool {
	sched, err := devhost.ParseSchedule(sys.Settings[config.SettingSweepSchedule])
	return err == nil && !sched.Next(from).After(to)
}

// advance moves the emulated clock once nothing is in flight: a Service Bus message
// locked across a jump of days would lose its lock before the host could renew it and
// be delivered twice.
func (s *System) advance(ctx context.Context, d time.Duration) error {
	if err := s.settle(ctx); err != nil {
		return err
	}
	s.Stack.Clock.Advance(d)
	return nil
}

// settle waits until the devhost has no invocation in flight and patrol's queues have
// no active or locked message, three times in a row (an invocation may enqueue more).
func (s *System) settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	for quiet := 0; quiet < 3; {
		if err := s.Host.WaitIdle(ctx); err != nil {
			return fmt.Errorf("demo: settle: %w", err)
		}
		if s.busy() == 0 {
			quiet++
		} else {
			quiet = 0
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: settle: %d message(s) still active or locked: %w", s.busy(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// busy counts the active and locked messages of patrol's queues.
func (s *System) busy() int {
	n := 0
	for _, e := range s.Stack.SB.Store().Snapshot() {
		switch e.Path {
		case "hr-offboarding", "pat-rotations", "pat-revocations":
			if e.Kind != "deadletter" {
				n += e.Counts.Active + e.Counts.Locked
			}
		}
	}
	return n
}

// waitSweep waits until Sweep has finished a run more than before counted.
func (s *System) waitSweep(ctx context.Context, before devhost.Counts) error {
	ctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	for {
		c := s.Host.Counts("Sweep")
		if c.Succeeded+c.Failed > before.Succeeded+before.Failed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: waiting for the past-due Sweep run: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// days renders a duration in days when it is whole days ("90d"), else as Go does.
func days(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	if d >= 24*time.Hour {
		return fmt.Sprintf("%dd%s", d/(24*time.Hour), strings.TrimSuffix((d%(24*time.Hour)).Round(time.Minute).String(), "0s"))
	}
	return d.Round(time.Second).String()
}
