package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
	rt "github.com/patrol-dev/patrol/internal/rotation/rotationtest"
)

const (
	day    = 24 * time.Hour
	svc    = "svc-build@contoso.com"
	org    = "contoso"
	secret = "pat-build"
)

var start = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// bounds admit the fixtures' policies: svc in contoso, non-sensitive scopes.
var bounds = rotation.Bounds{
	Orgs: []string{org}, ServiceAccounts: map[string][]string{svc: {org}},
	Scopes: []string{"vso.*"}, MaxLifetime: 90 * day, MaxGrace: 7 * day,
}

type fixture struct {
	t      *testing.T
	w      *rt.World
	r      *rotation.Rotator
	logs   *bytes.Buffer
	slept  []time.Duration
	oldPAT string
	oldTok string
	errs   []error
}

// newFixture: a managed secret holding a 90-day PAT patrol issued under svc 80 days
// ago (so 10 days are left: inside the 14-day renew window).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, w: rt.NewWorld(start.Add(-80 * day)), logs: &bytes.Buffer{}}
	f.oldPAT, f.oldTok = f.w.IssuePAT(org, svc, "patrol pat-build earlierop", start.Add(10*day))
	f.w.PutSecret(secret, f.oldTok, start.Add(10*day), true, map[string]string{
		rotation.TagManaged: "true", rotation.TagOrg: org, rotation.TagScopes: "vso.code vso.packaging",
		rotation.TagServiceAccount: svc, rotation.TagOwner: svc, rotation.TagPATID: f.oldPAT, rotation.TagOp: "earlierop",
		"team": "build",
	})
	f.w.Advance(80 * day)
	f.r = rotation.NewRotator(f.w.Store(), f.w.PATs(), f.w.Identities(), f.w.Effects(), rotation.Options{
		Defaults: rotation.Defaults{Lifetime: 90 * day, Grace: 24 * time.Hour, RenewBefore: 14 * day, Bounds: bounds},
		Logger:   slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:    fixtureClock{f},
	})
	t.Cleanup(f.checkNoLeaks)
	return f
}

// fixtureClock reads the World's time and records the core's waits instead of waiting.
type fixtureClock struct{ f *fixture }

func (c fixtureClock) Now() time.Time { return c.f.w.Now() }

func (c fixtureClock) Sleep(_ context.Context, d time.Duration) error {
	c.f.slept = append(c.f.slept, d)
	return nil
}

func (f *fixture) run(trig rotation.Trigger) (rotation.Outcome, error) {
	o, err := f.r.Run(context.Background(), secret, trig)
	if err != nil {
		f.errs = append(f.errs, err)
	}
	return o, err
}

// checkNoLeaks searches everything the core emitted — logs, errors, published
// outcomes — for every value the world issued (PATs, access tokens, secret values).
func (f *fixture) checkNoLeaks() {
	var all strings.Builder
	all.WriteString(f.logs.String())
	for _, err := range f.errs {
		all.WriteString(err.Error())
	}
	for _, o := range f.w.Outcomes() {
		b, _ := json.Marshal(o)
		all.Write(b)
		fmt.Fprintf(&all, "%+v", o)
	}
	for _, v := range f.w.Issued() {
		if strings.Contains(all.String(), v) {
			f.t.Errorf("a token value appears in logs, errors or outcomes") // not the value itself
		}
	}
}

// converged checks the invariants after every scheduled revocation whose time has
// come has run: the secret holds a working PAT of the service account, recorded in
// its tags, and it is the only active PAT.
func (f *fixture) converged() rotation.Version {
	f.t.Helper()
	value, cur, ok := f.w.Value(secret)
	if !ok {
		f.t.Fatal("secret vanished")
	}
	if !f.w.TokenWorks(value) {
		f.t.Fatal("the current version holds a PAT that does not work")
	}
	st, err := rotation.ParseState(cur.Tags)
	if err != nil {
		f.t.Fatal(err)
	}
	f.w.Advance(25 * time.Hour)
	if errs := f.w.RunDueRevocations(context.Background(), f.r.Revoke); len(errs) > 0 {
		f.t.Fatalf("revocations failed: %v", errs)
	}
	active := f.w.Active()
	if len(active) != 1 || active[0].ID != st.PATID {
		f.t.Fatalf("active PATs = %v, want only the stored one %s", ids(active), st.PATID)
	}
	if !f.w.TokenWorks(value) {
		f.t.Fatal("the current PAT stopped working after revocations ran")
	}
	if p, _ := f.w.PAT(st.PATID); p.Owner != svc {
		f.t.Errorf("stored PAT belongs to %s, want %s", p.Owner, svc)
	}
	return cur
}

func ids(ps []rt.PAT) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID+"("+p.DisplayName+")")
	}
	return out
}

func manual(op string) rotation.Trigger {
	return rotation.Trigger{Kind: rotation.TriggerManual, Op: op}
}

func TestRotateHappyPath(t *testing.T) {
	f := newFixture(t)
	o, err := f.run(manual("m1"))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if o.Status != rotation.StatusRotated || o.Reason != rotation.ReasonManual || o.PreviousPATID != f.oldPAT || o.PATID == "" || o.Owner != svc {
		t.Errorf("outcome = %+v", o)
	}
	_, cur, _ := f.w.Value(secret)
	wantExp := start.Add(90 * day)
	if !cur.Expires.Equal(wantExp) || !o.Expires.Equal(wantExp) {
		t.Errorf("expires = %v, want the returned validTo %v", cur.Expires, wantExp)
	}
	for k, want := range map[string]string{
		rotation.TagOp: "m1", rotation.TagReason: "manual", rotation.TagPreviousPATID: f.oldPAT, rotation.TagPATID: o.PATID,
		rotation.TagOwner: svc, rotation.TagOrg: org, "team": "build", rotation.TagManaged: "true",
	} {
		if cur.Tags[k] != want {
			t.Errorf("tag %s = %q, want %q", k, cur.Tags[k], want)
		}
	}
	revs := f.w.Revocations()
	if len(revs) != 1 || revs[0].PATID != f.oldPAT || !revs[0].At.Equal(start.Add(24*time.Hour)) || !revs[0].GraceEnd.Equal(revs[0].At) || revs[0].Account != svc {
		t.Errorf("revocations = %+v, want the old PAT after the 24h grace", revs)
	}
	wakes := f.w.Wakeups()
	if want := wantExp.Add(-14 * day).Add(rotation.WakeupLag); len(wakes) != 1 || wakes[0].Version != cur.ID || !wakes[0].At.Equal(want) {
		t.Errorf("wake-ups = %+v, want one an hour after the new PAT's renew window opens, %v", wakes, want)
	}
	if !f.w.TokenWorks(f.oldTok) {
		t.Error("the old PAT was revoked before its grace period")
	}
	f.converged()
}

func TestRotateSameOperationTwiceMakesOnePAT(t *testing.T) {
	f := newFixture(t)
	if _, err := f.run(manual("m1")); err != nil {
		t.Fatal(err)
	}
	o, err := f.run(manual("m1"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != rotation.StatusSkipped || o.Reason != rotation.ReasonAlreadyDone {
		t.Errorf("second run = %s/%s, want skipped/already-done", o.Status, o.Reason)
	}
	if n := f.w.Calls(rt.OpCreate); n != 1 {
		t.Errorf("PATs created = %d, want 1", n)
	}
	if n := f.w.Versions(secret); n != 2 {
		t.Errorf("versions = %d, want 2 (the original and one rotation)", n)
	}
	f.converged()
}

// TestRotateCrashAfterEveryStepConverges kills the "process" right after each
// operation took effect, then redelivers the same command.
func TestRotateCrashAfterEveryStepConverges(t *testing.T) {
	for _, op := range []string{
		rt.OpCurrent, rt.OpAccessToken, rt.OpFindByDisplayName, rt.OpCreate, rt.OpVerify,
		rt.OpSetVersion, rt.OpScheduleRevocation, rt.OpScheduleWakeup, rt.OpPublish,
	} {
		t.Run("a crash after "+op+" converges on redelivery", func(t *testing.T) {
			f := newFixture(t)
			f.w.Inject(op, rt.Fault{Crash: true, Times: 1})
			crash := rt.Survive(func() { _, _ = f.run(manual("m1")) })
			if crash == nil || crash.Op != op {
				t.Fatalf("crash = %v, want one at %s", crash, op)
			}
			if value, _, _ := f.w.Value(secret); !f.w.TokenWorks(value) {
				t.Fatal("after the crash the secret holds a PAT that does not work")
			}
			o, err := f.run(manual("m1"))
			if err != nil {
				t.Fatalf("redelivery: %v", err)
			}
			if o.Status != rotation.StatusRotated && o.Reason != rotation.ReasonAlreadyDone {
				t.Errorf("redelivery = %s/%s", o.Status, o.Reason)
			}
			cur := f.converged()
			if cur.Tags[rotation.TagOp] != "m1" {
				t.Errorf("current version written by %q, want m1", cur.Tags[rotation.TagOp])
			}
			if p, _ := f.w.PAT(f.oldPAT); !p.Revoked {
				t.Error("the replaced PAT was never revoked")
			}
			if len(f.w.Wakeups()) == 0 {
				t.Error("no wake-up scheduled for the new version")
			}
		})
	}
}

func TestRotatePermanentPolicyFailureLeavesTheOldPATUntouched(t *testing.T) {
	f := newFixture(t)
	f.w.OrgPolicy = func(rotation.PATRequest) error { return rt.PolicyViolation("patLifespanPolicyViolation") }
	o, err := f.run(manual("m1"))
	if err == nil || rotation.IsPermanent(err) == false {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	if o.Status != rotation.StatusFailed || o.Step != rotation.StepCreate || o.Retryable {
		t.Errorf("outcome = %s at %q retryable=%v, want failed at create, not retryable", o.Status, o.Step, o.Retryable)
	}
	if n := f.w.Calls(rt.OpCreate); n != 1 {
		t.Errorf("create called %d times, want 1 (no retry of a permanent error)", n)
	}
	value, _, _ := f.w.Value(secret)
	if value != f.oldTok || f.w.Versions(secret) != 1 || !f.w.TokenWorks(f.oldTok) {
		t.Error("the old PAT was touched")
	}
	if len(f.w.Active()) != 1 {
		t.Errorf("active PATs = %v, want only the old one", ids(f.w.Active()))
	}
	if got := f.w.Outcomes(); len(got) != 1 || got[0].Status != rotation.StatusFailed {
		t.Errorf("published %+v, want one failed outcome", got)
	}
}

func TestRotateTransientFailuresComplete(t *testing.T) {
	tests := map[string]struct {
		op        string
		fault     rt.Fault
		wantSlept []time.Duration // exact waits when the server said Retry-After
	}{
		"throttled PAT creation honours Retry-After": {
			op: rt.OpCreate, fault: rt.Fault{Err: rt.Throttled(2 * time.Second), Times: 2},
			wantSlept: []time.Duration{2 * time.Second, 2 * time.Second},
		},
		"a 503 from Key Vault on write is retried": {op: rt.OpSetVersion, fault: rt.Fault{Err: rt.Unavailable(), Times: 1}},
		"a 503 on verify is retried":               {op: rt.OpVerify, fault: rt.Fault{Err: rt.Unavailable(), Times: 2}},
		"a lost answer to create is cleaned up before the retry": {
			op: rt.OpCreate, fault: rt.Fault{Err: rt.Unavailable(), After: true, Times: 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.w.Inject(tc.op, tc.fault)
			o, err := f.run(manual("m1"))
			if err != nil || o.Status != rotation.StatusRotated {
				t.Fatalf("Run = %s, %v; want rotated", o.Status, err)
			}
			if tc.wantSlept != nil && fmt.Sprint(f.slept) != fmt.Sprint(tc.wantSlept) {
				t.Errorf("slept %v, want %v", f.slept, tc.wantSlept)
			}
			if len(f.slept) == 0 {
				t.Error("no back-off between attempts")
			}
			f.converged()
		})
	}
}

func TestRotateLongRetryAfterIsSurfacedToTheCaller(t *testing.T) {
	f := newFixture(t)
	f.w.Inject(rt.OpCreate, rt.Fault{Err: rt.Throttled(rotation.MaxRetryWait + time.Second), Times: 1})
	o, err := f.run(manual("m1"))
	if err == nil || rotation.IsPermanent(err) || rotation.RetryAfter(err) != rotation.MaxRetryWait+time.Second || !o.Retryable {
		t.Fatalf("err = %v (retry after %v), want a retryable error carrying Retry-After", err, rotation.RetryAfter(err))
	}
	if len(f.slept) != 0 {
		t.Errorf("slept %v inside the core, want none", f.slept)
	}
	if o, err := f.run(manual("m1")); err != nil || o.Status != rotation.StatusRotated {
		t.Fatalf("redelivery = %s, %v", o.Status, err)
	}
	f.converged()
}

// The Service Bus client retries the effects itself (retry.go): the core calls them once,
// and a failure after the store goes back to the trigger, whose redelivery finishes.
func TestRotateDoesNotRetryEffects(t *testing.T) {
	f := newFixture(t)
	f.w.Inject(rt.OpPublish, rt.Fault{Err: rt.Throttled(time.Second), Times: 1})
	o, err := f.run(manual("m1"))
	if err == nil || rotation.IsPermanent(err) || !o.Retryable || o.Step != rotation.StepPublish {
		t.Fatalf("Run = %s at %q retryable=%v, %v; want a retryable failure at publish", o.Status, o.Step, o.Retryable, err)
	}
	if n := f.w.Calls(rt.OpPublish); n != 1 || len(f.slept) != 0 {
		t.Errorf("%d publishes, slept %v; want one publish and no wait", n, f.slept)
	}
	if o, err := f.run(manual("m1")); err != nil || o.Status != rotation.StatusSkipped || o.Reason != rotation.ReasonAlreadyDone {
		t.Fatalf("redelivery = %s (%s), %v; want skipped as already done", o.Status, o.Reason, err)
	}
	f.converged()
}

// The core is the retry layer for Key Vault, Azure DevOps and sign-in calls (see
// retry.go): these rows pin its bounds.
func TestRotateRetryBounds(t *testing.T) {
	tests := map[string]struct {
		fault     rt.Fault
		deadline  time.Duration // 0: none
		wantCalls int           // creates attempted
		wantSlept []time.Duration
		wantOK    bool
	}{
		"a persistent 503 costs three attempts of the step, then a retryable failure": {
			fault: rt.Fault{Err: rt.Unavailable()}, wantCalls: 3,
		},
		"throttling is sat out inside the invocation while the waits add up to MaxRetryWait": {
			fault: rt.Fault{Err: rt.Throttled(10 * time.Second), Times: 2}, wantCalls: 3,
			wantSlept: []time.Duration{10 * time.Second, 10 * time.Second}, wantOK: true,
		},
		"throttles do not use up attempts (a busy vault slows a step, it does not fail it)": {
			fault: rt.Fault{Err: rt.Throttled(5 * time.Second), Times: 5}, wantCalls: 6,
			wantSlept: []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}, wantOK: true,
		},
		"throttles past MaxRetryWait in all are handed back with their Retry-After, for the function app to reschedule": {
			fault: rt.Fault{Err: rt.Throttled(20 * time.Second), Times: 5}, wantCalls: 2,
			wantSlept: []time.Duration{20 * time.Second},
		},
		"throttling for longer than MaxRetryWait is handed back at once, for the function app to reschedule": {
			fault: rt.Fault{Err: rt.Throttled(10 * time.Minute), Times: 1}, wantCalls: 1, wantSlept: []time.Duration{},
		},
		"a Retry-After that would outlast the invocation's deadline is not waited for": {
			fault: rt.Fault{Err: rt.Throttled(20 * time.Second), Times: 1}, deadline: 40 * time.Second, wantCalls: 1,
		},
		"a Retry-After that leaves time to report is waited for": {
			fault: rt.Fault{Err: rt.Throttled(20 * time.Second), Times: 1}, deadline: 2 * time.Minute, wantCalls: 2,
			wantSlept: []time.Duration{20 * time.Second}, wantOK: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.w.Inject(rt.OpCreate, tc.fault)
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			o, err := f.r.Run(ctx, secret, manual("m1"))
			if got := f.w.Calls(rt.OpCreate); got != tc.wantCalls {
				t.Errorf("%d creates attempted, want %d", got, tc.wantCalls)
			}
			if tc.wantSlept != nil && fmt.Sprint(f.slept) != fmt.Sprint(tc.wantSlept) {
				t.Errorf("slept %v, want %v", f.slept, tc.wantSlept)
			}
			if tc.wantOK {
				if err != nil || o.Status != rotation.StatusRotated {
					t.Fatalf("Run = %s, %v; want rotated", o.Status, err)
				}
				f.converged()
				return
			}
			if err == nil || rotation.IsPermanent(err) || !o.Retryable || o.Step != rotation.StepCreate {
				t.Fatalf("Run = %s at %q retryable=%v, %v; want a retryable failure at create", o.Status, o.Step, o.Retryable, err)
			}
			f.errs = append(f.errs, err) // scanned for leaks
		})
	}
}

func TestRotateFailuresRevokeTheNewPAT(t *testing.T) {
	permanent := &rt.Error{Msg: "403 Forbidden", IsPermanent: true}
	tests := map[string]struct {
		setup    func(f *fixture)
		wantStep rotation.Step
	}{
		"verification failure revokes the new PAT": {
			setup:    func(f *fixture) { f.w.Inject(rt.OpVerify, rt.Fault{Err: permanent}) },
			wantStep: rotation.StepVerify,
		},
		"a PAT that authenticates as someone else is revoked": {
			setup: func(f *fixture) {
				f.r = rotation.NewRotator(f.w.Store(), wrongIdentity{f.w.PATs()}, f.w.Identities(), f.w.Effects(), rotation.Options{
					Defaults: rotation.Defaults{Lifetime: 90 * day, Grace: time.Hour, RenewBefore: 14 * day, Bounds: bounds}, Clock: fixtureClock{f},
				})
			},
			wantStep: rotation.StepVerify,
		},
		"write failure revokes the new PAT": {
			setup:    func(f *fixture) { f.w.Inject(rt.OpSetVersion, rt.Fault{Err: permanent}) },
			wantStep: rotation.StepStore,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			o, err := f.run(manual("m1"))
			if err == nil || o.Status != rotation.StatusFailed || o.Step != tc.wantStep {
				t.Fatalf("Run = %s at %q, %v; want failed at %s", o.Status, o.Step, err, tc.wantStep)
			}
			if f.w.Calls(rt.OpCreate) != 1 {
				t.Fatalf("create called %d times", f.w.Calls(rt.OpCreate))
			}
			active := f.w.Active()
			if len(active) != 1 || active[0].ID != f.oldPAT {
				t.Errorf("active PATs = %v, want only the old one (new one revoked)", ids(active))
			}
			if value, _, _ := f.w.Value(secret); value != f.oldTok {
				t.Error("the secret no longer holds the old PAT")
			}
		})
	}
}

func TestRotateWriteWhoseAnswerWasLostKeepsTheNewPAT(t *testing.T) {
	f := newFixture(t)
	f.w.Inject(rt.OpSetVersion, rt.Fault{Err: &rt.Error{Msg: "connection reset", IsPermanent: true}, After: true, Times: 1})
	o, err := f.run(manual("m1"))
	if err != nil || o.Status != rotation.StatusRotated {
		t.Fatalf("Run = %s, %v; want rotated (the write landed)", o.Status, err)
	}
	f.converged()
}

func TestRotateServiceAccountNotSignedInNeedsAttention(t *testing.T) {
	f := newFixture(t)
	f.w.SetSignIn(svc, &rt.Error{Msg: "service account " + svc + ": not signed in; run `patrol login --service-account " + svc + "`", IsPermanent: true})
	o, err := f.run(manual("m1"))
	if err == nil || !rotation.IsPermanent(err) || o.Status != rotation.StatusNeedsAttention || o.Step != rotation.StepSignIn {
		t.Fatalf("Run = %s at %q, %v; want needs-attention at sign in", o.Status, o.Step, err)
	}
	if !strings.Contains(err.Error(), "patrol login --service-account "+svc) || !strings.Contains(err.Error(), secret) {
		t.Errorf("error %q should name the secret and the fixing command", err)
	}
	if f.w.Calls(rt.OpCreate) != 0 {
		t.Error("a PAT was created without a sign-in")
	}
}

func TestRotateBadPolicyNeedsAttention(t *testing.T) {
	f := newFixture(t)
	f.w.PutSecret(secret, f.oldTok, start.Add(10*day), true, map[string]string{
		rotation.TagManaged: "true", rotation.TagOrg: org, rotation.TagScopes: "app_token", rotation.TagServiceAccount: svc,
	})
	o, err := f.run(manual("m1"))
	if err == nil || !rotation.IsPermanent(err) || o.Status != rotation.StatusNeedsAttention || o.Reason != rotation.ReasonFullScopeRefused {
		t.Fatalf("Run = %s/%s, %v", o.Status, o.Reason, err)
	}
	if !strings.Contains(o.Message, rotation.TagScopes) {
		t.Errorf("message %q should name the tag", o.Message)
	}
}

func TestNearExpiryOutsideTheWindowSchedulesAWakeupThenRotates(t *testing.T) {
	f := newFixture(t)
	// A 7-day PAT just written: Key Vault raises SecretNearExpiry at once.
	id, tok := f.w.IssuePAT(org, svc, "patrol pat-build shortop", start.Add(7*day))
	ver := f.w.PutSecret(secret, tok, start.Add(7*day), true, map[string]string{
		rotation.TagManaged: "true", rotation.TagOrg: org, rotation.TagScopes: "vso.code", rotation.TagServiceAccount: svc,
		rotation.TagLifetime: "7d", rotation.TagOwner: svc, rotation.TagPATID: id, rotation.TagPreviousPATID: f.oldPAT, rotation.TagOp: "shortop",
	})
	trig := rotation.Trigger{Kind: rotation.TriggerNearExpiry, Version: ver, Op: rotation.DeriveOpID("near-expiry", secret, ver)}
	o, err := f.run(trig)
	if err != nil || o.Status != rotation.StatusSkipped || o.Reason != rotation.ReasonNotDue {
		t.Fatalf("Run = %s/%s, %v; want skipped/not-due", o.Status, o.Reason, err)
	}
	wantAt := start.Add(7*day - 56*time.Hour)
	wakes := f.w.Wakeups()
	if len(wakes) != 1 || !wakes[0].At.Equal(wantAt) || wakes[0].Version != ver {
		t.Fatalf("wake-ups = %+v, want one at %v", wakes, wantAt)
	}
	if f.w.Calls(rt.OpCreate) != 0 {
		t.Fatal("rotated outside the window")
	}
	// Time passes to the wake-up, which rotates once.
	f.w.Advance(wantAt.Sub(f.w.Now()))
	o, err = f.run(rotation.Trigger{Kind: rotation.TriggerWakeup, Version: ver, Op: wakes[0].Op})
	if err != nil || o.Status != rotation.StatusRotated || o.Reason != rotation.ReasonRenewWindow {
		t.Fatalf("wake-up = %s/%s, %v; want rotated/renew-window", o.Status, o.Reason, err)
	}
	_, cur, _ := f.w.Value(secret)
	if !cur.Expires.Equal(f.w.Now().Add(7 * day)) {
		t.Errorf("new expiry %v, want 7 days from now (the lifetime tag)", cur.Expires)
	}
	// The near-expiry event for the new version arrives at once and must not loop.
	o, err = f.run(rotation.Trigger{Kind: rotation.TriggerNearExpiry, Version: cur.ID, Op: rotation.DeriveOpID("near-expiry", secret, cur.ID)})
	if err != nil || o.Action() != rotation.ActionWait {
		t.Fatalf("near-expiry of the fresh version = %s/%s, %v; want a wait", o.Status, o.Reason, err)
	}
	if f.w.Calls(rt.OpCreate) != 1 {
		t.Errorf("created %d PATs, want 1", f.w.Calls(rt.OpCreate))
	}
}

func TestOrganizationShortenedLifetimeSetsExpiryFromTheAnswer(t *testing.T) {
	f := newFixture(t)
	f.w.MaxLifetime = 30 * day
	o, err := f.run(manual("m1"))
	if err != nil {
		t.Fatal(err)
	}
	_, cur, _ := f.w.Value(secret)
	if want := start.Add(30 * day); !cur.Expires.Equal(want) || !o.Expires.Equal(want) {
		t.Errorf("expiry = %v, want the clamped validTo %v", cur.Expires, want)
	}
	if want := start.Add(20 * day); !o.NextCheck.Equal(want) {
		t.Errorf("next check = %v, want %v (a third of 30 days before expiry)", o.NextCheck, want)
	}
}

func TestRevokeNowRevokesTheOldPATImmediately(t *testing.T) {
	f := newFixture(t)
	trig := manual("m1")
	trig.RevokeNow = true
	if _, err := f.run(trig); err != nil {
		t.Fatal(err)
	}
	// The Effects learn that this revocation comes before the grace end (and sign it).
	if revs := f.w.Revocations(); len(revs) != 1 || !revs[0].At.Before(revs[0].GraceEnd) || !revs[0].GraceEnd.Equal(start.Add(24*time.Hour)) {
		t.Errorf("revocations = %+v, want one at once, before its grace end 24h later", revs)
	}
	if errs := f.w.RunDueRevocations(context.Background(), f.r.Revoke); len(errs) > 0 {
		t.Fatal(errs)
	}
	if f.w.TokenWorks(f.oldTok) {
		t.Error("the old PAT still works after an emergency rotation")
	}
}

func TestOffboardingOwner(t *testing.T) {
	tests := map[string]struct {
		adminAllowed bool
		wantStatus   rotation.Status
	}{
		"another owner's PAT is revoked through the admin API": {adminAllowed: true, wantStatus: rotation.StatusRevoked},
		"without admin rights the revocation needs attention":  {adminAllowed: false, wantStatus: rotation.StatusNeedsAttention},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.w.AdminAllowed = tc.adminAllowed
			alicePAT, aliceTok := f.w.IssuePAT(org, "alice@contoso.com", "alice's token", start.Add(60*day))
			f.w.PutSecret(secret, aliceTok, start.Add(60*day), true, map[string]string{
				rotation.TagManaged: "true", rotation.TagOrg: org, rotation.TagScopes: "vso.code", rotation.TagServiceAccount: svc,
				rotation.TagOwner: "alice@contoso.com", rotation.TagPATID: alicePAT,
			})
			trig := rotation.Trigger{Kind: rotation.TriggerOffboarding, Op: "off1", Person: rotation.Person{UPN: "alice@contoso.com"}}
			o, err := f.run(trig)
			if err != nil || o.Status != rotation.StatusRotated || o.Reason != rotation.ReasonOwnerOffboarded {
				t.Fatalf("Run = %s/%s, %v", o.Status, o.Reason, err)
			}
			revs := f.w.Revocations()
			if len(revs) != 1 || revs[0].Owner != "alice@contoso.com" {
				t.Fatalf("revocations = %+v", revs)
			}
			f.w.Advance(25 * time.Hour)
			ro, _ := f.r.Revoke(context.Background(), revs[0].Revocation)
			if ro.Status != tc.wantStatus {
				t.Errorf("revocation = %s (%s), want %s", ro.Status, ro.Message, tc.wantStatus)
			}
			if got := !f.w.TokenWorks(aliceTok); got != tc.adminAllowed {
				t.Errorf("alice's PAT revoked = %v, want %v", got, tc.adminAllowed)
			}
		})
	}
}

func TestRevokeRefusesTheCurrentPAT(t *testing.T) {
	f := newFixture(t)
	o, err := f.r.Revoke(context.Background(), rotation.Revocation{Secret: secret, Org: org, PATID: f.oldPAT, Account: svc, Op: "x"})
	if err != nil || o.Status != rotation.StatusSkipped || o.Reason != rotation.ReasonStillCurrent {
		t.Fatalf("Revoke = %s/%s, %v", o.Status, o.Reason, err)
	}
	if !f.w.TokenWorks(f.oldTok) {
		t.Error("the current PAT was revoked")
	}
}

func TestRevokeOfAnUnknownPATSucceeds(t *testing.T) {
	f := newFixture(t)
	o, err := f.r.Revoke(context.Background(), rotation.Revocation{Secret: secret, Org: org, PATID: "00000000-0000-4000-8000-000000000000", Account: svc, Op: "x"})
	if err != nil || o.Status != rotation.StatusRevoked {
		t.Fatalf("Revoke = %s, %v; want revoked (not found is success)", o.Status, err)
	}
}

func TestAdopt(t *testing.T) {
	tests := map[string]struct {
		existing bool
	}{
		"an unmanaged secret is adopted with its other tags kept": {existing: true},
		"a secret that does not exist is created":                 {existing: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			const name = "pat-new"
			if tc.existing {
				f.w.PutSecret(name, "hand-made-token-value", time.Time{}, true, map[string]string{"team": "web"})
			}
			pol := rotation.Policy{Org: org, Scopes: []string{"vso.code"}, ServiceAccount: svc, Lifetime: 30 * day}
			trig := rotation.Trigger{Kind: rotation.TriggerAdopt, Op: "ad1", Policy: pol.Tags()}
			o, err := f.r.Run(context.Background(), name, trig)
			if err != nil || o.Status != rotation.StatusRotated || o.Reason != rotation.ReasonAdopt {
				t.Fatalf("adopt = %s/%s, %v", o.Status, o.Reason, err)
			}
			value, cur, _ := f.w.Value(name)
			if !f.w.TokenWorks(value) || !rotation.IsManaged(cur.Tags) || cur.Tags[rotation.TagLifetime] != "30d" {
				t.Errorf("adopted version tags = %v", cur.Tags)
			}
			if tc.existing && cur.Tags["team"] != "web" {
				t.Error("the secret's own tags were dropped")
			}
			o, err = f.r.Run(context.Background(), name, trig)
			if err != nil || o.Reason != rotation.ReasonAlreadyDone {
				t.Errorf("adopt rerun = %s/%s, %v; want already-done", o.Status, o.Reason, err)
			}
		})
	}
}

func TestRunRefusesAnInvalidTrigger(t *testing.T) {
	f := newFixture(t)
	_, err := f.run(rotation.Trigger{Kind: rotation.TriggerManual})
	var se *rotation.StepError
	if !errors.As(err, &se) || !rotation.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent *StepError", err)
	}
	if f.w.Calls(rt.OpCurrent) != 0 {
		t.Error("gathered for an invalid trigger")
	}
}

func TestPlan(t *testing.T) {
	f := newFixture(t)
	id, tok := f.w.IssuePAT(org, svc, "patrol pat-fresh x", start.Add(80*day))
	f.w.PutSecret("pat-fresh", tok, start.Add(80*day), true, map[string]string{
		rotation.TagManaged: "true", rotation.TagOrg: org, rotation.TagScopes: "vso.code", rotation.TagServiceAccount: svc,
		rotation.TagOwner: svc, rotation.TagPATID: id,
	})
	f.w.PutSecret("pat-broken", "x", start.Add(80*day), true, map[string]string{rotation.TagManaged: "true", rotation.TagScopes: "vso.code"})
	f.w.PutSecret("not-ours", "y", start.Add(day), true, nil)
	versions, err := f.w.Store().ListManaged(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rows := rotation.Plan(versions, rotation.Defaults{Lifetime: 90 * day, RenewBefore: 14 * day, ServiceAccount: svc, Bounds: bounds}, start)
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s:%s:%s:%d", r.Secret, r.Action, r.Reason, r.DaysLeft))
	}
	want := "pat-build:rotate:renew-window:10 pat-fresh:wait:not-due:80 pat-broken:needs-attention:bad-policy:80"
	if strings.Join(got, " ") != want {
		t.Errorf("plan =\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	due := rotation.Due(rows)
	if len(due) != 1 || due[0].Secret != secret || !due[0].At.Equal(start) {
		t.Errorf("due = %+v, want pat-build now", due)
	}
	if first, again := rotation.SweepOpID(due[0]), rotation.SweepOpID(due[0]); first != again || rotation.ValidateOpID(first) != nil {
		t.Error("sweep op id is not stable and valid")
	}
}

func TestOrphans(t *testing.T) {
	const cur, prev, stale, fresh, foreign, oldPrev = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b",
		"00000000-0000-4000-8000-00000000000c", "00000000-0000-4000-8000-00000000000d", "00000000-0000-4000-8000-00000000000e", "00000000-0000-4000-8000-00000000000f"
	tags := map[string]string{rotation.TagManaged: "true", rotation.TagOrg: org, rotation.TagScopes: "vso.code", rotation.TagServiceAccount: svc}
	withState := func(id, prevID string) map[string]string {
		m := map[string]string{rotation.TagPATID: id, rotation.TagPreviousPATID: prevID}
		for k, v := range tags {
			m[k] = v
		}
		return m
	}
	d := rotation.Defaults{Grace: 24 * time.Hour}
	versions := []rotation.Version{
		{Name: "a", Created: start.Add(-time.Hour), Tags: withState(cur, prev)},           // prev inside grace
		{Name: "b", Created: start.Add(-72 * time.Hour), Tags: withState(fresh, oldPrev)}, // oldPrev past grace
	}
	old := start.Add(-48 * time.Hour)
	pats := []rotation.PATInfo{
		{ID: cur, DisplayName: "patrol a op1", ValidFrom: old},
		{ID: prev, DisplayName: "patrol a op0", ValidFrom: old},
		{ID: stale, DisplayName: "patrol a crashed", ValidFrom: old},
		{ID: fresh, DisplayName: "patrol b op2", ValidFrom: start.Add(-time.Minute)},
		{ID: foreign, DisplayName: "someone's laptop", ValidFrom: old},
		{ID: oldPrev, DisplayName: "patrol b op1", ValidFrom: old},
		{ID: "00000000-0000-4000-8000-000000000010", DisplayName: "patrol a inflight", ValidFrom: start.Add(-time.Minute)},
	}
	var got []string
	for _, p := range rotation.Orphans(pats, versions, d, start) {
		got = append(got, p.DisplayName)
	}
	if want := "patrol a crashed,patrol b op1"; strings.Join(got, ",") != want {
		t.Errorf("orphans = %v, want %s (not current, not in grace, not in flight, not foreign)", got, want)
	}
}

// A policy outside the operator's bounds never reaches Azure DevOps: the Rotator does
// not sign in, clean up, create or store anything, whichever trigger asks.
func TestOutsideBoundsNothingIsMinted(t *testing.T) {
	// What a tag writer asked for in the attack of issue 10: token administration and
	// security scopes, full access "allowed" by tag, a year's lifetime.
	attack := map[string]string{
		rotation.TagScopes: "app_token vso.tokens vso.security_manage", rotation.TagAllowFullScope: "true", rotation.TagLifetime: "365d",
	}
	tests := map[string]struct {
		trig func(f *fixture) rotation.Trigger
		// secret is the secret the trigger names.
		secret string
	}{
		"a manual rotation of a managed secret whose tags ask for too much": {
			secret: secret,
			trig: func(f *fixture) rotation.Trigger {
				_, cur, _ := f.w.Value(secret)
				f.w.PutSecret(secret, f.oldTok, cur.Expires, true, merged(cur.Tags, attack))
				return manual("m1")
			},
		},
		"a sweep of a managed secret moved to another service account": {
			secret: secret,
			trig: func(f *fixture) rotation.Trigger {
				_, cur, _ := f.w.Value(secret)
				f.w.PutSecret(secret, f.oldTok, cur.Expires, true, merged(cur.Tags, map[string]string{rotation.TagServiceAccount: "admin@contoso.com"}))
				return rotation.Trigger{Kind: rotation.TriggerSweep, Op: "s1"}
			},
		},
		"an adopt asking for too much": {
			secret: "db-password",
			trig: func(*fixture) rotation.Trigger {
				p := rotation.Policy{Org: org, Scopes: []string{"vso.code"}, ServiceAccount: svc}.Tags()
				return rotation.Trigger{Kind: rotation.TriggerAdopt, Op: "a1", Policy: merged(p, attack)}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			trig := tc.trig(f)
			versions := f.w.Versions(tc.secret)
			o, err := f.r.Run(context.Background(), tc.secret, trig)
			if err == nil || !rotation.IsPermanent(err) {
				t.Errorf("Run error = %v, want a permanent error", err)
			}
			if o.Status != rotation.StatusNeedsAttention || o.Reason != rotation.ReasonOutsideBounds || !strings.HasPrefix(o.Message, "outside bounds (") {
				t.Errorf("outcome = %s/%s %q, want needs-attention/outside-bounds", o.Status, o.Reason, o.Message)
			}
			for _, op := range []string{rt.OpAccessToken, rt.OpFindByDisplayName, rt.OpCreate, rt.OpSetVersion} {
				if n := f.w.Calls(op); n != 0 {
					t.Errorf("%s was called %d times for a policy outside the bounds", op, n)
				}
			}
			if active := f.w.Active(); len(active) != 1 || active[0].ID != f.oldPAT {
				t.Errorf("active PATs = %v, want only the one the secret held before", ids(active))
			}
			if got := f.w.Versions(tc.secret); got != versions {
				t.Errorf("versions of %s = %d, want %d (nothing stored)", tc.secret, got, versions)
			}
			if out := f.w.Outcomes(); len(out) != 1 || out[0].Reason != rotation.ReasonOutsideBounds {
				t.Errorf("published outcomes = %+v, want the one needs-attention outcome", out)
			}
		})
	}
}

func merged(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// A secret whose new version could not be written (Key Vault allows 15 tags) is
// refused before anything is minted, not minted for, refused at the write and revoked.
func TestTagsThatCannotBeWrittenAreRefusedBeforeMinting(t *testing.T) {
	f := newFixture(t)
	_, cur, _ := f.w.Value(secret)
	tags := maps.Clone(cur.Tags)
	for i := len(tags); i < rotation.MaxTags; i++ {
		tags[fmt.Sprintf("team-%d", i)] = "x"
	}
	// 15 tags now; the new version adds patrol-reason and patrol-previous-pat-id.
	f.w.PutSecret(secret, f.oldTok, cur.Expires, true, tags)
	o, err := f.run(manual("m1"))
	if err == nil || !rotation.IsPermanent(err) || o.Status != rotation.StatusNeedsAttention || !strings.Contains(o.Message, "exceed Key Vault's limit") {
		t.Fatalf("Run = %s %q (%v), want a permanent needs-attention naming the tag limit", o.Status, o.Message, err)
	}
	for _, op := range []string{rt.OpAccessToken, rt.OpCreate, rt.OpRevoke, rt.OpSetVersion} {
		if n := f.w.Calls(op); n != 0 {
			t.Errorf("%s was called %d times for tags that cannot be written", op, n)
		}
	}
}
