package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/identity"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
	"github.com/patrol-dev/patrol/internal/wiring"
)

const (
	org     = stack.Organization
	account = stack.ServiceAccount
	scopes  = "vso.code vso.packaging"
)

// env is one running stack with patrol wired to it.
type env struct {
	t   testing.TB
	ctx context.Context
	st  *stack.Stack
	cfg config.Config
	svc *wiring.Services
	// logs receives every log line of patrol and of the emulators.
	logs *syncBuffer
	// seen records every credential that crossed the wire (see recorder).
	seen *recorder
	// waits records the back-off the core asked for (its Sleep does not wait).
	waits *waitLog
	// envFile is the stack's dotenv file (for CLI tests).
	envFile string
	opts    wiring.Options
	// plainCLI runs the CLI without the test's wiring options (only --env-file).
	plainCLI bool
}

type envOptions struct {
	// signIn signs the service account in with the device-code flow (default true via
	// newEnv; set noSignIn to skip).
	noSignIn bool
	// latency is added to every request of every emulator (benchmark).
	latency time.Duration
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	st, err := stack.Start(ctx, stack.Options{Logger: logger.With("side", "emulator")})
	if err != nil {
		t.Fatalf("start the emulators: %v", err)
	}
	t.Cleanup(st.Close)
	caFile, envFile, err := st.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	settings := st.Env(caFile)
	cfg, err := config.Load(func(k string) string { return settings[k] })
	if err != nil {
		t.Fatalf("the stack's settings: %v", err)
	}

	seen := &recorder{next: st.HTTP.Transport}
	hc := &http.Client{Transport: seen, Timeout: 30 * time.Second}
	co := azcore.ClientOptions{Transport: hc, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: st.Entra.AuthorityHost(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}}
	cred, err := azidentity.NewClientSecretCredential(stack.TenantID, stack.WorkloadClientID, st.WorkloadSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	waits := &waitLog{}
	opts := wiring.Options{
		Logger: logger.With("side", "patrol"), HTTPClient: hc, Credential: cred,
		Clock: testClock{now: st.Clock.Now, waitLog: waits},
		// The Service Bus SDK's retries are part of the real client, but wait
		// milliseconds, not seconds.
		ServiceBusRetryDelay: time.Millisecond,
	}
	svc, err := wiring.Build(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("wiring.Build: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	e := &env{t: t, ctx: ctx, st: st, cfg: cfg, svc: svc, logs: logs, seen: seen, waits: waits, envFile: envFile, opts: opts}
	if !o.noSignIn {
		e.signIn()
	}
	if o.latency > 0 {
		for _, f := range e.allFaults() {
			f.Set("*", faultLatency(o.latency))
		}
	}
	return e
}

// signIn completes a device-code sign-in of the service account, approving the code
// at the Entra emulator as the person at the browser would.
func (e *env) signIn() {
	e.t.Helper()
	err := e.svc.Accounts.Login(e.ctx, account, func(dc identity.DeviceCode) {
		if err := e.st.Entra.ApproveDeviceCode(dc.UserCode, account); err != nil {
			e.t.Errorf("approve the device code: %v", err)
		}
	})
	if err != nil {
		e.t.Fatalf("sign the service account in: %v", err)
	}
}

func (e *env) rotator(store rotation.SecretStore, pats rotation.PATs, ids rotation.Identities, fx rotation.Effects) *rotation.Rotator {
	return rotation.NewRotator(store, pats, ids, fx, rotation.Options{
		Defaults: e.svc.Defaults, Logger: e.opts.Logger.With("component", "rotation"), Clock: e.opts.Clock,
	})
}

func (e *env) adopt(secret, op string, extra map[string]string) (rotation.Outcome, error) {
	tags := rotation.Policy{Org: org, Scopes: strings.Fields(scopes), ServiceAccount: account}.Tags()
	for k, v := range extra {
		tags[k] = v
	}
	return e.svc.Rotator.Run(e.ctx, secret, rotation.Trigger{Kind: rotation.TriggerAdopt, Op: op, Policy: tags})
}

func (e *env) mustAdopt(secret string) rotation.Outcome {
	e.t.Helper()
	o, err := e.adopt(secret, rotation.NewOpID(), nil)
	if err != nil || o.Status != rotation.StatusRotated {
		e.t.Fatalf("adopt %s: status %s, err %v", secret, o.Status, err)
	}
	return o
}

func (e *env) rotate(secret, op string) (rotation.Outcome, error) {
	return e.svc.Rotator.Run(e.ctx, secret, rotation.Trigger{Kind: rotation.TriggerManual, Op: op})
}

// current reads the secret's current version straight from the emulator.
func (e *env) current(secret string) (version string, tags map[string]string, value string) {
	e.t.Helper()
	vs, err := e.st.KV.Versions(stack.Vault, secret)
	if err != nil {
		e.t.Fatalf("versions of %s: %v", secret, err)
	}
	for _, v := range vs {
		if v.Current {
			val, err := e.st.KV.SecretValue(stack.Vault, secret, v.Version)
			if err != nil {
				e.t.Fatal(err)
			}
			return v.Version, v.Tags, val
		}
	}
	e.t.Fatalf("%s has no current version", secret)
	return
}

func (e *env) versionCount(secret string) int {
	vs, err := e.st.KV.Versions(stack.Vault, secret)
	if err != nil {
		return 0
	}
	return len(vs)
}

// activePATs are the service account's active PATs named for secret.
func (e *env) activePATs(secret string) []devopsemu.PATInfo {
	var out []devopsemu.PATInfo
	u, _ := e.st.Entra.User(account) // by object id: Azure DevOps may know the account by another name
	for _, p := range e.st.DevOps.ActivePATs(org, u.ObjectID) {
		if s, _, ok := rotation.ParseDisplayName(p.DisplayName); ok && s == secret {
			out = append(out, p)
		}
	}
	return out
}

// assertConverged checks the invariant after a rotation settles: the stored PAT works
// (connectionData as that PAT, through patrol's own client) and authenticates as the
// service account, and the only active PATs of the secret are the stored one and, at
// most, the one it replaced (whose revocation is scheduled on pat-revocations).
func (e *env) assertConverged(name string) (patID string) {
	e.t.Helper()
	_, tags, value := e.current(name)
	patID = tags[rotation.TagPATID]
	if patID == "" || value == "" {
		e.t.Fatalf("%s holds no PAT (tags %v)", name, tags)
	}
	u, err := e.svc.DevOps.VerifyPAT(e.ctx, org, secret.New(value))
	if err != nil {
		e.t.Fatalf("the stored PAT does not work: %v", err)
	}
	owner, err := e.st.DevOps.ValidateToken(org, value)
	if err != nil {
		e.t.Fatalf("the emulator refuses the stored PAT: %v", err)
	}
	if want, _ := e.st.Entra.User(account); owner.ObjectID != want.ObjectID || u.ID != owner.ID {
		e.t.Fatalf("the stored PAT authenticates as %s (object id %s), want the service account %s", u.ID, owner.ObjectID, want.ObjectID)
	}
	prev := tags[rotation.TagPreviousPATID]
	var ids []string
	for _, p := range e.activePATs(name) {
		ids = append(ids, p.AuthorizationID)
		if p.AuthorizationID != patID && p.AuthorizationID != prev {
			e.t.Errorf("orphan PAT %s (%s) is still active", p.AuthorizationID, p.DisplayName)
		}
	}
	if !slices.Contains(ids, patID) {
		e.t.Errorf("the stored PAT %s is not active; active: %v", patID, ids)
	}
	if prev != "" && slices.Contains(ids, prev) && !e.scheduled("pat-revocations", rotation.Revocation{PATID: prev}.MessageID()) {
		e.t.Errorf("the replaced PAT %s is active and no revocation is scheduled for it", prev)
	}
	return patID
}

// scheduled reports whether the broker holds a message with this id on entity.
func (e *env) scheduled(entity, messageID string) bool {
	for _, ent := range e.st.SB.Store().Snapshot() {
		if ent.Path != entity {
			continue
		}
		for _, m := range ent.Messages {
			if m.MessageID == messageID {
				return true
			}
		}
	}
	return false
}

func (e *env) messages(entity string) []string {
	var ids []string
	for _, ent := range e.st.SB.Store().Snapshot() {
		if ent.Path == entity {
			for _, m := range ent.Messages {
				ids = append(ids, m.MessageID)
			}
		}
	}
	return ids
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testClock is patrol's clock in these tests: the emulators' time, and waits that are
// recorded and return at once (the protocol's behaviour under back-off is what matters,
// not the wall time).
type testClock struct {
	now func() time.Time
	*waitLog
}

func (c testClock) Now() time.Time { return c.now() }

// waitLog records the waits patrol asked for.
type waitLog struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (w *waitLog) Sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.waits = append(w.waits, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waitLog) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.waits)
}

// recorder is the HTTP transport under every client: it remembers every credential
// that crossed the wire — bearer tokens and Basic-auth PATs in requests, and
// access_token, refresh_token, id_token and PAT "token" fields in JSON responses — so
// the leak test can search the logs for each of them. It never prints them.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	vals map[string]bool
}

func (r *recorder) add(v string) {
	if len(v) < 8 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.vals == nil {
		r.vals = map[string]bool{}
	}
	r.vals[v] = true
}

func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.vals))
	for v := range r.vals {
		out = append(out, v)
	}
	return out
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if a := req.Header.Get("Authorization"); a != "" {
		kind, v, _ := strings.Cut(a, " ")
		switch strings.ToLower(kind) {
		case "bearer":
			r.add(v)
		case "basic":
			if raw, err := base64.StdEncoding.DecodeString(v); err == nil {
				_, pat, _ := strings.Cut(string(raw), ":")
				r.add(pat)
			}
		}
	}
	res, err := r.next.RoundTrip(req)
	if err != nil || res.Body == nil || !strings.Contains(res.Header.Get("Content-Type"), "json") {
		return res, err
	}
	body, rerr := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if rerr == nil {
		r.collect(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
	}
	return res, nil
}

// collect walks a JSON document for credential fields.
func (r *recorder) collect(body []byte) {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, v := range x {
				switch k {
				case "access_token", "refresh_token", "id_token", "token", "value":
					if s, ok := v.(string); ok {
						r.add(s)
					}
				}
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	walk(doc)
}

func (e *env) allFaults() map[string]*fault.Injector {
	return map[string]*fault.Injector{
		"entra": e.st.Entra.Faults(), "keyvault": e.st.KV.Faults(), "devops": e.st.DevOps.Faults(), "servicebus": e.st.SBFaults,
	}
}

func faultLatency(d time.Duration) fault.Fault { return fault.Fault{Latency: d} }

func faultStatus(code int) fault.Fault { return fault.Fault{Status: code} }
