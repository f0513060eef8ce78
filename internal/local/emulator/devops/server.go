// Package devops emulates the parts of Azure DevOps patrol depends on: the PAT lifecycle
// API (create, list, get, update, revoke), the token-admin API (list a user's PATs,
// revoke), the Graph users API (a person's subject descriptor, graph.go), and
// _apis/connectionData with Basic PAT authentication — with organization policies,
// per-identity rate limiting, fault injection and a request journal.
//
// One HTTPS listener serves the paths of both vssps.dev.azure.com and dev.azure.com
// (/{org}/_apis/...), matched case-insensitively as the service does. The lifecycle and
// token-admin APIs accept only Microsoft Entra user tokens for the Azure DevOps resource
// carrying the operation's scope (scopes.go), and answer tokens issued before a user's
// sessions were revoked with a CAE claims challenge (sessions.go); connectionData takes
// a PAT or any Entra token and names Azure DevOps' own identity (its id, descriptor and
// subject descriptor are not the Entra object id);
// semantic failures come back as HTTP 200 with patToken null and a patTokenError, as the
// service answers them. PAT values are stored only as SHA-256 hashes and never logged.
package devops

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/local/emulator/journal"
)

// Operation names used for fault injection, rate-limit costs and the journal.
const (
	OpCreatePat      = "CreatePat"
	OpListPats       = "ListPats"
	OpGetPat         = "GetPat"
	OpUpdatePat      = "UpdatePat"
	OpRevokePat      = "RevokePat"
	OpConnectionData = "ConnectionData"
	OpAdminRevoke    = "AdminRevoke"
	OpAdminList      = "AdminList"
	OpGraphUsers     = "GraphUsers"
	OpGraphUser      = "GraphUser"
)

// Options configure an Emulator.
type Options struct {
	// Verifier checks Entra access tokens (signature, issuer, lifetime); required.
	Verifier  authn.Verifier
	Clock     *clock.Clock     // default clock.New()
	Faults    *fault.Injector  // default fault.New()
	Journal   *journal.Journal // default journal.New(1000)
	Logger    *slog.Logger     // default: discard
	RateLimit RateLimit
	// AutoEnroll adds any authenticated Entra user to an organization on first use
	// (handy for the local stack); otherwise non-members get TF400813.
	AutoEnroll bool
	// Authority is the Entra host 401 challenges name (authorization_uri); default the
	// public cloud's https://login.microsoftonline.com.
	Authority string
	// Sessions records revoked sessions (RevokeSessions); share one with the Key Vault
	// emulator. Default: a record of this emulator's own.
	Sessions *authn.Sessions
	// GraphPageSize is how many users one page of the Graph users list holds; default
	// 100. Small values let tests walk continuation tokens.
	GraphPageSize int
	// TLS is the server configuration Start uses (tlsca's ServerTLSConfig); required there:
	// the service is HTTPS only. ServeHTTP alone needs none.
	TLS *tls.Config
}

// Emulator is the Azure DevOps emulator; it is an http.Handler.
type Emulator struct {
	verifier   authn.Verifier
	clock      *clock.Clock
	tls        *tls.Config
	faults     *fault.Injector
	journal    *journal.Journal
	log        *slog.Logger
	limiter    *limiter
	autoEnroll bool
	deployment string
	authority  string

	mu            sync.Mutex
	srv           *http.Server // set by Start
	url           string
	orgs          map[string]*org // by lower-case name
	pats          map[string]*pat // by lower-case authorization id
	byHash        map[[32]byte]string
	sessions      *authn.Sessions
	graphPageSize int
	// propagation is how many connectionData calls a new PAT refuses (DelayPATPropagation).
	propagation int
}

// New creates an emulator with no organizations; Start makes it listen.
func New(o Options) (*Emulator, error) {
	if o.Verifier == nil {
		return nil, errors.New("devops emulator: Options.Verifier is required")
	}
	s := &Emulator{verifier: o.Verifier, clock: o.Clock, faults: o.Faults, journal: o.Journal, log: o.Logger,
		limiter: newLimiter(o.RateLimit), autoEnroll: o.AutoEnroll, deployment: newGUID(), tls: o.TLS,
		orgs: map[string]*org{}, pats: map[string]*pat{}, byHash: map[[32]byte]string{}, sessions: o.Sessions,
		authority: o.Authority, graphPageSize: o.GraphPageSize}
	if s.graphPageSize <= 0 {
		s.graphPageSize = graphPageSizeDefault
	}
	if s.sessions == nil {
		s.sessions = authn.NewSessions()
	}
	if s.authority == "" {
		s.authority = "https://login.microsoftonline.com"
	}
	if s.clock == nil {
		s.clock = clock.New()
	}
	if s.faults == nil {
		s.faults = fault.New()
	}
	if s.journal == nil {
		s.journal = journal.New(1000)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Faults returns the fault injector (operations are the Op* constants).
func (s *Emulator) Faults() *fault.Injector { return s.faults }

// SetRateLimit replaces the per-identity budget (Options.RateLimit) of a running
// emulator; what each identity already spent stays charged.
func (s *Emulator) SetRateLimit(rl RateLimit) { s.limiter.set(rl) }

// Journal returns the request journal.
func (s *Emulator) Journal() *journal.Journal { return s.journal }

// Start listens on addr ("127.0.0.1:0" for any free port) and serves HTTPS with
// Options.TLS until Close.
func (s *Emulator) Start(addr string) error {
	if s.tls == nil {
		return errors.New("devops emulator: start: Options.TLS is required (tlsca.CA.ServerTLSConfig)")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("devops emulator: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, TLSConfig: s.tls, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("devops emulator: already started")
	}
	s.srv, s.url = srv, fmt.Sprintf("https://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	s.mu.Unlock()
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("devops emulator stopped", "err", err)
		}
	}()
	return nil
}

// URL is https://localhost:PORT, the base of both hosts' paths ("" before Start).
func (s *Emulator) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Close stops serving at once, closing open connections (a graceful HTTP/2 shutdown
// would hold every test's cleanup for a second).
func (s *Emulator) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// route is a parsed request path.
type route struct {
	org  string
	op   string
	rest string // subject descriptor for AdminList
}

// parseRoute maps /{org}/_apis/... (any case) to an operation.
func parseRoute(method, path string) (route, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 3 || !strings.EqualFold(parts[1], "_apis") {
		return route{}, false
	}
	r := route{org: parts[0]}
	tail := strings.ToLower(strings.Join(parts[2:], "/"))
	switch {
	case tail == "tokens/pats":
		switch method {
		case http.MethodPost:
			r.op = OpCreatePat
		case http.MethodGet:
			r.op = OpListPats // or GetPat, decided by the query
		case http.MethodPut:
			r.op = OpUpdatePat
		case http.MethodDelete:
			r.op = OpRevokePat
		}
	case tail == "connectiondata" && method == http.MethodGet:
		r.op = OpConnectionData
	case tail == "tokenadmin/revocations" && method == http.MethodPost:
		r.op = OpAdminRevoke
	case len(parts) == 5 && strings.HasPrefix(tail, "tokenadmin/personalaccesstokens/") && method == http.MethodGet:
		r.op, r.rest = OpAdminList, parts[4]
	case tail == "graph/users" && method == http.MethodGet:
		r.op = OpGraphUsers
	case len(parts) == 5 && strings.HasPrefix(tail, "graph/users/") && method == http.MethodGet:
		r.op, r.rest = OpGraphUser, parts[4]
	}
	return r, r.op != ""
}

// request carries what the handlers need after authentication.
type request struct {
	*http.Request
	org       *org         // read only under Emulator.mu
	orgInfo   Organization // snapshot for reads outside the lock
	user      *User        // the caller (lifecycle/admin) or the PAT's owner (connectionData)
	principal string
}

// ServeHTTP implements http.Handler.
func (s *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &journal.StatusRecorder{ResponseWriter: w}
	rt, ok := parseRoute(r.Method, r.URL.Path)
	if ok && rt.op == OpListPats && qget(r.URL.Query(), "authorizationId") != "" {
		rt.op = OpGetPat
	}
	req := &request{Request: r}
	defer func() {
		s.journal.Add(journal.Entry{Time: s.clock.Now(), Method: r.Method, Path: r.URL.Path, Operation: rt.op,
			Status: rec.Status, Principal: req.principal, Duration: time.Since(start)})
	}()
	if !ok {
		writeVSS(rec, http.StatusNotFound, "ResourceNotFoundException",
			fmt.Sprintf("The resource %s %s does not exist in this Azure DevOps emulator.", r.Method, r.URL.Path))
		return
	}
	if s.faults.Apply(rec, r, rt.op, func(w http.ResponseWriter, status int) { writeFault(w, status) }) {
		return
	}
	s.mu.Lock()
	o := s.orgs[strings.ToLower(rt.org)]
	if o != nil {
		req.orgInfo = o.Organization // a copy: AddOrganization may replace it meanwhile
	}
	s.mu.Unlock()
	if o == nil {
		writeVSS(rec, http.StatusNotFound, "AccountNotFoundException",
			fmt.Sprintf("TF400813: Organization '%s' was not found.", rt.org))
		return
	}
	req.org = o
	var fail *authFailure
	if rt.op == OpConnectionData && !isBearer(r.Header.Get("Authorization")) {
		fail = s.authenticatePAT(req)
	} else {
		fail = s.authenticateUser(req, rt.op)
	}
	if fail != nil {
		s.refuse(rec, r, req.orgInfo.TenantID, fail)
		return
	}
	d := s.limiter.take(req.principal, rt.op, s.clock.Now())
	resource := s.limiter.resource()
	d.setHeaders(rec.Header(), resource)
	if !d.allowed {
		writeVSS(rec, http.StatusTooManyRequests, "RequestBlockedException",
			fmt.Sprintf("TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource '%s' in namespace 'User'.", resource))
		return
	}
	if err := checkAPIVersion(rt.op, r.URL.Query()); err != nil {
		writeVSS(rec, http.StatusBadRequest, "VssInvalidPreviewVersionException", err.Error())
		return
	}
	switch rt.op {
	case OpCreatePat:
		s.createPAT(rec, req)
	case OpListPats:
		s.listPATs(rec, req)
	case OpGetPat:
		s.getPAT(rec, req)
	case OpUpdatePat:
		s.updatePAT(rec, req)
	case OpRevokePat:
		s.revokePAT(rec, req)
	case OpConnectionData:
		s.connectionData(rec, req)
	case OpAdminList:
		s.adminList(rec, req, rt.rest)
	case OpAdminRevoke:
		s.adminRevoke(rec, req)
	case OpGraphUsers:
		s.graphUsers(rec, req)
	case OpGraphUser:
		s.graphUser(rec, req, rt.rest)
	}
}

// checkAPIVersion: the PAT and token-admin APIs exist only as previews, so the service
// refuses calls without a "-preview" api-version; connectionData takes any or none.
func checkAPIVersion(op string, q url.Values) error {
	if op == OpConnectionData {
		return nil
	}
	v := qget(q, "api-version")
	if v == "" {
		return errors.New("VS800075: The project collection API requires an api-version; use api-version=7.1-preview.1.")
	}
	if !strings.Contains(strings.ToLower(v), "-preview") {
		return fmt.Errorf("VS800026: The requested version \"%s\" of the resource is under preview. The -preview flag must be supplied in the api-version for such requests. For example: \"%s-preview\"", v, v)
	}
	return nil
}

// authFailure is why a request was not authenticated or authorized.
type authFailure struct {
	status  int
	typeKey string
	message string
	signIn  bool // answered with the sign-in page unless the caller suppresses it
	// challenge replaces the Bearer WWW-Authenticate value: a CAE claims challenge.
	challenge string
}

func unauthorized(who string) *authFailure {
	return &authFailure{status: http.StatusUnauthorized, typeKey: "UnauthorizedRequestException", signIn: true,
		message: fmt.Sprintf("TF400813: The user '%s' is not authorized to access this resource.", who)}
}

// authenticateUser admits only Entra user tokens for the Azure DevOps resource.
func (s *Emulator) authenticateUser(req *request, op string) *authFailure {
	h := req.Header.Get("Authorization")
	scheme, raw, _ := strings.Cut(strings.TrimSpace(h), " ")
	switch {
	case h == "":
		return unauthorized("")
	case strings.EqualFold(scheme, "Basic"):
		f := unauthorized("")
		f.message = "TF400813: Personal access tokens cannot call the PAT lifecycle management API; use a Microsoft Entra access token for a user."
		f.signIn = false
		return f
	case !strings.EqualFold(scheme, "Bearer"):
		return unauthorized("")
	}
	if f := s.checkExpiry(req, raw); f != nil {
		return f
	}
	p, err := s.verifier.Verify(strings.TrimSpace(raw))
	if err != nil {
		s.log.Debug("devops emulator: bearer token refused", "err", err)
		return unauthorized("")
	}
	req.principal = principalName(p)
	if !audienceOK(p.Audience) {
		f := unauthorized(req.principal)
		f.message = fmt.Sprintf("TF400813: The user '%s' is not authorized to access this resource. The access token audience %q is not Azure DevOps (%s).", req.principal, p.Audience, ResourceID)
		return f
	}
	if !p.IsUser {
		return &authFailure{status: http.StatusUnauthorized, typeKey: "InvalidAccessException",
			message: fmt.Sprintf("TF400813: The service principal or managed identity '%s' is not authorized to access this resource. Service principals and managed identities can't create or manage personal access tokens.", req.principal)}
	}
	if t := req.orgInfo.TenantID; t != "" && !strings.EqualFold(t, p.TenantID) {
		return unauthorized(req.principal)
	}
	if f := checkScope(op, req.principal, p.Scopes); f != nil {
		return f
	}
	if f := s.checkSession(req, p); f != nil {
		return f
	}
	o := req.org
	s.mu.Lock()
	u := o.findUser(p.ObjectID)
	if u == nil && s.autoEnroll && p.ObjectID != "" {
		name := p.Name
		if name == "" {
			name = p.UPN
		}
		u = &User{ObjectID: p.ObjectID, UPN: p.UPN, DisplayName: name, TenantID: p.TenantID}
		u.fillIdentity()
		o.users[strings.ToLower(p.ObjectID)] = u
	}
	var admin bool
	var disabled bool
	if u != nil {
		admin, disabled = u.Admin, u.Disabled
	}
	s.mu.Unlock()
	if u == nil || disabled {
		return unauthorized(req.principal)
	}
	if (op == OpAdminList || op == OpAdminRevoke) && !admin {
		return &authFailure{status: http.StatusUnauthorized, typeKey: "UnauthorizedRequestException",
			message: fmt.Sprintf("TF400813: The user '%s' is not authorized to access this resource. Token administration requires the Project Collection Administrator role.", req.principal)}
	}
	req.user = u
	return nil
}

// authenticatePAT admits a Basic credential whose password is an active PAT for this
// organization whose owner is an enabled member.
func (s *Emulator) authenticatePAT(req *request) *authFailure {
	h := req.Header.Get("Authorization")
	if h == "" {
		return unauthorized("")
	}
	value, err := parseBasicAuth(h)
	if err != nil {
		return unauthorized("")
	}
	s.mu.Lock()
	u, p, err := s.validateLocked(req.orgInfo.Name, value)
	if err == nil && p.unpropagated > 0 {
		p.unpropagated--
		err = fmt.Errorf("%w: PAT %s has not propagated yet", ErrInvalidToken, p.id)
	}
	s.mu.Unlock()
	if err != nil {
		if p != nil {
			req.principal = "pat:" + p.id
		}
		return unauthorized("")
	}
	req.user, req.principal = &u, u.UPN
	return nil
}

func isBearer(h string) bool {
	scheme, _, _ := strings.Cut(strings.TrimSpace(h), " ")
	return strings.EqualFold(scheme, "Bearer")
}

func principalName(p authn.Principal) string {
	for _, v := range []string{p.UPN, p.AppID, p.ObjectID} {
		if v != "" {
			return v
		}
	}
	return "anonymous"
}

// audienceOK accepts the Azure DevOps resource in the forms Entra issues it.
func audienceOK(aud string) bool {
	a := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(aud)), "/")
	return a == ResourceID || a == "api://"+ResourceID
}

// refuse answers an authentication failure: the sign-in page (203) unless the client
// sent X-TFS-FedAuthRedirect: Suppress, else 401 with the VSS error JSON.
func (s *Emulator) refuse(w http.ResponseWriter, r *http.Request, tenant string, f *authFailure) {
	if f.signIn && !strings.EqualFold(r.Header.Get("X-TFS-FedAuthRedirect"), "Suppress") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNonAuthoritativeInfo)
		io.WriteString(w, signInPage)
		return
	}
	if f.status == http.StatusUnauthorized {
		bearer := f.challenge
		if bearer == "" {
			bearer = "Bearer authorization_uri=" + s.authorizationURI(tenant)
		}
		w.Header().Set("WWW-Authenticate", bearer)
		w.Header().Add("WWW-Authenticate", `Basic realm="https://dev.azure.com/"`)
		w.Header().Add("WWW-Authenticate", "TFS-Federated")
	}
	writeVSS(w, f.status, f.typeKey, f.message)
}

const signInPage = `<!DOCTYPE html>
<html><head><title>Azure DevOps Services | Sign In</title></head>
<body><p>Sign in to Azure DevOps (emulator). Send <code>X-TFS-FedAuthRedirect: Suppress</code> to get a 401 instead of this page.</p></body></html>
`

// vssTypeNames maps typeKey to the .NET type name the service reports.
var vssTypeNames = map[string]string{
	"UnauthorizedRequestException": "Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException, Microsoft.TeamFoundation.Framework.Server",
	"InvalidAccessException":       "Microsoft.TeamFoundation.Framework.Server.InvalidAccessException, Microsoft.TeamFoundation.Framework.Server",
	"RequestBlockedException":      "Microsoft.TeamFoundation.Framework.Server.RequestBlockedException, Microsoft.TeamFoundation.Framework.Server",
}

// writeVSS writes the VSS error JSON and the X-TFS-ServiceError header.
func writeVSS(w http.ResponseWriter, status int, typeKey, message string) {
	typeName, ok := vssTypeNames[typeKey]
	if !ok {
		typeName = "Microsoft.VisualStudio.Services.WebApi." + typeKey + ", Microsoft.VisualStudio.Services.WebApi"
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-TFS-ServiceError", strings.ReplaceAll(url.QueryEscape(message), "+", "%20"))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(vssError{ID: "1", Message: message, TypeName: typeName, TypeKey: typeKey, EventID: 3000})
}

// writeFault gives injected faults the service's error shape.
func writeFault(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		writeVSS(w, status, "RequestBlockedException",
			"TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'Core' in namespace 'User'.")
	case status >= 500:
		writeVSS(w, status, "VssServiceException", fmt.Sprintf("TF246017: The service is unavailable (injected fault, HTTP %d).", status))
	default:
		writeVSS(w, status, "VssServiceException", fmt.Sprintf("Injected fault: HTTP %d.", status))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
