package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

func TestRotatingTwiceWithOneOperationIDIssuesOnePAT(t *testing.T) {
	e := newEnv(t, envOptions{})
	const secret = "twice"
	e.mustAdopt(secret)
	created := e.st.DevOps.Journal().Count("CreatePat")
	versions := e.versionCount(secret)

	op := rotation.NewOpID()
	first, err := e.rotate(secret, op)
	if err != nil || first.Status != rotation.StatusRotated {
		t.Fatalf("first run: %s %v", first.Status, err)
	}
	again, err := e.rotate(secret, op)
	if err != nil || again.Status != rotation.StatusSkipped || again.Reason != rotation.ReasonAlreadyDone {
		t.Fatalf("second run with the same operation id: %s (%s) %v", again.Status, again.Reason, err)
	}
	if n := e.st.DevOps.Journal().Count("CreatePat") - created; n != 1 {
		t.Errorf("%d PATs created for one operation id, want 1", n)
	}
	if n := e.versionCount(secret) - versions; n != 1 {
		t.Errorf("%d versions written for one operation id, want 1", n)
	}
	if got := e.assertConverged(secret); got != first.PATID {
		t.Errorf("the vault holds %s, the first run stored %s", got, first.PATID)
	}
}

// crashPoint cancels the run's context right after the named call returns: the
// process "dies" at that protocol step boundary and nothing after it happens (every
// later call fails with context.Canceled, compensation included).
type crashPoint struct {
	after  string
	mu     sync.Mutex
	cancel context.CancelFunc
	fired  bool
}

func (c *crashPoint) hit(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if op == c.after && !c.fired {
		c.fired = true
		c.cancel()
	}
}

type crashStore struct {
	rotation.SecretStore
	c *crashPoint
}

func (s crashStore) SetVersion(ctx context.Context, name string, v rotation.NewVersion) (rotation.Version, error) {
	ver, err := s.SecretStore.SetVersion(ctx, name, v)
	if err == nil {
		s.c.hit("store")
	}
	return ver, err
}

type crashPATs struct {
	rotation.PATs
	c *crashPoint
}

func (p crashPATs) FindByDisplayName(ctx context.Context, auth secret.Value, org, name string) ([]rotation.PATInfo, error) {
	out, err := p.PATs.FindByDisplayName(ctx, auth, org, name)
	if err == nil {
		p.c.hit("cleanup")
	}
	return out, err
}

func (p crashPATs) Create(ctx context.Context, auth secret.Value, req rotation.PATRequest) (rotation.NewPAT, error) {
	pat, err := p.PATs.Create(ctx, auth, req)
	if err == nil {
		p.c.hit("create")
	}
	return pat, err
}

func (p crashPATs) Verify(ctx context.Context, org string, tok secret.Value) (rotation.Identity, error) {
	id, err := p.PATs.Verify(ctx, org, tok)
	if err == nil {
		p.c.hit("verify")
	}
	return id, err
}

type crashIDs struct {
	rotation.Identities
	c *crashPoint
}

func (i crashIDs) AccessToken(ctx context.Context, account string) (secret.Value, error) {
	tok, err := i.Identities.AccessToken(ctx, account)
	if err == nil {
		i.c.hit("sign in")
	}
	return tok, err
}

type crashFX struct {
	rotation.Effects
	c *crashPoint
}

func (f crashFX) ScheduleRevocation(ctx context.Context, r rotation.Revocation, at time.Time) error {
	err := f.Effects.ScheduleRevocation(ctx, r, at)
	if err == nil {
		f.c.hit("schedule revocation")
	}
	return err
}

func (f crashFX) ScheduleWakeup(ctx context.Context, w rotation.Wakeup, at time.Time) error {
	err := f.Effects.ScheduleWakeup(ctx, w, at)
	if err == nil {
		f.c.hit("schedule wake-up")
	}
	return err
}

func (f crashFX) Publish(ctx context.Context, o rotation.Outcome) error {
	err := f.Effects.Publish(ctx, o)
	if err == nil {
		f.c.hit("publish")
	}
	return err
}

func TestACrashAfterEveryStepConvergesOnRerun(t *testing.T) {
	e := newEnv(t, envOptions{})
	steps := []string{"sign in", "cleanup", "create", "verify", "store", "schedule revocation", "schedule wake-up", "publish"}
	for _, step := range steps {
		t.Run("the process dies right after "+step, func(t *testing.T) {
			secret := "crash-" + slug(step)
			e.mustAdopt(secret)
			before, _, _ := e.current(secret)
			op := rotation.NewOpID()

			ctx, cancel := context.WithCancel(e.ctx)
			cp := &crashPoint{after: step, cancel: cancel}
			r := e.rotator(crashStore{e.svc.Store, cp}, crashPATs{e.svc.PATs, cp}, crashIDs{e.svc.Identities, cp}, crashFX{e.svc.Effects, cp})
			_, _ = r.Run(ctx, secret, rotation.Trigger{Kind: rotation.TriggerManual, Op: op})
			cancel()
			if !cp.fired {
				t.Fatalf("the run never reached %q", step)
			}

			// The command is redelivered: same operation id, a fresh process.
			o, err := e.rotate(secret, op)
			if err != nil {
				t.Fatalf("rerun after a crash at %q: %s %v", step, o.Status, err)
			}
			after, tags, _ := e.current(secret)
			if after == before || tags[rotation.TagOp] != op {
				t.Fatalf("rerun did not leave a version written by %s (version %s→%s, op tag %q)", op, before, after, tags[rotation.TagOp])
			}
			e.assertConverged(secret)
			wake := "wake-" + rotation.NewWakeup(secret, after).Op + "-"
			found := false
			for _, id := range e.messages("pat-rotations") {
				found = found || strings.HasPrefix(id, wake)
			}
			if !found {
				t.Errorf("no wake-up scheduled for the new version %s; pat-rotations holds %v", after, e.messages("pat-rotations"))
			}
		})
	}
}

func TestInjectedFaultsThenARerunConverge(t *testing.T) {
	e := newEnv(t, envOptions{})
	for name, tc := range map[string]struct {
		emulator, op string
		f            fault.Fault
	}{
		"Azure DevOps drops every create":                   {"devops", "CreatePat", fault.Fault{Drop: true}},
		"Azure DevOps answers every create with 500":        {"devops", "CreatePat", fault.Fault{Status: 500}},
		"Azure DevOps drops every verification":             {"devops", "ConnectionData", fault.Fault{Drop: true}},
		"Azure DevOps answers every listing with 503":       {"devops", "ListPats", fault.Fault{Status: 503}},
		"Key Vault answers every write with 500":            {"keyvault", "SetSecret", fault.Fault{Status: 500}},
		"Key Vault drops every write":                       {"keyvault", "SetSecret", fault.Fault{Drop: true}},
		"Service Bus drops the connection on every send":    {"servicebus", "send", fault.Fault{Drop: true}},
		"Key Vault answers every read with 503 Retry-After": {"keyvault", "GetSecret", fault.Fault{Status: 503, RetryAfter: time.Millisecond}},
	} {
		t.Run(name, func(t *testing.T) {
			secret := "fault-" + slug(name)
			e.mustAdopt(secret)
			op := rotation.NewOpID()
			inj := e.allFaults()[tc.emulator]
			inj.Set(tc.op, tc.f)
			ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
			o, err := e.svc.Rotator.Run(ctx, secret, rotation.Trigger{Kind: rotation.TriggerManual, Op: op})
			cancel()
			inj.Reset()
			if err == nil {
				t.Fatalf("a rotation with %s succeeded (%s); the fault was not felt", name, o.Status)
			}
			if rotation.IsPermanent(err) {
				t.Errorf("an outage was reported as permanent: %v", err)
			}
			o, err = e.rotate(secret, op)
			if err != nil {
				t.Fatalf("rerun after the fault cleared: %s %v", o.Status, err)
			}
			e.assertConverged(secret)
		})
	}
}

func TestThrottlingAndServerErrorsAreRetriedToCompletion(t *testing.T) {
	e := newEnv(t, envOptions{})
	for name, tc := range map[string]struct {
		emulator, op string
		f            fault.Fault
		wantWait     time.Duration // a back-off the core must have taken (0: not the core's)
	}{
		"Azure DevOps throttles the create once with Retry-After 7s": {"devops", "CreatePat", fault.Fault{Status: 429, RetryAfter: 7 * time.Second, Times: 1}, 7 * time.Second},
		"Azure DevOps fails the create twice with 500":               {"devops", "CreatePat", fault.Fault{Status: 500, Times: 2}, 0},
		"Azure DevOps throttles verification once":                   {"devops", "ConnectionData", fault.Fault{Status: 429, RetryAfter: 3 * time.Second, Times: 1}, 3 * time.Second},
		"Key Vault throttles the write once":                         {"keyvault", "SetSecret", fault.Fault{Status: 429, RetryAfter: time.Millisecond, Times: 1}, 0},
		"Key Vault fails the read with 503 twice":                    {"keyvault", "GetSecret", fault.Fault{Status: 503, Times: 2}, 0},
		"Service Bus rejects one send with 500":                      {"servicebus", "send", fault.Fault{Status: 500, Times: 1}, 0},
	} {
		t.Run(name, func(t *testing.T) {
			secret := "retry-" + slug(name)
			first := e.mustAdopt(secret)
			e.allFaults()[tc.emulator].Set(tc.op, tc.f)
			defer e.allFaults()[tc.emulator].Reset()
			before := len(e.waits.all())
			o, err := e.rotate(secret, rotation.NewOpID())
			if err != nil || o.Status != rotation.StatusRotated {
				t.Fatalf("%s: %s %v", name, o.Status, err)
			}
			if got := e.assertConverged(secret); got == first.PATID {
				t.Fatal("the PAT did not change")
			}
			if n := len(e.activePATs(secret)); n != 2 {
				t.Errorf("%d active PATs for the secret, want 2 (the new one and the one in its grace period)", n)
			}
			if tc.wantWait > 0 {
				waits := e.waits.all()[before:]
				found := false
				for _, w := range waits {
					found = found || w == tc.wantWait
				}
				if !found {
					t.Errorf("the core waited %v, want the server's Retry-After %v among them", waits, tc.wantWait)
				}
			}
		})
	}
}

func slug(s string) string {
	out := make([]byte, 0, len(s))
	dash := false
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			out, dash = append(out, c), false
		case c >= 'A' && c <= 'Z':
			out, dash = append(out, c+'a'-'A'), false
		case !dash:
			out, dash = append(out, '-'), true
		}
	}
	if len(out) > 60 {
		out = out[:60]
	}
	return string(out)
}
