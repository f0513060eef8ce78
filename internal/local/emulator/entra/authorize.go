package entra

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The authorization-code flow with PKCE, as MSAL's AcquireTokenInteractive drives it:
//
//	GET  /{tenant}/oauth2/v2.0/authorize   op "authorize": checks the client and its
//	     redirect URI, keeps the request, and sends the browser to the sign-in page
//	GET  /devicelogin?ctx=…                the sign-in page both flows share
//	POST /devicelogin?ctx=…                a person signs in (or cancels); the answer goes
//	     to the redirect URI: an auto-submitting form for response_mode=form_post (what
//	     MSAL asks for), else a redirect with the code in the query or fragment
//	POST /{tenant}/oauth2/v2.0/token       grant_type=authorization_code redeems the code
//	     once, within AuthCodeLifetime, with the code_verifier and the same redirect URI
//
// Codes are opaque random values stored only as hashes, like refresh tokens.

// AADSTS codes of the authorization-code flow (reference-error-codes; see
// docs/emulator-fidelity.md 2.3 for what is documented and what is a 3P capture).
const (
	CodeInvalidReplyTo          = 50011  // redirect_uri not registered (shown on the error page)
	CodeNoReplyAddress          = 900971 // redirect_uri missing (shown on the error page)
	CodeMissingCodeChallenge    = 50147  // a public client sent no code_challenge
	CodeInvalidCodeChallenge    = 501491 // code_challenge of the wrong size, or a method other than S256
	CodeCodeVerifierMismatch    = 501481 // invalid_grant: code_verifier does not hash to the challenge
	CodeAuthCodeRedeemed        = 54005  // invalid_grant: the code was already redeemed
	CodeAuthCodeExpired         = 70008  // invalid_grant: the code expired
	CodeUnsupportedResponseType = 70005  // unsupported_response_type
	CodeUnsupportedResponseMode = 70007  // invalid_request
	CodeLoginRequired           = 50058  // prompt=none without a session
	CodeUserDeclined            = 65004  // access_denied: the person cancelled
)

// AuthCodeLifetime is how long an authorization code can be redeemed: "Authorization codes
// are short lived. Typically, they expire after about 10 minutes" (v2-oauth2-auth-code-flow).
const AuthCodeLifetime = 10 * time.Minute

// signInPageLifetime bounds how long a sign-in page left open can still complete.
const signInPageLifetime = 15 * time.Minute

// authorizeRequest is a decoded GET /authorize.
type authorizeRequest struct {
	ClientID, RedirectURI, ResponseType, ResponseMode string
	Scope, State, Challenge, ChallengeMethod          string
	LoginHint, Prompt, Claims                         string
}

// pendingAuthorization is an authorize request waiting for a person at the sign-in page.
type pendingAuthorization struct {
	Request authorizeRequest
	App     string // display name, for the page
	Expires time.Time
}

// authCode is the server-side state of one authorization code (stored under its hash).
type authCode struct {
	ClientID    string
	RedirectURI string
	Challenge   string
	Scope       string
	UserOID     string
	Expires     time.Time
	Redeemed    bool
}

// authorizations holds the flow's state; it is guarded by Emulator.mu.
type authorizations struct {
	pending map[string]*pendingAuthorization // by the sign-in page's ctx value
	codes   map[[32]byte]*authCode
}

func (a *authorizations) init() {
	if a.pending == nil {
		a.pending, a.codes = map[string]*pendingAuthorization{}, map[[32]byte]*authCode{}
	}
}

// purgeLocked forgets pages and codes an hour past expiry, so a long-running local stack
// does not grow without bound while a late redemption still gets AADSTS70008.
func (a *authorizations) purgeLocked(now time.Time) {
	for k, p := range a.pending {
		if now.After(p.Expires.Add(time.Hour)) {
			delete(a.pending, k)
		}
	}
	for k, c := range a.codes {
		if now.After(c.Expires.Add(time.Hour)) {
			delete(a.codes, k)
		}
	}
}

func decodeAuthorizeQuery(q url.Values) authorizeRequest {
	return authorizeRequest{
		ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		ResponseType: q.Get("response_type"), ResponseMode: q.Get("response_mode"),
		Scope: q.Get("scope"), State: q.Get("state"),
		Challenge: q.Get("code_challenge"), ChallengeMethod: q.Get("code_challenge_method"),
		LoginHint: q.Get("login_hint"), Prompt: q.Get("prompt"), Claims: q.Get("claims"),
	}
}

// authorizeOutcome is what decideAuthorize settled: a page error (the redirect URI cannot
// be trusted, so Entra shows the error instead of redirecting), an error for the redirect
// URI, or nothing (show the sign-in page).
type authorizeOutcome struct {
	PageError     *aadError
	RedirectError *aadError
	App           *AppRegistration
}

// decideAuthorize checks an authorize request against the directory. Client and redirect
// URI come first: until both are known good, nothing may be sent to the redirect URI.
func decideAuthorize(d *Directory, req authorizeRequest) authorizeOutcome {
	if req.ClientID == "" {
		return authorizeOutcome{PageError: missingParameter("client_id")}
	}
	app := d.app(req.ClientID)
	if app == nil || app.ManagedIdentity {
		return authorizeOutcome{PageError: appNotFound(sanitize(req.ClientID), d.TenantID)}
	}
	if req.RedirectURI == "" {
		return authorizeOutcome{PageError: invalidRequest(CodeNoReplyAddress, "No reply address provided.")}
	}
	if !app.redirectAllowed(req.RedirectURI) {
		return authorizeOutcome{PageError: invalidRequest(CodeInvalidReplyTo, "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.", sanitize(req.RedirectURI), app.ClientID)}
	}
	out := authorizeOutcome{App: app}
	switch {
	case req.ResponseType != "code":
		out.RedirectError = &aadError{Status: http.StatusBadRequest, Err: "unsupported_response_type", Code: CodeUnsupportedResponseType,
			Description: "The emulator supports response_type=code only."}
	case req.ResponseMode != "" && req.ResponseMode != "query" && req.ResponseMode != "fragment" && req.ResponseMode != "form_post":
		out.RedirectError = invalidRequest(CodeUnsupportedResponseMode, "The response_mode '%s' is not supported.", sanitize(req.ResponseMode))
	case strings.TrimSpace(req.Scope) == "":
		out.RedirectError = missingParameter("scope")
	case app.PublicClient && req.Challenge == "":
		out.RedirectError = invalidRequest(CodeMissingCodeChallenge, "Proof Key for Code Exchange is required: send code_challenge and code_challenge_method=S256.")
	case req.Challenge != "" && (req.ChallengeMethod != "S256" || !validS256Challenge(req.Challenge)):
		out.RedirectError = invalidRequest(CodeInvalidCodeChallenge, "Invalid code_challenge: the emulator requires code_challenge_method=S256 and a 43-character base64url SHA-256 challenge.")
	case req.Prompt == "none":
		// The emulator keeps no browser session, so there is never one to use silently.
		out.RedirectError = &aadError{Status: http.StatusBadRequest, Err: "login_required", Code: CodeLoginRequired,
			Description: "User session information isn't sufficient for single-sign-on. The user is not signed in."}
	case req.Claims != "":
		if aerr := checkClaims(req.Claims); aerr != nil {
			out.RedirectError = aerr
		}
	}
	return out
}

// validS256Challenge: base64url without padding of a 32-byte SHA-256 is 43 characters.
func validS256Challenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

// redirectAllowed matches a requested redirect URI against the registration. Entra's
// localhost exception: for http(s)://localhost and http(s)://127.0.0.1 "the port
// component … is ignored for the purposes of matching a redirect URI" (reply-url).
// http is allowed only for those loopback hosts.
func (a *AppRegistration) redirectAllowed(requested string) bool {
	ru, err := url.Parse(requested)
	if err != nil || ru.Fragment != "" || ru.User != nil {
		return false
	}
	for _, reg := range a.RedirectURIs {
		gu, err := url.Parse(reg)
		if err != nil {
			continue
		}
		if requested == reg {
			return ru.Scheme == "https" || loopbackHost(ru.Hostname())
		}
		if loopbackHost(ru.Hostname()) && strings.EqualFold(ru.Scheme, gu.Scheme) && strings.EqualFold(ru.Hostname(), gu.Hostname()) &&
			trimSlash(ru.Path) == trimSlash(gu.Path) && ru.RawQuery == gu.RawQuery && (ru.Scheme == "http" || ru.Scheme == "https") {
			return true
		}
	}
	return false
}

// validRedirectURI is what an app registration accepts: an absolute https URI, or http
// on a loopback host (reply-url "Supported schemes"), without a fragment.
func validRedirectURI(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" {
		return false
	}
	return u.Scheme == "https" || (u.Scheme == "http" && loopbackHost(u.Hostname()))
}

func loopbackHost(h string) bool { return strings.EqualFold(h, "localhost") || h == "127.0.0.1" }

func trimSlash(p string) string { return strings.TrimSuffix(p, "/") }

// verifyPKCE checks an S256 challenge: BASE64URL(SHA256(ASCII(code_verifier))) (RFC 7636 §4.6).
func verifyPKCE(challenge, verifier string) bool {
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// decideAuthCode answers grant_type=authorization_code. rec is nil when the code is unknown.
func decideAuthCode(d *Directory, rec *authCode, req tokenRequest, now time.Time) (issue, *aadError) {
	app, aerr := authenticateClient(d, req)
	if aerr != nil {
		return issue{}, aerr
	}
	switch {
	case req.Code == "":
		return issue{}, missingParameter("code")
	case req.RedirectURI == "":
		return issue{}, missingParameter("redirect_uri")
	}
	if rec == nil || rec.ClientID != app.ClientID {
		return issue{}, invalidGrant(CodeInvalidGrant, "The provided value for the 'code' parameter is not valid.")
	}
	if rec.Redeemed {
		return issue{}, invalidGrant(CodeAuthCodeRedeemed, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
	}
	if !now.Before(rec.Expires) {
		return issue{}, invalidGrant(CodeAuthCodeExpired, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
	}
	if req.RedirectURI != rec.RedirectURI {
		return issue{}, invalidGrant(CodeInvalidGrant, "The provided value for the 'redirect_uri' is not valid. The value must exactly match the redirect URI used to obtain the authorization code.")
	}
	if rec.Challenge != "" {
		if req.CodeVerifier == "" {
			return issue{}, missingParameter("code_verifier")
		}
		if !verifyPKCE(rec.Challenge, req.CodeVerifier) {
			return issue{}, invalidGrant(CodeCodeVerifierMismatch, "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.")
		}
	}
	return browserSignIn(d, app, req, rec.UserOID, rec.Scope)
}

// redeemAuthCodeLocked is the token endpoint's authorization_code case: gather the
// code's record, decide, and spend the code on success.
func (e *Emulator) redeemAuthCodeLocked(req tokenRequest, now time.Time) (issue, *aadError) {
	e.authz.init()
	var rec *authCode
	if req.Code != "" {
		rec = e.authz.codes[tokenHash(req.Code)]
	}
	is, aerr := decideAuthCode(&e.dir, rec, req, now)
	if aerr == nil {
		rec.Redeemed = true // one redemption per code
	}
	return is, aerr
}

// serveAuthorize is GET /{tenant}/oauth2/v2.0/authorize.
func (e *Emulator) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if !e.tenantKnown(r.PathValue("tenant")) {
		e.writeErrorPage(w, r, tenantNotFound(sanitize(r.PathValue("tenant"))))
		return
	}
	req := decodeAuthorizeQuery(r.URL.Query())
	setPrincipal(r, req.ClientID)
	now := e.clock.Now()
	ctxID := randomToken(24)

	e.mu.Lock()
	out := decideAuthorize(&e.dir, req)
	if out.PageError == nil && out.RedirectError == nil {
		e.authz.init()
		e.authz.purgeLocked(now)
		e.authz.pending[ctxID] = &pendingAuthorization{Request: req, App: out.App.DisplayName, Expires: now.Add(signInPageLifetime)}
	}
	e.mu.Unlock()

	switch {
	case out.PageError != nil:
		e.writeErrorPage(w, r, out.PageError)
	case out.RedirectError != nil:
		e.deliver(w, r, req, e.redirectErrorParams(r, out.RedirectError))
	default:
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/devicelogin?ctx="+url.QueryEscape(ctxID), http.StatusFound)
	}
}

func (e *Emulator) tenantKnown(t string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dir.knowsTenant(t)
}

// writeErrorPage is Entra's "Sorry, but we're having trouble signing you in" page: the
// error stays in the browser because the redirect URI is not trusted.
func (e *Emulator) writeErrorPage(w http.ResponseWriter, r *http.Request, aerr *aadError) {
	body := aerr.render(e.clock.Now(), r.Header.Get("client-request-id"), "https://"+e.host+"/error")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusBadRequest)
	_ = errorPage.Execute(w, struct{ Code, Error, Description string }{fmt.Sprintf("AADSTS%d", aerr.Code), body.Error, aerr.Error()})
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account (Entra ID emulator)</title></head>
<body><h1>Sorry, but we're having trouble signing you in.</h1>
<p class="err" id="error" data-code="{{.Code}}" data-error="{{.Error}}">{{.Description}}</p>
</body></html>
`))

func (e *Emulator) redirectErrorParams(r *http.Request, aerr *aadError) url.Values {
	body := aerr.render(e.clock.Now(), r.Header.Get("client-request-id"), "https://"+e.host+"/error")
	return url.Values{"error": {body.Error}, "error_description": {body.ErrorDescription}, "error_uri": {body.ErrorURI}}
}

// deliver sends the answer to the client's redirect URI by the response mode it asked
// for, adding its state. form_post is a page that posts itself, as Entra's is.
func (e *Emulator) deliver(w http.ResponseWriter, r *http.Request, req authorizeRequest, params url.Values) {
	if req.State != "" {
		params.Set("state", req.State)
	}
	w.Header().Set("Cache-Control", "no-store")
	switch req.ResponseMode {
	case "form_post":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		fields := make([]formField, 0, len(params))
		for _, k := range []string{"code", "state", "error", "error_description", "error_uri"} {
			if v := params.Get(k); v != "" {
				fields = append(fields, formField{k, v})
			}
		}
		_ = formPostPage.Execute(w, struct {
			Action template.URL
			Fields []formField
		}{template.URL(req.RedirectURI), fields}) // the redirect URI was checked against the registration
	case "fragment":
		http.Redirect(w, r, withoutFragment(req.RedirectURI)+"#"+params.Encode(), http.StatusFound)
	default:
		u, _ := url.Parse(req.RedirectURI) // parsed in decideAuthorize already
		q := u.Query()
		for k, vs := range params {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
}

func withoutFragment(u string) string { s, _, _ := strings.Cut(u, "#"); return s }

type formField struct{ Name, Value string }

var formPostPage = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Working...</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{{.Action}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<noscript><button>Continue</button></noscript>
</form></body></html>
`))

// signInFor renders the shared sign-in page (devicecode.go) for a pending authorization.
func (e *Emulator) signInFor(ctxID string, data *pageData) bool {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.authz.init()
	p, ok := e.authz.pending[ctxID]
	if !ok || !now.Before(p.Expires) {
		return false
	}
	data.Ctx, data.App, data.Scope = ctxID, p.App, p.Request.Scope
	if data.User == "" {
		data.User = p.Request.LoginHint
	}
	return true
}

// serveBrowserSignIn handles the sign-in page's form for an authorization request: a
// person's account and password, or Cancel. Success sends a code to the redirect URI.
func (e *Emulator) serveBrowserSignIn(w http.ResponseWriter, r *http.Request, ctxID string) {
	data := pageData{}
	status := http.StatusBadRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	var f approvalForm
	if err == nil {
		f, err = decodeSignInForm(r.Header.Get("Content-Type"), body)
	}
	if err != nil {
		data.Error = "Check the form: " + err.Error() + "."
		e.renderSignIn(w, ctxID, &data, status)
		return
	}
	data.User = f.Username
	now := e.clock.Now()
	code := randomToken(48)

	e.mu.Lock()
	e.authz.init()
	p, ok := e.authz.pending[ctxID]
	var req authorizeRequest
	var params url.Values
	switch {
	case !ok || !now.Before(p.Expires):
		data.Error = "This sign-in page has expired. Go back to the application and sign in again."
	case f.Deny:
		req = p.Request
		delete(e.authz.pending, ctxID)
		params = e.redirectErrorParams(r, &aadError{Err: "access_denied", Code: CodeUserDeclined, Description: "The user has cancelled the sign-in."})
	default:
		u, msg := decideApproval(&e.dir, f)
		if u == nil {
			data.Error = msg
			break
		}
		setPrincipal(r, u.UPN)
		req = p.Request
		delete(e.authz.pending, ctxID)
		e.authz.codes[tokenHash(code)] = &authCode{ClientID: strings.ToLower(req.ClientID), RedirectURI: req.RedirectURI,
			Challenge: req.Challenge, Scope: req.Scope, UserOID: u.ObjectID, Expires: now.Add(AuthCodeLifetime)}
		params = url.Values{"code": {code}}
	}
	e.mu.Unlock()

	if params == nil {
		e.renderSignIn(w, ctxID, &data, status)
		return
	}
	e.deliver(w, r, req, params)
}

// renderSignIn shows the sign-in page for ctxID again, with data's message.
func (e *Emulator) renderSignIn(w http.ResponseWriter, ctxID string, data *pageData, status int) {
	if !e.signInFor(ctxID, data) {
		data.Ctx = ""
	}
	e.writeSignInPage(w, data, status)
}

// decodeSignInForm decodes the sign-in page's form for an authorization request.
func decodeSignInForm(contentType string, body []byte) (approvalForm, error) {
	v, aerr := parseForm(contentType, body)
	if aerr != nil {
		return approvalForm{}, fmt.Errorf("the form could not be read: %s", aerr.Description)
	}
	f := approvalForm{Username: strings.TrimSpace(v.Get("username")), Password: v.Get("password"), Deny: v.Get("action") == "deny"}
	if !f.Deny && f.Username == "" {
		return approvalForm{}, fmt.Errorf("enter the account to sign in with")
	}
	return f, nil
}
