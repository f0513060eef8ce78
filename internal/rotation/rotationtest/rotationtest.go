// Package rotationtest holds deterministic in-memory implementations of the
// interfaces package rotation owns (SecretStore, PATs, Identities, Effects), with
// fault and crash injection, for tests of the protocol's logic. They model the
// behaviour the core relies on (versions, PAT lifecycle, duplicate detection), not
// the wire: adapters are tested against the emulators with the real SDKs.
package rotationtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// Crash is what an injected crash panics with: the process "died" right after the
// operation took effect. Catch it with Survive.
type Crash struct{ Op string }

// Survive runs f and reports the crash that stopped it, if any; other panics pass.
func Survive(f func()) (crashed *Crash) {
	defer func() {
		if v := recover(); v != nil {
			c, ok := v.(Crash)
			if !ok {
				panic(v)
			}
			crashed = &c
		}
	}()
	f()
	return nil
}

// Fault is injected into one operation.
type Fault struct {
	// Err is returned. With After, the operation takes effect first (a lost answer).
	Err   error
	After bool
	// Crash panics with Crash after the operation takes effect.
	Crash bool
	// Times limits the fault to the next n calls; 0 means every call.
	Times int
}

// Operation names for Inject.
const (
	OpCurrent            = "store.Current"
	OpSetVersion         = "store.SetVersion"
	OpListManaged        = "store.ListManaged"
	OpAccessToken        = "ids.AccessToken"
	OpCreate             = "pats.Create"
	OpRevoke             = "pats.Revoke"
	OpRevokeAsAdmin      = "pats.RevokeAsAdmin"
	OpFindByDisplayName  = "pats.FindByDisplayName"
	OpVerify             = "pats.Verify"
	OpWhoami             = "pats.Whoami"
	OpScheduleRevocation = "fx.ScheduleRevocation"
	OpScheduleWakeup     = "fx.ScheduleWakeup"
	OpPublish            = "fx.Publish"
)

// Error is a classified error the fakes return.
type Error struct {
	Msg          string
	IsPermanent  bool
	RetryAfterIn time.Duration
}

func (e *Error) Error() string             { return e.Msg }
func (e *Error) Permanent() bool           { return e.IsPermanent }
func (e *Error) RetryAfter() time.Duration { return e.RetryAfterIn }

// Throttled is a 429 with Retry-After.
func Throttled(after time.Duration) *Error {
	return &Error{Msg: fmt.Sprintf("429 Too Many Requests (retry after %s)", after), RetryAfterIn: after}
}

// Unavailable is a 503 without Retry-After.
func Unavailable() *Error { return &Error{Msg: "503 Service Unavailable"} }

// PolicyViolation is Azure DevOps' patTokenError for a violated organization policy.
func PolicyViolation(code string) *Error {
	return &Error{Msg: "patTokenError " + code, IsPermanent: true}
}

// World is one consistent fake universe: a vault, an Azure DevOps, an identity
// provider, a Service Bus, and a clock they share.
type World struct {
	mu    sync.Mutex
	now   time.Time
	seq   int
	fault map[string]*Fault
	calls map[string]int

	secrets map[string][]storedVersion
	pats    map[string]*PAT
	// signIn: account → problem; absent = signed in.
	signIn map[string]error
	// AdminAllowed lets RevokeAsAdmin revoke other users' PATs.
	AdminAllowed bool
	// OrgPolicy, when set, may refuse a create with an error (e.g. PolicyViolation).
	OrgPolicy func(rotation.PATRequest) error
	// MaxLifetime clamps validTo like an organization policy does (0 = no clamp).
	MaxLifetime time.Duration

	revocations map[string]ScheduledRevocation
	wakeups     map[string]ScheduledWakeup
	outcomes    []rotation.Outcome
	// every secret value and token ever issued, for leak scans.
	issued []string
}

type storedVersion struct {
	rotation.Version
	value string
}

// PAT is a fake Azure DevOps PAT.
type PAT struct {
	ID, Org, Owner, DisplayName string
	Scopes                      []string
	ValidFrom, ValidTo          time.Time
	Revoked                     bool
	token                       string
}

// ScheduledRevocation is a revocation message.
type ScheduledRevocation struct {
	rotation.Revocation
	At   time.Time
	Done bool
}

// ScheduledWakeup is a wake-up message.
type ScheduledWakeup struct {
	rotation.Wakeup
	At time.Time
}

// NewWorld starts a world at now.
func NewWorld(now time.Time) *World {
	return &World{
		now: now, fault: map[string]*Fault{}, calls: map[string]int{}, secrets: map[string][]storedVersion{},
		pats: map[string]*PAT{}, signIn: map[string]error{}, revocations: map[string]ScheduledRevocation{},
		wakeups: map[string]ScheduledWakeup{},
	}
}

// Now is the world's clock.
func (w *World) Now() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.now }

// Advance moves the clock.
func (w *World) Advance(d time.Duration) { w.mu.Lock(); w.now = w.now.Add(d); w.mu.Unlock() }

// Inject sets the fault for an operation (replacing any); Clear removes all.
func (w *World) Inject(op string, f Fault) { w.mu.Lock(); w.fault[op] = &f; w.mu.Unlock() }

// Clear removes every fault.
func (w *World) Clear() { w.mu.Lock(); w.fault = map[string]*Fault{}; w.mu.Unlock() }

// Calls counts the calls made to an operation.
func (w *World) Calls(op string) int { w.mu.Lock(); defer w.mu.Unlock(); return w.calls[op] }

// SetSignIn makes an account's sign-in fail with err (nil: signed in).
func (w *World) SetSignIn(account string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		delete(w.signIn, account)
		return
	}
	w.signIn[account] = err
}

// take consumes the fault for op; the caller holds w.mu.
func (w *World) take(op string) *Fault {
	w.calls[op]++
	f := w.fault[op]
	if f == nil {
		return nil
	}
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			delete(w.fault, op)
		}
	}
	c := *f
	return &c
}

// call runs effect under the lock with op's fault applied.
func call[T any](w *World, op string, effect func() (T, error)) (T, error) {
	w.mu.Lock()
	f := w.take(op)
	var zero T
	if f != nil && !f.After && !f.Crash {
		w.mu.Unlock()
		return zero, f.Err
	}
	v, err := effect()
	w.mu.Unlock()
	if f != nil && f.Crash {
		panic(Crash{Op: op})
	}
	if f != nil && f.After {
		return zero, f.Err
	}
	return v, err
}

func (w *World) id() string {
	w.seq++
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", w.seq, w.seq)
}

// Store returns the world's SecretStore.
func (w *World) Store() rotation.SecretStore { return store{w} }

// PATs returns the world's Azure DevOps.
func (w *World) PATs() rotation.PATs { return pats{w} }

// Identities returns the world's identity provider.
func (w *World) Identities() rotation.Identities { return ids{w} }

// Effects returns the world's Service Bus.
func (w *World) Effects() rotation.Effects { return effects{w} }

// PutSecret writes a version directly (test setup), returning its id.
func (w *World) PutSecret(name, value string, exp time.Time, enabled bool, tags map[string]string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.put(name, value, exp, enabled, tags)
}

func (w *World) put(name, value string, exp time.Time, enabled bool, tags map[string]string) string {
	w.seq++
	v := rotation.Version{Name: name, ID: fmt.Sprintf("%032x", w.seq), Enabled: enabled, Created: w.now, Expires: exp, Tags: maps.Clone(tags)}
	w.secrets[name] = append(w.secrets[name], storedVersion{Version: v, value: value})
	w.issued = append(w.issued, value)
	return v.ID
}

// Value returns the current value of a secret (test inspection only).
func (w *World) Value(name string) (string, rotation.Version, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	vs := w.secrets[name]
	if len(vs) == 0 {
		return "", rotation.Version{}, false
	}
	cur := vs[len(vs)-1]
	return cur.value, cur.Version, true
}

// Versions counts the versions of a secret.
func (w *World) Versions(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.secrets[name])
}

// IssuePAT creates a PAT directly (test setup: the PAT a secret holds before patrol).
func (w *World) IssuePAT(org, owner, display string, validTo time.Time) (id, token string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.newPAT(org, owner, display, nil, validTo)
	return p.ID, p.token
}

func (w *World) newPAT(org, owner, display string, scopes []string, validTo time.Time) *PAT {
	p := &PAT{ID: w.id(), Org: org, Owner: owner, DisplayName: display, Scopes: scopes, ValidFrom: w.now, ValidTo: validTo}
	p.token = fmt.Sprintf("pat%dx%s", w.seq, strings.Repeat("q", 40))
	w.pats[p.ID] = p
	w.issued = append(w.issued, p.token)
	return p
}

// PAT returns a copy of a PAT by id.
func (w *World) PAT(id string) (PAT, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.pats[id]
	if !ok {
		return PAT{}, false
	}
	return *p, true
}

// Active lists PATs that still work (not revoked, not expired), sorted by id.
func (w *World) Active() []PAT {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []PAT
	for _, p := range w.pats {
		if !p.Revoked && w.now.Before(p.ValidTo) {
			out = append(out, *p)
		}
	}
	slices.SortFunc(out, func(a, b PAT) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// TokenWorks reports whether a token value authenticates.
func (w *World) TokenWorks(token string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.byToken(token)
	return p != nil && !p.Revoked && w.now.Before(p.ValidTo)
}

func (w *World) byToken(token string) *PAT {
	for _, p := range w.pats {
		if p.token == token {
			return p
		}
	}
	return nil
}

// Issued returns every secret value, PAT and access token the world handed out.
func (w *World) Issued() []string { w.mu.Lock(); defer w.mu.Unlock(); return slices.Clone(w.issued) }

// Revocations returns the scheduled revocations (deduplicated by MessageID).
func (w *World) Revocations() []ScheduledRevocation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.SortedFunc(maps.Values(w.revocations), func(a, b ScheduledRevocation) int { return strings.Compare(a.PATID, b.PATID) })
}

// Wakeups returns the scheduled wake-ups (deduplicated by Op).
func (w *World) Wakeups() []ScheduledWakeup {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.SortedFunc(maps.Values(w.wakeups), func(a, b ScheduledWakeup) int { return a.At.Compare(b.At) })
}

// Outcomes returns every published outcome in order.
func (w *World) Outcomes() []rotation.Outcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.outcomes)
}

// RunDueRevocations delivers every revocation whose time has come to revoke (the
// Revoke function), once each, and returns the errors.
func (w *World) RunDueRevocations(ctx context.Context, revoke func(context.Context, rotation.Revocation) (rotation.Outcome, error)) []error {
	w.mu.Lock()
	var due []ScheduledRevocation
	for _, r := range w.revocations {
		if !r.Done && !w.now.Before(r.At) {
			due = append(due, r)
		}
	}
	w.mu.Unlock()
	var errs []error
	for _, r := range due {
		if _, err := revoke(ctx, r.Revocation); err != nil {
			errs = append(errs, err)
			continue
		}
		w.mu.Lock()
		r.Done = true
		w.revocations[r.MessageID()] = r
		w.mu.Unlock()
	}
	return errs
}

type store struct{ w *World }

func (s store) Current(_ context.Context, name string) (rotation.Version, error) {
	return call(s.w, OpCurrent, func() (rotation.Version, error) {
		vs := s.w.secrets[name]
		if len(vs) == 0 {
			return rotation.Version{}, fmt.Errorf("fake vault: secret %q: %w", name, rotation.ErrNotFound)
		}
		v := vs[len(vs)-1].Version
		v.Tags = maps.Clone(v.Tags)
		return v, nil
	})
}

func (s store) SetVersion(_ context.Context, name string, nv rotation.NewVersion) (rotation.Version, error) {
	return call(s.w, OpSetVersion, func() (rotation.Version, error) {
		if !rotation.IsManaged(nv.Tags) {
			return rotation.Version{}, fmt.Errorf("fake vault: set %q: %w", name, rotation.ErrUnmanaged)
		}
		if len(nv.Tags) > rotation.MaxTags {
			return rotation.Version{}, &Error{Msg: "fake vault: too many tags", IsPermanent: true}
		}
		s.w.put(name, nv.Value.Reveal(), nv.Expires, true, nv.Tags)
		vs := s.w.secrets[name]
		return vs[len(vs)-1].Version, nil
	})
}

func (s store) ListManaged(_ context.Context) ([]rotation.Version, error) {
	return call(s.w, OpListManaged, func() ([]rotation.Version, error) {
		var out []rotation.Version
		for _, name := range slices.Sorted(maps.Keys(s.w.secrets)) {
			vs := s.w.secrets[name]
			if v := vs[len(vs)-1].Version; rotation.IsManaged(v.Tags) {
				out = append(out, v)
			}
		}
		return out, nil
	})
}

type ids struct{ w *World }

const accessTokenPrefix = "access-token-for:"

func (i ids) AccessToken(_ context.Context, account string) (secret.Value, error) {
	return call(i.w, OpAccessToken, func() (secret.Value, error) {
		if err := i.w.signIn[account]; err != nil {
			return secret.Value{}, err
		}
		tok := accessTokenPrefix + account
		i.w.issued = append(i.w.issued, tok)
		return secret.New(tok), nil
	})
}

type pats struct{ w *World }

func caller(auth secret.Value) (string, error) {
	acct, ok := strings.CutPrefix(auth.Reveal(), accessTokenPrefix)
	if !ok {
		return "", &Error{Msg: "401 Unauthorized", IsPermanent: true}
	}
	return acct, nil
}

func (p pats) Create(_ context.Context, auth secret.Value, req rotation.PATRequest) (rotation.NewPAT, error) {
	return call(p.w, OpCreate, func() (rotation.NewPAT, error) {
		acct, err := caller(auth)
		if err != nil {
			return rotation.NewPAT{}, err
		}
		if p.w.OrgPolicy != nil {
			if err := p.w.OrgPolicy(req); err != nil {
				return rotation.NewPAT{}, err
			}
		}
		validTo := req.ValidTo
		if p.w.MaxLifetime > 0 && validTo.After(p.w.now.Add(p.w.MaxLifetime)) {
			validTo = p.w.now.Add(p.w.MaxLifetime)
		}
		pat := p.w.newPAT(req.Org, acct, req.DisplayName, req.Scopes, validTo)
		return rotation.NewPAT{ID: pat.ID, Token: secret.New(pat.token), ValidTo: pat.ValidTo, Scopes: pat.Scopes}, nil
	})
}

func (p pats) Revoke(_ context.Context, auth secret.Value, org, id string) error {
	_, err := call(p.w, OpRevoke, func() (struct{}, error) {
		acct, err := caller(auth)
		if err != nil {
			return struct{}{}, err
		}
		pat, ok := p.w.pats[id]
		if !ok || pat.Org != org || pat.Owner != acct {
			return struct{}{}, fmt.Errorf("fake devops: PAT %s: %w", id, rotation.ErrNotFound)
		}
		pat.Revoked = true
		return struct{}{}, nil
	})
	return err
}

func (p pats) RevokeAsAdmin(_ context.Context, auth secret.Value, org, id string) error {
	_, err := call(p.w, OpRevokeAsAdmin, func() (struct{}, error) {
		if _, err := caller(auth); err != nil {
			return struct{}{}, err
		}
		if !p.w.AdminAllowed {
			return struct{}{}, fmt.Errorf("fake devops: token administration: %w", rotation.ErrNotPermitted)
		}
		if pat, ok := p.w.pats[id]; ok && pat.Org == org {
			pat.Revoked = true
		}
		return struct{}{}, nil
	})
	return err
}

func (p pats) FindByDisplayName(_ context.Context, auth secret.Value, org, name string) ([]rotation.PATInfo, error) {
	return call(p.w, OpFindByDisplayName, func() ([]rotation.PATInfo, error) {
		acct, err := caller(auth)
		if err != nil {
			return nil, err
		}
		var out []rotation.PATInfo
		for _, pat := range p.w.pats {
			if pat.Org == org && pat.Owner == acct && pat.DisplayName == name && !pat.Revoked && p.w.now.Before(pat.ValidTo) {
				out = append(out, rotation.PATInfo{ID: pat.ID, DisplayName: pat.DisplayName, ValidFrom: pat.ValidFrom, ValidTo: pat.ValidTo})
			}
		}
		return out, nil
	})
}

func (p pats) Verify(_ context.Context, org string, token secret.Value) (rotation.Identity, error) {
	return call(p.w, OpVerify, func() (rotation.Identity, error) {
		pat := p.w.byToken(token.Reveal())
		if pat == nil || pat.Revoked || !p.w.now.Before(pat.ValidTo) || pat.Org != org {
			return rotation.Identity{}, &Error{Msg: "401 Unauthorized: the PAT does not authenticate", IsPermanent: true}
		}
		return rotation.Identity{ID: "id-" + pat.Owner}, nil
	})
}

func (p pats) Whoami(_ context.Context, auth secret.Value, _ string) (rotation.Identity, error) {
	return call(p.w, OpWhoami, func() (rotation.Identity, error) {
		acct, err := caller(auth)
		if err != nil {
			return rotation.Identity{}, err
		}
		return rotation.Identity{ID: "id-" + acct}, nil
	})
}

type effects struct{ w *World }

func (e effects) ScheduleRevocation(_ context.Context, r rotation.Revocation, at time.Time) error {
	_, err := call(e.w, OpScheduleRevocation, func() (struct{}, error) {
		if _, dup := e.w.revocations[r.MessageID()]; !dup { // Service Bus duplicate detection
			e.w.revocations[r.MessageID()] = ScheduledRevocation{Revocation: r, At: at}
		}
		return struct{}{}, nil
	})
	return err
}

func (e effects) ScheduleWakeup(_ context.Context, wk rotation.Wakeup, at time.Time) error {
	_, err := call(e.w, OpScheduleWakeup, func() (struct{}, error) {
		if _, dup := e.w.wakeups[wk.Op]; !dup {
			e.w.wakeups[wk.Op] = ScheduledWakeup{Wakeup: wk, At: at}
		}
		return struct{}{}, nil
	})
	return err
}

func (e effects) Publish(_ context.Context, o rotation.Outcome) error {
	_, err := call(e.w, OpPublish, func() (struct{}, error) {
		e.w.outcomes = append(e.w.outcomes, o)
		return struct{}{}, nil
	})
	return err
}
