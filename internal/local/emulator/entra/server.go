// Package entra is a local Entra ID (Azure AD) that the real Microsoft clients talk to
// unchanged: MSAL for Go (ROPC, device code, silent refresh from a persisted cache) and
// azidentity (client secret, App Service managed identity).
//
// It serves, over HTTPS on https://localhost:PORT:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration   op "openid"
//	GET  /{tenant}/discovery/v2.0/keys                     op "jwks"
//	POST /{tenant}/oauth2/v2.0/token                       op "token"
//	POST /{tenant}/oauth2/v2.0/devicecode                  op "devicecode"
//	GET  /{tenant}/oauth2/v2.0/authorize                   op "authorize" (auth code + PKCE, authorize.go)
//	GET  /common/UserRealm/{user}?api-version=1.0          op "userrealm"
//	GET|POST /devicelogin                                  op "devicelogin" (the sign-in page of both flows)
//
// and, over plain HTTP on loopback, an App Service style managed identity endpoint
// (op "msi"). The op names are the fault-injection and journal operation names.
//
// Tokens are RS256 JWTs with iss https://localhost:PORT/<tenant>/v2.0, aud the requested
// resource (the scope without "/.default", ports and GUIDs kept as given), tid, oid,
// upn/preferred_username and scp for users, appid/azp for every client, idtyp user|app.
// Their times come from the shared emulator clock, so advancing it expires them.
// Refresh tokens and device codes are opaque random values; the emulator stores only
// their SHA-256 hashes, and neither they nor access tokens reach the journal or the log.
//
// Errors follow Entra's JSON shape (error, error_description beginning
// "AADSTS<code>: ", error_codes, timestamp, trace_id, correlation_id, error_uri), HTTP 400
// or 401 for invalid_client. The Code* constants list the codes used.
package entra

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/local/emulator/journal"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
)

// Options configure New. Only Directory is required.
type Options struct {
	Directory Directory
	// CA issues the server certificate; default a new CA (see CA()).
	CA *tlsca.CA
	// Clock is the time tokens, refresh tokens and device codes are checked against;
	// default clock.New() (wall time).
	Clock *clock.Clock
	// Faults and Journal default to fresh ones (see Faults(), Journal()).
	Faults  *fault.Injector
	Journal *journal.Journal
	// Logger defaults to discarding. Token values are never logged.
	Logger *slog.Logger
	// SigningKey is the token-signing key; default a new 2048-bit RSA key. Tests that
	// start many emulators may share one to save key generation.
	SigningKey *rsa.PrivateKey
	// AccessTokenLifetime defaults to 1h; RefreshTokenLifetime (the inactivity window)
	// to 90 days; DeviceCodeLifetime to 15 minutes, as in Entra.
	AccessTokenLifetime  time.Duration
	RefreshTokenLifetime time.Duration
	DeviceCodeLifetime   time.Duration
}

// Emulator is an Entra ID emulator. Its methods are safe for concurrent use.
type Emulator struct {
	clock   *clock.Clock
	faults  *fault.Injector
	journal *journal.Journal
	log     *slog.Logger
	ca      *tlsca.CA
	tlsConf *tls.Config
	signer  *signer

	atLifetime, rtLifetime, dcLifetime time.Duration

	host     string // localhost:PORT
	listener net.Listener
	server   *http.Server
	handler  http.Handler

	mu             sync.Mutex
	dir            Directory
	refresh        map[[32]byte]*refreshRecord
	refreshInserts int
	devices        map[[32]byte]*deviceAuth
	userCodes      map[string][32]byte // user code → device code hash
	authz          authorizations      // authorization-code flow (authorize.go)

	msiMu   sync.Mutex
	msiSrvs []*ManagedIdentityServer
}

// New validates the directory and builds the emulator; Start makes it listen.
func New(opts Options) (*Emulator, error) {
	dir, err := opts.Directory.normalize()
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		clock: opts.Clock, faults: opts.Faults, journal: opts.Journal, log: opts.Logger, ca: opts.CA,
		atLifetime: opts.AccessTokenLifetime, rtLifetime: opts.RefreshTokenLifetime, dcLifetime: opts.DeviceCodeLifetime,
		dir: dir, refresh: map[[32]byte]*refreshRecord{}, devices: map[[32]byte]*deviceAuth{}, userCodes: map[string][32]byte{},
	}
	if e.clock == nil {
		e.clock = clock.New()
	}
	if e.faults == nil {
		e.faults = fault.New()
	}
	if e.journal == nil {
		e.journal = journal.New(0)
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.atLifetime <= 0 {
		e.atLifetime = time.Hour
	}
	if e.rtLifetime <= 0 {
		e.rtLifetime = 90 * 24 * time.Hour
	}
	if e.dcLifetime <= 0 {
		e.dcLifetime = 15 * time.Minute
	}
	if e.signer, err = newSigner(opts.SigningKey); err != nil {
		return nil, err
	}
	if e.ca == nil {
		if e.ca, err = tlsca.New(); err != nil {
			return nil, fmt.Errorf("entra: %w", err)
		}
	}
	if e.tlsConf, err = e.ca.ServerTLSConfig(); err != nil {
		return nil, fmt.Errorf("entra: %w", err)
	}
	e.handler = e.routes()
	return e, nil
}

// Start listens on addr ("127.0.0.1:0" for any free port) and serves HTTPS until Close.
// The emulator is reached as https://localhost:PORT whatever the address; its tokens
// name that host, so Host, Authority and Verifier are meaningful only after Start.
func (e *Emulator) Start(addr string) error {
	if e.server != nil {
		return errors.New("entra: already started")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("entra: listen %s: %w", addr, err)
	}
	e.listener = l
	e.host = "localhost:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	e.server = &http.Server{
		Handler:           e.handler,
		TLSConfig:         e.tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := e.server.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("entra: serve", "err", err)
		}
	}()
	return nil
}

// Close stops the HTTPS server and every managed-identity server started from it.
func (e *Emulator) Close() error {
	e.msiMu.Lock()
	srvs := e.msiSrvs
	e.msiSrvs = nil
	e.msiMu.Unlock()
	var errs []error
	if e.server != nil {
		errs = append(errs, e.server.Close())
	}
	for _, s := range srvs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Host is "localhost:PORT".
func (e *Emulator) Host() string { return e.host }

// AuthorityHost is "https://localhost:PORT/": the value for AZURE_AUTHORITY_HOST and
// azcore's cloud.Configuration.ActiveDirectoryAuthorityHost.
func (e *Emulator) AuthorityHost() string { return "https://" + e.host + "/" }

// Authority is "https://localhost:PORT/<tenant>": MSAL's authority.
func (e *Emulator) Authority() string { return "https://" + e.host + "/" + e.TenantID() }

// TenantID is the directory's tenant GUID (lower case).
func (e *Emulator) TenantID() string { return e.dir.TenantID }

// Issuer is the iss of every token: "https://localhost:PORT/<tenant>/v2.0".
func (e *Emulator) Issuer() string { return e.issuer() }

func (e *Emulator) issuer() string { return "https://" + e.host + "/" + e.dir.TenantID + "/v2.0" }

// CA is the certificate authority the server certificate was issued by.
func (e *Emulator) CA() *tlsca.CA { return e.ca }

// Faults is the fault injector (operations: openid, jwks, token, devicecode, authorize,
// userrealm, devicelogin, msi).
func (e *Emulator) Faults() *fault.Injector { return e.faults }

// Journal is the request journal (no headers, bodies, queries or tokens).
func (e *Emulator) Journal() *journal.Journal { return e.journal }

// Handler is the HTTPS handler, for mounting the emulator in another server. Its URLs
// and issuer name Host(), which Start sets.
func (e *Emulator) Handler() http.Handler { return e.handler }

// Verifier checks tokens this emulator issued: RS256 signature by its key, its issuer,
// exp/nbf on its clock. The caller checks Principal.Audience.
func (e *Emulator) Verifier() authn.Verifier {
	iss := e.issuer()
	tenant := e.dir.TenantID
	pub := &e.signer.key.PublicKey
	kid := e.signer.kid
	return authn.KeyVerifier{
		Keys: func(k string) (*rsa.PublicKey, bool) { return pub, k == kid },
		Issuer: func(tid string) string {
			if tid != tenant {
				return "\x00another tenant" // equals no iss: this emulator issues for one tenant
			}
			return iss
		},
		Now: e.clock.Now,
	}
}

// routes builds the HTTPS mux.
func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{tenant}/v2.0/.well-known/openid-configuration", e.op("openid", e.tenantJSONFault, e.serveOpenID))
	mux.Handle("GET /{tenant}/discovery/v2.0/keys", e.op("jwks", e.tenantJSONFault, e.serveJWKS))
	mux.Handle("POST /{tenant}/oauth2/v2.0/token", e.op("token", e.tenantJSONFault, e.serveToken))
	mux.Handle("POST /{tenant}/oauth2/v2.0/devicecode", e.op("devicecode", e.tenantJSONFault, e.serveDeviceCode))
	mux.Handle("GET /{tenant}/oauth2/v2.0/authorize", e.op("authorize", textFault, e.serveAuthorize))
	mux.Handle("GET /common/UserRealm/{user}", e.op("userrealm", e.tenantJSONFault, e.serveUserRealm))
	mux.Handle("/devicelogin", e.op("devicelogin", textFault, e.serveDeviceLogin))
	mux.Handle("GET /error", e.op("error", textFault, serveErrorPage))
	return mux
}

// requestInfo carries what a handler learned about the caller to the journal.
type requestInfo struct{ principal string }

type infoKey struct{}

// setPrincipal names the caller (UPN or client id, never a credential) in the journal.
func setPrincipal(r *http.Request, p string) {
	if ri, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		ri.principal = p
	}
}

// op wraps a handler with fault injection and journaling.
func (e *Emulator) op(name string, faultBody func(http.ResponseWriter, *http.Request, int), h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		rec := &journal.StatusRecorder{ResponseWriter: w}
		defer func() {
			// Status stays 0 when a fault dropped the connection before any answer.
			status := rec.Status
			e.journal.Add(journal.Entry{Time: e.clock.Now(), Method: r.Method, Path: r.URL.Path, Operation: name,
				Status: status, Principal: ri.principal, Duration: time.Since(start)})
		}()
		if e.faults.Apply(rec, r, name, func(w http.ResponseWriter, status int) { faultBody(w, r, status) }) {
			return
		}
		h(rec, r)
	})
}

// writeAAD answers with Entra's error JSON.
func (e *Emulator) writeAAD(w http.ResponseWriter, r *http.Request, aerr *aadError) {
	body := aerr.render(e.clock.Now(), r.Header.Get("client-request-id"), "https://"+e.host+"/error")
	w.Header().Set("x-ms-request-id", body.TraceID)
	w.Header().Set("client-request-id", body.CorrelationID)
	writeJSON(w, aerr.Status, body)
}

func (e *Emulator) tenantJSONFault(w http.ResponseWriter, r *http.Request, status int) {
	e.writeAAD(w, r, faultError(status))
}

func textFault(w http.ResponseWriter, _ *http.Request, status int) {
	http.Error(w, http.StatusText(status), status)
}

// tenant resolves the {tenant} path segment or answers AADSTS90002.
func (e *Emulator) tenant(w http.ResponseWriter, r *http.Request) bool {
	t := r.PathValue("tenant")
	e.mu.Lock()
	ok := e.dir.knowsTenant(t)
	e.mu.Unlock()
	if !ok {
		e.writeAAD(w, r, tenantNotFound(sanitize(t)))
	}
	return ok
}

// openIDConfiguration is the discovery document. MSAL requires authorization_endpoint,
// token_endpoint and issuer, and checks that the issuer's host (with port) equals the
// authority's.
type openIDConfiguration struct {
	TokenEndpoint                string   `json:"token_endpoint"`
	TokenEndpointAuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
	JWKSURI                      string   `json:"jwks_uri"`
	ResponseModes                []string `json:"response_modes_supported"`
	SubjectTypes                 []string `json:"subject_types_supported"`
	IDTokenSigningAlgs           []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypes                []string `json:"response_types_supported"`
	Scopes                       []string `json:"scopes_supported"`
	Issuer                       string   `json:"issuer"`
	RequestURIParameterSupported bool     `json:"request_uri_parameter_supported"`
	AuthorizationEndpoint        string   `json:"authorization_endpoint"`
	DeviceAuthorizationEndpoint  string   `json:"device_authorization_endpoint"`
	EndSessionEndpoint           string   `json:"end_session_endpoint"`
	Claims                       []string `json:"claims_supported"`
	TenantRegionScope            *string  `json:"tenant_region_scope"`
	CloudInstanceName            string   `json:"cloud_instance_name"`
	CloudGraphHostName           string   `json:"cloud_graph_host_name"`
	MSGraphHost                  string   `json:"msgraph_host"`
	HTTPLogoutSupported          bool     `json:"http_logout_supported"`
	FrontchannelLogoutSupported  bool     `json:"frontchannel_logout_supported"`
	GrantTypesSupported          []string `json:"grant_types_supported"`
}

func (e *Emulator) serveOpenID(w http.ResponseWriter, r *http.Request) {
	if !e.tenant(w, r) {
		return
	}
	// Endpoints keep the tenant segment the client used, as Entra does; the issuer always
	// names the tenant id.
	base := "https://" + e.host + "/" + r.PathValue("tenant")
	writeJSON(w, http.StatusOK, openIDConfiguration{
		TokenEndpoint:               base + "/oauth2/v2.0/token",
		TokenEndpointAuthMethods:    []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		JWKSURI:                     base + "/discovery/v2.0/keys",
		ResponseModes:               []string{"query", "fragment", "form_post"},
		SubjectTypes:                []string{"pairwise"},
		IDTokenSigningAlgs:          []string{"RS256"},
		ResponseTypes:               []string{"code", "id_token", "code id_token", "id_token token"},
		Scopes:                      []string{"openid", "profile", "email", "offline_access"},
		Issuer:                      e.issuer(),
		AuthorizationEndpoint:       base + "/oauth2/v2.0/authorize",
		DeviceAuthorizationEndpoint: base + "/oauth2/v2.0/devicecode",
		EndSessionEndpoint:          base + "/oauth2/v2.0/logout",
		Claims:                      []string{"sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "preferred_username", "tid", "upn", "scp", "roles", "appid", "azp", "idtyp"},
		CloudInstanceName:           "microsoftonline.com",
		CloudGraphHostName:          "graph.windows.net",
		MSGraphHost:                 "graph.microsoft.com",
		HTTPLogoutSupported:         true,
		FrontchannelLogoutSupported: true,
		GrantTypesSupported:         []string{"authorization_code", "client_credentials", "password", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", "device_code"},
	})
}

func (e *Emulator) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if !e.tenant(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Keys []jwk `json:"keys"`
	}{[]jwk{e.signer.jwk(e.issuer())}})
}

// userRealm is the answer MSAL's ROPC needs before it posts the password (§5.3): all four
// fields are required, and only "Managed" leads to the password grant.
type userRealm struct {
	Ver               string `json:"ver"`
	AccountType       string `json:"account_type"`
	DomainName        string `json:"domain_name,omitempty"`
	CloudInstanceName string `json:"cloud_instance_name"`
	CloudAudienceURN  string `json:"cloud_audience_urn"`
}

func (e *Emulator) serveUserRealm(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	_, domain, _ := strings.Cut(user, "@")
	e.mu.Lock()
	managed := e.dir.managedDomain(domain)
	e.mu.Unlock()
	ur := userRealm{Ver: "1.0", AccountType: "Unknown", CloudInstanceName: "microsoftonline.com", CloudAudienceURN: "urn:federation:MicrosoftOnline"}
	if managed {
		ur.AccountType, ur.DomainName = "Managed", strings.ToLower(domain)
	}
	writeJSON(w, http.StatusOK, ur)
}

// formBody checks the tenant in the path and reads a form body, answering the error
// itself (as Entra words it) when either fails.
func (e *Emulator) formBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !e.tenant(w, r) {
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		e.writeAAD(w, r, invalidRequest(CodeMalformedRequest, "Invalid request. Request is malformed or invalid. The request body could not be read."))
		return nil, false
	}
	return body, true
}

// serveToken is the token endpoint: decode, decide under the lock, then sign and store.
func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
	body, ok := e.formBody(w, r)
	if !ok {
		return
	}
	req, aerr := decodeTokenForm(r.Header.Get("Content-Type"), body)
	if aerr != nil {
		e.writeAAD(w, r, aerr)
		return
	}
	setPrincipal(r, req.ClientID)
	now := e.clock.Now()

	e.mu.Lock()
	var is issue
	switch req.GrantType {
	case "client_credentials":
		is, aerr = decideClientCredentials(&e.dir, req)
	case "password":
		is, aerr = decidePassword(&e.dir, req)
	case "refresh_token":
		var rec *refreshRecord
		if req.RefreshToken != "" {
			rec = e.refresh[tokenHash(req.RefreshToken)]
		}
		is, aerr = decideRefresh(&e.dir, rec, req, now)
	case "device_code", "urn:ietf:params:oauth:grant-type:device_code":
		var auth *deviceAuth
		if req.DeviceCode != "" {
			auth = e.devices[tokenHash(req.DeviceCode)]
		}
		is, aerr = decideDeviceCode(&e.dir, auth, req, now)
		if aerr == nil {
			auth.Status = deviceRedeemed // one redemption per sign-in
		}
	case "authorization_code":
		is, aerr = e.redeemAuthCodeLocked(req, now)
	default:
		aerr = &aadError{Status: http.StatusBadRequest, Err: "unsupported_grant_type", Code: CodeUnsupportedGrantType,
			Description: fmt.Sprintf("The provided value for the 'grant_type' is not valid. The emulator supports authorization_code, client_credentials, password, refresh_token and device_code, not '%s'.", sanitize(req.GrantType))}
	}
	var refresh string
	if aerr == nil && is.RefreshToken {
		e.purgeRefreshLocked(now)
		refresh = randomToken(48)
		e.refresh[tokenHash(refresh)] = &refreshRecord{UserOID: is.Subject.User.ObjectID, ClientID: is.Subject.App.ClientID,
			Issued: now, Expires: now.Add(e.rtLifetime), MFA: is.MFA}
	}
	e.mu.Unlock()

	if aerr != nil {
		if u := req.Username; u != "" {
			setPrincipal(r, u)
		}
		e.writeAAD(w, r, aerr)
		return
	}
	if u := is.Subject.User; u != nil {
		setPrincipal(r, u.UPN)
	}
	is.Lifetime = e.atLifetime
	resp, err := e.sign(is, now)
	if err != nil {
		e.log.Error("entra: sign token", "err", err)
		e.writeAAD(w, r, faultError(http.StatusInternalServerError))
		return
	}
	resp.RefreshToken = refresh
	writeJSON(w, http.StatusOK, resp)
}

// purgeRefreshLocked forgets refresh tokens 30 days past their expiry, so a long-running
// local stack does not grow without bound while recently expired tokens still get
// AADSTS700082 rather than "unknown". It scans only every 256th insertion.
func (e *Emulator) purgeRefreshLocked(now time.Time) {
	if e.refreshInserts++; e.refreshInserts%256 != 0 {
		return
	}
	for h, r := range e.refresh {
		if now.After(r.Expires.Add(30 * 24 * time.Hour)) {
			delete(e.refresh, h)
		}
	}
}

// sign turns a decision into the token response.
func (e *Emulator) sign(is issue, now time.Time) (tokenResponse, error) {
	at, err := e.signer.sign(accessClaims(is, e.issuer(), now))
	if err != nil {
		return tokenResponse{}, err
	}
	secs := int64(is.Lifetime / time.Second)
	resp := tokenResponse{TokenType: "Bearer", ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: at}
	if is.EchoScope {
		resp.Scope = is.Scope.Raw
	}
	if u := is.Subject.User; u != nil {
		if is.IDToken {
			if resp.IDToken, err = e.signer.sign(idClaims(is, e.issuer(), now)); err != nil {
				return tokenResponse{}, err
			}
		}
		if is.ClientInfo {
			resp.ClientInfo = clientInfo(u.ObjectID, is.Tenant)
		}
	}
	return resp, nil
}

func serveErrorPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	code := sanitize(r.URL.Query().Get("code"))
	fmt.Fprintf(w, "Entra ID emulator: AADSTS%s. See the error_description of the response for details.\n", code)
}
