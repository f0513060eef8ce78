package keyvault

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/local/emulator/journal"
)

// Options configure an Emulator. Verifier, Authority and TenantID are required.
type Options struct {
	// Verifier checks bearer tokens (the Entra emulator's).
	Verifier authn.Verifier
	// Authority is the Entra authority host, e.g. "https://localhost:8443"; the
	// challenge sends authorization="<Authority>/<TenantID>".
	Authority string
	TenantID  string

	// Vaults created at start. More can be added with AddVault.
	Vaults []string
	// DefaultVault answers requests whose host has no vault label (https://localhost:PORT,
	// an IP). Empty: such requests get 404.
	DefaultVault string

	Clock   *clock.Clock     // default clock.New()
	Logger  *slog.Logger     // default: discard
	Faults  *fault.Injector  // default fault.New()
	Journal *journal.Journal // default journal.New(10000)
	Limit   *RateLimit       // default AzureRateLimit
	Webhook *http.Client     // delivers events; default: plain client, 30 s timeout
	TLS     *tls.Config      // for Start; required there (Key Vault is HTTPS only)
	// Sessions records revoked sessions (Continuous Access Evaluation); share the Azure
	// DevOps emulator's. Default: a record of this emulator's own (RevokeSessions).
	Sessions *authn.Sessions

	// DeleteWindow is how long a deletion stays "in progress" (ObjectIsBeingDeleted on
	// set, recover and purge; not yet listed as deleted). Azure takes a few seconds.
	DeleteWindow time.Duration
	// RecoverableDays is the soft-delete retention (default 90).
	RecoverableDays int

	// Names used in event topics and RBAC messages.
	SubscriptionID string // default 00000000-0000-0000-0000-000000000000
	ResourceGroup  string // default patrol-local
	Location       string // default eastus
}

// Emulator is a Key Vault secrets service for any number of vaults.
type Emulator struct {
	opts      Options
	verifier  authn.Verifier
	authority string
	tenant    string
	clk       *clock.Clock
	log       *slog.Logger
	faults    *fault.Injector
	journal   *journal.Journal
	backupKey []byte

	mu     sync.Mutex
	vaults map[string]*vaultState
	grants map[string]map[string]map[Role]bool // vault → object id → roles
	limit  RateLimit
	port   int

	events *dispatcher

	srv *http.Server
	ln  net.Listener
}

// New validates opts and returns an emulator with its vaults created; Start makes it listen.
func New(opts Options) (*Emulator, error) {
	if opts.Verifier == nil {
		return nil, errors.New("keyvault: Options.Verifier is required")
	}
	u, err := url.Parse(opts.Authority)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("keyvault: Options.Authority %q must be an https authority host such as https://localhost:8443", opts.Authority)
	}
	if opts.TenantID == "" || strings.ContainsAny(opts.TenantID, `/", `) {
		return nil, fmt.Errorf("keyvault: Options.TenantID %q must be a tenant id (azsecrets reads it from the challenge path)", opts.TenantID)
	}
	if opts.Clock == nil {
		opts.Clock = clock.New()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Faults == nil {
		opts.Faults = fault.New()
	}
	if opts.Journal == nil {
		opts.Journal = journal.New(10000)
	}
	if opts.Limit == nil {
		l := AzureRateLimit
		opts.Limit = &l
	}
	if opts.Webhook == nil {
		opts.Webhook = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.RecoverableDays == 0 {
		opts.RecoverableDays = 90
	}
	if opts.RecoverableDays < 7 || opts.RecoverableDays > 90 {
		return nil, fmt.Errorf("keyvault: Options.RecoverableDays %d must be from 7 to 90", opts.RecoverableDays)
	}
	if opts.DeleteWindow < 0 {
		return nil, fmt.Errorf("keyvault: Options.DeleteWindow %v is negative", opts.DeleteWindow)
	}
	if opts.SubscriptionID == "" {
		opts.SubscriptionID = "00000000-0000-0000-0000-000000000000"
	}
	if opts.ResourceGroup == "" {
		opts.ResourceGroup = "patrol-local"
	}
	if opts.Location == "" {
		opts.Location = "eastus"
	}
	if opts.Sessions == nil {
		opts.Sessions = authn.NewSessions()
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("keyvault: backup key: %w", err)
	}
	e := &Emulator{
		opts: opts, verifier: opts.Verifier, authority: strings.TrimSuffix(opts.Authority, "/"), tenant: opts.TenantID,
		clk: opts.Clock, log: opts.Logger, faults: opts.Faults, journal: opts.Journal, backupKey: key,
		vaults: map[string]*vaultState{}, grants: map[string]map[string]map[Role]bool{}, limit: *opts.Limit,
	}
	e.events = newDispatcher(e.clk, opts.Webhook, opts.Logger)
	for _, v := range opts.Vaults {
		if err := e.AddVault(v); err != nil {
			return nil, err
		}
	}
	if opts.DefaultVault != "" {
		if err := e.AddVault(opts.DefaultVault); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// validVaultName applies Azure's vault naming rule: 3–24 characters, letters, digits
// and hyphens, starting with a letter, no consecutive hyphens, not ending in one.
func validVaultName(n string) bool {
	if len(n) < 3 || len(n) > 24 || !(n[0] >= 'a' && n[0] <= 'z' || n[0] >= 'A' && n[0] <= 'Z') || strings.HasSuffix(n, "-") || strings.Contains(n, "--") {
		return false
	}
	return validName(n)
}

// AddVault creates a vault (idempotent). Names are case-insensitive.
func (e *Emulator) AddVault(name string) error {
	if !validVaultName(name) {
		return fmt.Errorf("keyvault: vault name %q must be 3-24 letters, digits or single hyphens, starting with a letter", name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	key := strings.ToLower(name)
	if e.vaults[key] == nil {
		e.vaults[key] = newVaultState(key)
	}
	return nil
}

// Grant assigns role to the principal with objectID on vault (or AllVaults).
func (e *Emulator) Grant(vault, objectID string, role Role) error {
	if !role.valid() {
		return fmt.Errorf("keyvault: grant: unknown role %q", role)
	}
	if objectID == "" {
		return errors.New("keyvault: grant: empty object id")
	}
	vault = strings.ToLower(vault)
	e.mu.Lock()
	defer e.mu.Unlock()
	if vault != AllVaults && e.vaults[vault] == nil {
		return fmt.Errorf("keyvault: grant: no vault %q", vault)
	}
	if e.grants[vault] == nil {
		e.grants[vault] = map[string]map[Role]bool{}
	}
	if e.grants[vault][objectID] == nil {
		e.grants[vault][objectID] = map[Role]bool{}
	}
	e.grants[vault][objectID][role] = true
	return nil
}

// Revoke removes a role assignment; it reports whether one existed.
func (e *Emulator) Revoke(vault, objectID string, role Role) bool {
	vault = strings.ToLower(vault)
	e.mu.Lock()
	defer e.mu.Unlock()
	had := e.grants[vault][objectID][role]
	delete(e.grants[vault][objectID], role)
	return had
}

// SetRateLimit replaces the per-vault rate limit and forgets past requests.
func (e *Emulator) SetRateLimit(l RateLimit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.limit = l
	for _, v := range e.vaults {
		v.rate = rateState{}
	}
}

// Faults is the fault injector; rules are keyed by the Op* operation names.
func (e *Emulator) Faults() *fault.Injector { return e.faults }

// Journal is the request journal (method, path, operation, status, caller).
func (e *Emulator) Journal() *journal.Journal { return e.journal }

// Clock is the emulator's clock.
func (e *Emulator) Clock() *clock.Clock { return e.clk }

// Start listens on addr (e.g. "127.0.0.1:0") with Options.TLS and serves until Close.
func (e *Emulator) Start(addr string) error {
	if e.opts.TLS == nil {
		return errors.New("keyvault: start: Options.TLS is required (Key Vault is HTTPS only)")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("keyvault: start: %w", err)
	}
	e.mu.Lock()
	e.ln = ln
	e.port = ln.Addr().(*net.TCPAddr).Port
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(e.log.Handler(), slog.LevelDebug)}
	srv := e.srv
	e.mu.Unlock()
	go func() {
		if err := srv.Serve(tls.NewListener(ln, e.opts.TLS)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("keyvault: serve", "err", err)
		}
	}()
	return nil
}

// Port is the port Start listens on (0 before Start).
func (e *Emulator) Port() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.port
}

// VaultURL is the URL clients use for vault: https://<vault>.vault.localhost:<port>.
func (e *Emulator) VaultURL(vault string) string {
	return fmt.Sprintf("https://%s.vault.localhost:%d", strings.ToLower(vault), e.Port())
}

// Resource is the challenge resource and token audience: https://vault.localhost:<port>.
func (e *Emulator) Resource() string { return fmt.Sprintf("https://vault.localhost:%d", e.Port()) }

// Close stops the server, pending expiry timers and event delivery.
func (e *Emulator) Close() error {
	e.mu.Lock()
	srv := e.srv
	for _, v := range e.vaults {
		for _, s := range v.secrets {
			for _, ver := range s.versions {
				stopTimers(ver)
			}
		}
	}
	e.mu.Unlock()
	e.events.close()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}
	return nil
}

// recorder keeps the status for the journal and passes hijacking through so fault

// ServeHTTP is the Key Vault data plane. Order matters: the challenge comes before
// any body or name validation, because azsecrets' first request has no token and no
// body; faults apply to authenticated calls only so a one-shot fault is not spent on
// the challenge round trip.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	now := e.clk.Now()
	rec := &journal.StatusRecorder{ResponseWriter: w}
	rt, routeErr := parseRoute(r.Method, r.URL.EscapedPath())
	var who string
	logged := false
	record := func() {
		if !logged {
			logged = true
			e.journal.Add(journal.Entry{Time: now, Method: r.Method, Path: r.URL.Path, Operation: rt.op,
				Status: rec.Status, Principal: who, Duration: time.Since(start)})
			e.log.Debug("keyvault: request", "method", r.Method, "host", r.Host, "path", r.URL.Path, "op", rt.op,
				"status", rec.Status, "principal", who)
		}
	}
	rec.OnHijack = record
	defer record()
	e.commonHeaders(rec, r)

	vault, ok := e.vaultFor(r.Host)
	if !ok {
		e.writeError(rec, &apiError{status: 404, code: "VaultNotFound", message: fmt.Sprintf("No vault is served at host %q.", truncate(r.Host, 100))})
		return
	}
	p, aerr := e.authenticate(r, now)
	if aerr != nil {
		switch {
		case aerr.challenge != "":
			rec.Header().Set("WWW-Authenticate", aerr.challenge)
		case aerr.inner == innerTokenExpired:
			rec.Header().Set("WWW-Authenticate", e.claimsChallenge(now))
			aerr = &apiError{status: aerr.status, code: aerr.code, message: aerr.message}
		default:
			rec.Header().Set("WWW-Authenticate", e.challenge(r.Host))
		}
		e.writeError(rec, aerr)
		return
	}
	who = principalLabel(p)
	if routeErr != nil {
		e.writeError(rec, routeErr)
		return
	}
	apiVersion := r.URL.Query().Get("api-version")
	if apiVersion == "" {
		e.writeError(rec, badParameter("The api-version query parameter is missing; Key Vault requires one (e.g. api-version=7.6)."))
		return
	}
	if !validAPIVersion(apiVersion) {
		e.writeError(rec, badParameter("The specified version (%s) is not recognized. Consider using the latest supported version (2026-04-01).", truncate(apiVersion, 40)))
		return
	}
	if e.faults.Apply(rec, r, rt.op, func(w http.ResponseWriter, status int) { e.writeError(w, faultError(status)) }) {
		return
	}
	if !e.admit(vault, rt.op, now) {
		e.writeError(rec, throttled())
		return
	}
	if aerr := e.authorize(vault, p, rt.op, rt.name); aerr != nil {
		e.writeError(rec, aerr)
		return
	}
	var body []byte
	if r.Method == http.MethodPut || r.Method == http.MethodPatch || rt.op == OpRestoreSecret {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			e.writeError(rec, badParameter("The request body could not be read: %v", err))
			return
		}
		if len(b) > maxBodyBytes {
			e.writeError(rec, &apiError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge", message: fmt.Sprintf("The request body exceeds %d bytes.", maxBodyBytes)})
			return
		}
		body = b
	}
	status, out, aerr := e.serve(vault, rt, r, body, apiVersion, now)
	if aerr != nil {
		e.writeError(rec, aerr)
		return
	}
	e.writeJSON(rec, status, out)
}

// vaultFor resolves the vault a host names.
func (e *Emulator) vaultFor(host string) (string, bool) {
	name, _, ok := splitVaultHost(host)
	if !ok {
		name = strings.ToLower(e.opts.DefaultVault)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, exists := e.vaults[name]
	return name, exists && name != ""
}

func (e *Emulator) admit(vault, op string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.vaults[vault].rate.admit(e.limit, op, now)
}

func (e *Emulator) commonHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
	h.Set("x-ms-keyvault-region", e.opts.Location)
	h.Set("x-ms-request-id", uuid.NewString())
	if id := r.Header.Get("x-ms-client-request-id"); id != "" {
		h.Set("x-ms-client-request-id", truncate(id, 100))
	}
	h.Set("x-ms-keyvault-service-version", "1.9.2700.1")
	h.Set("x-ms-keyvault-network-info", "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;")
	h.Set("Strict-Transport-Security", "max-age=31536000;includeSubDomains")
	h.Set("X-Content-Type-Options", "nosniff")
}

// faultError is the body an injected status carries, shaped as the service's own.
func faultError(status int) *apiError {
	switch {
	case status == http.StatusTooManyRequests:
		return throttled()
	case status == http.StatusServiceUnavailable:
		return &apiError{status: status, code: "ServiceUnavailable", message: "The service is temporarily unavailable. Please retry later."}
	case status >= 500:
		return &apiError{status: status, code: "InternalServerError", message: "An internal server error occurred. Please retry later."}
	}
	return &apiError{status: status, code: http.StatusText(status), message: "Injected fault."}
}

func (e *Emulator) writeError(w http.ResponseWriter, a *apiError) {
	body := wireError{Error: wireErrorBody{Code: a.code, Message: a.message}}
	if a.inner != "" {
		body.Error.InnerError = &wireInner{Code: a.inner}
	}
	e.writeJSON(w, a.status, body)
}

func (e *Emulator) writeJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		e.log.Error("keyvault: encode response", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// newVersionID is 32 lowercase hex characters, as Key Vault's versions are.
func newVersionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
