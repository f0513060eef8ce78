package entra

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// browser is the person at the browser, signing in as upn with the fixture password.
func (e *env) browser(upn string) Browser {
	return Browser{HTTP: e.http, Account: upn, Password: svcPassword}
}

// TestAcquireTokenInteractiveWorksUnchanged drives MSAL's browser flow through its
// open-URL hook: MSAL builds the authorize URL (PKCE S256, form_post, its loopback
// listener as redirect URI), the hook signs in at the emulator's page, and MSAL redeems
// the code it receives on its listener.
func TestAcquireTokenInteractiveWorksUnchanged(t *testing.T) {
	tests := map[string]string{
		"a plain account signs in":                          svcUPN,
		"an account under MFA signs in (a person is there)": mfaUPN,
	}
	for name, upn := range tests {
		t.Run(name, func(t *testing.T) {
			e := start(t)
			c := &memCache{}
			pc := e.publicClient(t, publicID, e.em.Authority(), c)
			var opened string
			open := func(u string) error { opened = u; return e.browser(upn).Open(u) }
			res, err := pc.AcquireTokenInteractive(ctx(t), []string{adoScope}, public.WithOpenURL(open), public.WithLoginHint(upn))
			must(t, err)
			p, err := e.em.Verifier().Verify(res.AccessToken)
			if err != nil || p.UPN != upn || p.Audience != adoResource || !strings.EqualFold(res.Account.PreferredUsername, upn) {
				t.Fatalf("principal %+v (%v), account %q; want %s for Azure DevOps", p, err, res.Account.PreferredUsername, upn)
			}
			q := mustParse(t, opened).Query()
			if q.Get("code_challenge_method") != "S256" || q.Get("response_mode") != "form_post" || q.Get("login_hint") != upn {
				t.Errorf("MSAL's authorize URL changed shape: %s", opened)
			}
			// The refresh token from the browser sign-in keeps working silently.
			accts, err := pc.Accounts(ctx(t))
			must(t, err)
			if _, err := pc.AcquireTokenSilent(ctx(t), []string{vaultScope}, public.WithSilentAccount(accts[0])); err != nil {
				t.Errorf("silent refresh after a browser sign-in: %v", err)
			}
		})
	}
}

func TestAcquireTokenInteractiveFailures(t *testing.T) {
	tests := map[string]struct {
		browser func(e *env) Browser
		want    string
	}{
		"a wrong password is refused on the page with AADSTS50126": {
			func(e *env) Browser { b := e.browser(svcUPN); b.Password = "wrong"; return b }, "AADSTS50126"},
		"a disabled account is refused on the page with AADSTS50057": {
			func(e *env) Browser { return e.browser(disabledUPN) }, "AADSTS50057"},
		"cancelling sends access_denied to the client": {
			func(e *env) Browser { b := e.browser(svcUPN); b.Deny = true; return b }, "AADSTS65004"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := start(t)
			pc := e.publicClient(t, publicID, e.em.Authority(), nil)
			c, cancel := context.WithTimeout(ctx(t), 5*time.Second)
			defer cancel()
			_, err := pc.AcquireTokenInteractive(c, []string{adoScope}, public.WithOpenURL(tc.browser(e).Open))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// codeCatcher is a client's loopback redirect URI in query mode: it records the code.
type codeCatcher struct {
	uri   string
	codes chan url.Values
}

func catchCodes(t *testing.T) *codeCatcher {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	c := &codeCatcher{uri: "http://localhost:" + portOf(l.Addr().String()) + "/", codes: make(chan url.Values, 4)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.codes <- r.URL.Query() }), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return c
}

func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

func pkcePair() (verifier, challenge string) {
	verifier = randomToken(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestAuthorizationCodeRedemptionOverHTTP plays a client by hand: a query-mode sign-in
// delivers the code to the client's loopback listener, and the token endpoint then holds
// the code to its verifier and to one redemption.
func TestAuthorizationCodeRedemptionOverHTTP(t *testing.T) {
	e := start(t)
	catcher := catchCodes(t)
	verifier, challenge := pkcePair()
	authorize := e.em.Authority() + "/oauth2/v2.0/authorize?" + url.Values{
		"client_id": {publicID}, "response_type": {"code"}, "redirect_uri": {catcher.uri}, "scope": {adoScope + " openid offline_access"},
		"state": {"s-1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}.Encode()
	must(t, e.browser(svcUPN).Open(authorize))
	got := <-catcher.codes
	code := got.Get("code")
	if code == "" || got.Get("state") != "s-1" {
		t.Fatalf("redirect carried %v; want a code and the state", got)
	}
	redeem := func(verifier, redirect string) (int, aadErrorBody) {
		t.Helper()
		resp, err := e.http.PostForm(e.em.Authority()+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"authorization_code"}, "client_id": {publicID}, "code": {code}, "code_verifier": {verifier},
			"redirect_uri": {redirect}, "scope": {adoScope + " openid offline_access"},
		})
		must(t, err)
		defer resp.Body.Close()
		var body aadErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	steps := []struct {
		name     string
		verifier string
		redirect string
		status   int
		code     int
	}{
		{"a wrong code_verifier is refused with AADSTS501481", "wrong-" + verifier, catcher.uri, 400, CodeCodeVerifierMismatch},
		{"another redirect URI than the authorize request's is refused", verifier, "http://localhost:1/cb", 400, CodeInvalidGrant},
		{"the right verifier and redirect URI redeem the code", verifier, catcher.uri, 200, 0},
		{"a redeemed code is refused with AADSTS54005", verifier, catcher.uri, 400, CodeAuthCodeRedeemed},
	}
	for _, s := range steps {
		status, body := redeem(s.verifier, s.redirect)
		var code int
		if len(body.ErrorCodes) > 0 {
			code = body.ErrorCodes[0]
		}
		if status != s.status || code != s.code || (s.code != 0 && body.Error != "invalid_grant") {
			t.Errorf("%s: %d %s %v, want %d AADSTS%d", s.name, status, body.Error, body.ErrorCodes, s.status, s.code)
		}
	}
}

func TestAuthorizationCodeExpiresAfterTenMinutes(t *testing.T) {
	e := start(t)
	catcher := catchCodes(t)
	verifier, challenge := pkcePair()
	must(t, e.browser(svcUPN).Open(e.em.Authority()+"/oauth2/v2.0/authorize?"+url.Values{
		"client_id": {publicID}, "response_type": {"code"}, "redirect_uri": {catcher.uri}, "scope": {adoScope},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}.Encode()))
	code := (<-catcher.codes).Get("code")
	e.clock.Advance(AuthCodeLifetime)
	resp, err := e.http.PostForm(e.em.Authority()+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {publicID}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {catcher.uri},
	})
	must(t, err)
	defer resp.Body.Close()
	var body aadErrorBody
	must(t, json.NewDecoder(resp.Body).Decode(&body))
	if resp.StatusCode != 400 || len(body.ErrorCodes) != 1 || body.ErrorCodes[0] != CodeAuthCodeExpired {
		t.Errorf("after ten minutes: %d %v, want AADSTS70008", resp.StatusCode, body.ErrorCodes)
	}
}

func TestDecideAuthorize(t *testing.T) {
	d, err := fixtureDirectory().normalize()
	must(t, err)
	_, challenge := pkcePair()
	good := authorizeRequest{ClientID: publicID, RedirectURI: "http://localhost:49152", ResponseType: "code", ResponseMode: "form_post",
		Scope: adoScope, Challenge: challenge, ChallengeMethod: "S256", Prompt: "select_account"}
	tests := map[string]struct {
		change   func(r *authorizeRequest)
		page     int // AADSTS code shown on the error page
		redirect int // AADSTS code sent to the redirect URI
	}{
		"MSAL's request shows the sign-in page":               {change: func(*authorizeRequest) {}},
		"any port on the registered http://localhost matches": {change: func(r *authorizeRequest) { r.RedirectURI = "http://localhost:1234/" }},
		"an unknown client gets the error page":               {change: func(r *authorizeRequest) { r.ClientID = "99999999-9999-4999-8999-999999999999" }, page: CodeAppNotFound},
		"a managed identity cannot sign people in":            {change: func(r *authorizeRequest) { r.ClientID = systemMIID }, page: CodeAppNotFound},
		"no redirect URI gets the error page":                 {change: func(r *authorizeRequest) { r.RedirectURI = "" }, page: CodeNoReplyAddress},
		"an unregistered redirect URI gets AADSTS50011":       {change: func(r *authorizeRequest) { r.RedirectURI = "https://evil.example/cb" }, page: CodeInvalidReplyTo},
		"127.0.0.1 is not the registered localhost":           {change: func(r *authorizeRequest) { r.RedirectURI = "http://127.0.0.1:1234" }, page: CodeInvalidReplyTo},
		"another path on localhost is another redirect URI":   {change: func(r *authorizeRequest) { r.RedirectURI = "http://localhost:1234/other" }, page: CodeInvalidReplyTo},
		"a public client without PKCE is refused":             {change: func(r *authorizeRequest) { r.Challenge, r.ChallengeMethod = "", "" }, redirect: CodeMissingCodeChallenge},
		"the plain PKCE method is refused":                    {change: func(r *authorizeRequest) { r.ChallengeMethod = "plain" }, redirect: CodeInvalidCodeChallenge},
		"a challenge that is not a SHA-256 is refused":        {change: func(r *authorizeRequest) { r.Challenge = "short" }, redirect: CodeInvalidCodeChallenge},
		"response_type token is not supported":                {change: func(r *authorizeRequest) { r.ResponseType = "token" }, redirect: CodeUnsupportedResponseType},
		"prompt=none has no session to use":                   {change: func(r *authorizeRequest) { r.Prompt = "none" }, redirect: CodeLoginRequired},
		"a missing scope is AADSTS900144":                     {change: func(r *authorizeRequest) { r.Scope = "" }, redirect: CodeMissingParameter},
		"an unknown response_mode is refused":                 {change: func(r *authorizeRequest) { r.ResponseMode = "web_message" }, redirect: CodeUnsupportedResponseMode},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := good
			tc.change(&req)
			out := decideAuthorize(&d, req)
			if got := codeOf(out.PageError); got != tc.page {
				t.Errorf("page error AADSTS%d, want %d", got, tc.page)
			}
			if got := codeOf(out.RedirectError); got != tc.redirect {
				t.Errorf("redirect error AADSTS%d, want %d", got, tc.redirect)
			}
		})
	}
}

func codeOf(e *aadError) int {
	if e == nil {
		return 0
	}
	return e.Code
}

func TestDecideAuthCode(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	d, err := fixtureDirectory().normalize()
	must(t, err)
	verifier, challenge := pkcePair()
	const redirect = "http://localhost:49152"
	fresh := authCode{ClientID: publicID, RedirectURI: redirect, Challenge: challenge, Scope: adoScope, UserOID: d.user(svcUPN).ObjectID, Expires: now.Add(AuthCodeLifetime)}
	req := tokenRequest{GrantType: "authorization_code", ClientID: publicID, Code: "opaque", CodeVerifier: verifier, RedirectURI: redirect, Scope: adoScope}
	tests := map[string]struct {
		rec  func(c *authCode) *authCode
		req  func(r *tokenRequest)
		code int
	}{
		"the right verifier redeems a fresh code":       {},
		"an unknown code is not valid":                  {rec: func(*authCode) *authCode { return nil }, code: CodeInvalidGrant},
		"a code issued to another client is not valid":  {rec: func(c *authCode) *authCode { c.ClientID = confidentialID; return c }, code: CodeInvalidGrant},
		"a redeemed code is AADSTS54005":                {rec: func(c *authCode) *authCode { c.Redeemed = true; return c }, code: CodeAuthCodeRedeemed},
		"an expired code is AADSTS70008":                {rec: func(c *authCode) *authCode { c.Expires = now; return c }, code: CodeAuthCodeExpired},
		"another redirect URI is refused":               {req: func(r *tokenRequest) { r.RedirectURI = "http://localhost:1" }, code: CodeInvalidGrant},
		"a wrong verifier is AADSTS501481":              {req: func(r *tokenRequest) { r.CodeVerifier = "x" + verifier }, code: CodeCodeVerifierMismatch},
		"a missing verifier is a missing parameter":     {req: func(r *tokenRequest) { r.CodeVerifier = "" }, code: CodeMissingParameter},
		"a missing redirect URI is a missing parameter": {req: func(r *tokenRequest) { r.RedirectURI = "" }, code: CodeMissingParameter},
		"a user disabled since signing in is refused": {rec: func(c *authCode) *authCode {
			c.UserOID = d.user(disabledUPN).ObjectID
			return c
		}, code: CodeUserDisabled},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec, r := fresh, req
			recp := &rec
			if tc.rec != nil {
				recp = tc.rec(recp)
			}
			if tc.req != nil {
				tc.req(&r)
			}
			is, aerr := decideAuthCode(&d, recp, r, now)
			if got := codeOf(aerr); got != tc.code {
				t.Fatalf("AADSTS%d (%v), want %d", got, aerr, tc.code)
			}
			if tc.code == 0 && (is.Subject.User == nil || is.Subject.User.UPN != svcUPN || !is.MFA) {
				t.Errorf("issue %+v; want svc with MFA done", is)
			}
		})
	}
}

func TestSignInPageServesBothFlows(t *testing.T) {
	e := start(t)
	_, challenge := pkcePair()
	authorize := e.em.Authority() + "/oauth2/v2.0/authorize?" + url.Values{
		"client_id": {publicID}, "response_type": {"code"}, "redirect_uri": {"http://localhost:1/"}, "scope": {adoScope},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "login_hint": {svcUPN}, "response_mode": {"form_post"},
	}.Encode()
	resp, err := e.http.Get(authorize)
	must(t, err)
	page := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/devicelogin" || !strings.Contains(page, `value="`+svcUPN+`"`) ||
		!strings.Contains(page, "sign in to patrol") || strings.Contains(page, `name="user_code"`) {
		t.Errorf("authorize led to %d %s; want the shared sign-in page for the app, the login hint filled in, no code field:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	resp, err = e.http.Get(e.em.VerificationURI())
	must(t, err)
	page = readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(page, `name="user_code"`) {
		t.Errorf("the device-code page lost its code field: %d", resp.StatusCode)
	}
	resp, err = e.http.Get(e.em.VerificationURI() + "?ctx=unknown")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("an unknown sign-in page: %d, want 400", resp.StatusCode)
	}
}

func TestAuthorizeErrorPageDoesNotRedirect(t *testing.T) {
	e := start(t)
	err := e.browser(svcUPN).Open(e.em.Authority() + "/oauth2/v2.0/authorize?" + url.Values{
		"client_id": {publicID}, "response_type": {"code"}, "redirect_uri": {"https://evil.example/cb"}, "scope": {adoScope},
	}.Encode())
	if !errors.Is(err, ErrSignInRefused) || !strings.Contains(err.Error(), "AADSTS50011") {
		t.Errorf("error %v, want the page's AADSTS50011", err)
	}
	if hosts := e.guard.blockedHosts(); len(hosts) != 0 {
		t.Errorf("the browser was sent to %v", hosts)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	must(t, err)
	return u
}

func TestRedirectURIsAreValidatedWhenRegistered(t *testing.T) {
	tests := map[string]struct {
		uri string
		ok  bool
	}{
		"http on localhost is allowed":             {"http://localhost", true},
		"http on 127.0.0.1 with a path is allowed": {"http://127.0.0.1/cb", true},
		"https anywhere is allowed":                {"https://patrol.example/cb", true},
		"http elsewhere is refused":                {"http://patrol.example/cb", false},
		"a relative URI is refused":                {"/cb", false},
		"a fragment is refused":                    {"https://patrol.example/cb#x", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := AppRegistration{ClientID: publicID, PublicClient: true, RedirectURIs: []string{tc.uri}}.normalize()
			if (err == nil) != tc.ok {
				t.Errorf("normalize: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
