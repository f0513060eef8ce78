package entra

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestClientSecretCredentialGetsAppTokensForTheRequestedResource(t *testing.T) {
	e := start(t)
	cred := e.secretCredential(t, tenantID, confidentialID, confSecret)
	tests := map[string]struct {
		scope    string
		audience string
	}{
		"a vault resource with a port becomes the audience with its port": {vaultScope, "https://vault.localhost:8443"},
		"the Azure DevOps GUID resource becomes the audience as a GUID":   {adoScope, adoResource},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tok, err := cred.GetToken(ctx(t), policy.TokenRequestOptions{Scopes: []string{tc.scope}, EnableCAE: true})
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.em.Verifier().Verify(tok.Token)
			if err != nil {
				t.Fatal(err)
			}
			want := authn.Principal{TenantID: tenantID, AppID: confidentialID, Audience: tc.audience, ObjectID: p.ObjectID}
			if p.IsUser || p.UPN != "" || p.ObjectID == "" || p.TenantID != want.TenantID || p.AppID != want.AppID || p.Audience != want.Audience {
				t.Errorf("principal = %+v, want an app-only principal like %+v", p, want)
			}
			if !tok.ExpiresOn.After(time.Now().Add(50 * time.Minute)) {
				t.Errorf("token expires %v, want about an hour from now", tok.ExpiresOn)
			}
		})
	}
}

func TestClientSecretCredentialErrorsCarryEntrasCodes(t *testing.T) {
	e := start(t)
	tests := map[string]struct {
		tenant, client, secret string
		status, code           int
		oauthError             string
	}{
		"a wrong secret is AADSTS7000215 with 401":    {tenantID, confidentialID, "nope", 401, CodeInvalidClientSecret, "invalid_client"},
		"an unknown client is AADSTS700016":           {tenantID, "99999999-9999-4999-8999-999999999999", "x", 400, CodeAppNotFound, "unauthorized_client"},
		"an unknown tenant is AADSTS90002":            {"00000000-0000-4000-8000-000000000001", confidentialID, confSecret, 400, CodeTenantNotFound, "invalid_tenant"},
		"a public client cannot use client secrets":   {tenantID, publicID, "x", 401, CodePublicClientSecret, "invalid_client"},
		"a managed identity has no secret to present": {tenantID, systemMIID, "x", 401, CodeInvalidClientSecret, "invalid_client"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.secretCredential(t, tc.tenant, tc.client, tc.secret).GetToken(ctx(t), policy.TokenRequestOptions{Scopes: []string{vaultScope}})
			w := aadFrom(t, err)
			if got := w.code(t); got != tc.code || w.Status != tc.status || w.Body.Error != tc.oauthError {
				t.Errorf("got %d %s AADSTS%d, want %d %s AADSTS%d", w.Status, w.Body.Error, got, tc.status, tc.oauthError, tc.code)
			}
			if w.Body.TraceID == "" || w.Body.CorrelationID == "" || w.Body.Timestamp == "" || !strings.Contains(w.Body.ErrorURI, "?code=") {
				t.Errorf("error body misses Entra's fields: %+v", w.Body)
			}
		})
	}
}

func TestManagedIdentityCredentialWorksUnchanged(t *testing.T) {
	e := start(t)
	msi, err := e.em.StartManagedIdentity("", "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range msi.Env() {
		t.Setenv(k, v)
	}
	// MSAL caches managed-identity tokens process-wide by resource, so every case asks
	// for a resource no other emulator instance (or -count run) has asked for.
	_, port, _ := strings.Cut(e.em.Host(), ":")
	tests := map[string]struct {
		id       azidentity.ManagedIDKind
		resource string
		appID    string
	}{
		"no identity named gets the system-assigned identity": {nil, "https://system.vault.localhost:" + port, systemMIID},
		"a client id selects that user-assigned identity":     {azidentity.ClientID(userMIID), "https://byclient.vault.localhost:" + port, userMIID},
		"a resource id selects that user-assigned identity":   {azidentity.ResourceID(userMIResource), "https://byresource.vault.localhost:" + port, userMIID},
		"a GUID resource (like Azure DevOps's) works":         {nil, uuid.NewString(), systemMIID},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: e.clientOptions(), ID: tc.id})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := cred.GetToken(ctx(t), policy.TokenRequestOptions{Scopes: []string{tc.resource + "/.default"}})
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.em.Verifier().Verify(tok.Token)
			if err != nil {
				t.Fatal(err)
			}
			if p.IsUser || p.AppID != tc.appID || p.Audience != tc.resource || p.TenantID != tenantID {
				t.Errorf("principal = %+v, want app %s for %s", p, tc.appID, tc.resource)
			}
		})
	}
	t.Run("an unknown user-assigned identity is refused", func(t *testing.T) {
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: e.clientOptions(),
			ID: azidentity.ClientID("99999999-9999-4999-8999-999999999999")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cred.GetToken(ctx(t), policy.TokenRequestOptions{Scopes: []string{"https://unknown.vault.localhost:8443/.default"}}); err == nil {
			t.Fatal("want an error for an identity that does not exist")
		}
	})
	if n := e.em.Journal().Count("msi"); n < len(tests)+1 {
		t.Errorf("journal saw %d msi requests, want at least %d", n, len(tests)+1)
	}
}

func TestROPCSignsInAndCachesTheAccount(t *testing.T) {
	e := start(t)
	c := &memCache{}
	pc := e.publicClient(t, publicID, e.em.Authority(), c)
	ar, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, svcUPN, svcPassword)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.em.Verifier().Verify(ar.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsUser || p.UPN != svcUPN || p.Audience != adoResource || p.AppID != publicID || !slices.Equal(p.Scopes, []string{"user_impersonation"}) {
		t.Errorf("principal = %+v, want svc's delegated ADO token", p)
	}
	accts, err := pc.Accounts(ctx(t))
	if err != nil || len(accts) != 1 || accts[0].PreferredUsername != svcUPN {
		t.Fatalf("accounts = %+v, %v; want one for %s", accts, err, svcUPN)
	}
	if want := accts[0].HomeAccountID; want != p.ObjectID+"."+tenantID {
		t.Errorf("home account id %q, want oid.tid", want)
	}
	silent, err := pc.AcquireTokenSilent(ctx(t), []string{adoScope}, public.WithSilentAccount(accts[0]))
	if err != nil {
		t.Fatal(err)
	}
	if silent.Metadata.TokenSource != public.TokenSourceCache {
		t.Errorf("silent token came from %v, want the cache", silent.Metadata.TokenSource)
	}
	if e.em.RefreshTokenCount(svcUPN) != 1 {
		t.Errorf("refresh tokens held = %d, want 1", e.em.RefreshTokenCount(svcUPN))
	}
}

func TestROPCErrorsCarryEntrasCodes(t *testing.T) {
	e := start(t)
	tests := map[string]struct {
		authority, client, user, password string
		code                              int
		oauthError, suberror              string
	}{
		"a wrong password is AADSTS50126":               {"", publicID, svcUPN, "wrong", CodeInvalidPassword, "invalid_grant", ""},
		"a disabled account is AADSTS50057":             {"", publicID, disabledUPN, svcPassword, CodeUserDisabled, "invalid_grant", ""},
		"an account needing MFA is AADSTS50076":         {"", publicID, mfaUPN, svcPassword, CodeMFARequired, "invalid_grant", "basic_action"},
		"an unknown account is AADSTS50034":             {"", publicID, "ghost@contoso.localhost", svcPassword, CodeUserNotFound, "invalid_grant", ""},
		"an unknown client is AADSTS700016":             {"", "99999999-9999-4999-8999-999999999999", svcUPN, svcPassword, CodeAppNotFound, "unauthorized_client", ""},
		"a confidential app without secret is 7000218":  {"", confidentialID, svcUPN, svcPassword, CodeClientAuthMissing, "invalid_client", ""},
		"an unknown tenant is AADSTS90002 at discovery": {"/00000000-0000-4000-8000-000000000001", publicID, svcUPN, svcPassword, CodeTenantNotFound, "invalid_tenant", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			authority := e.em.Authority()
			if tc.authority != "" {
				authority = "https://" + e.em.Host() + tc.authority
			}
			pc := e.publicClient(t, tc.client, authority, nil)
			_, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, tc.user, tc.password)
			w := aadFrom(t, err)
			if got := w.code(t); got != tc.code || w.Body.Error != tc.oauthError || w.Body.Suberror != tc.suberror {
				t.Errorf("got %s/%s AADSTS%d, want %s/%s AADSTS%d", w.Body.Error, w.Body.Suberror, got, tc.oauthError, tc.suberror, tc.code)
			}
		})
	}
}

// signInWithCache signs svc in by ROPC and returns the exported cache blob.
func signInWithCache(t *testing.T, e *env, upn string) []byte {
	t.Helper()
	c := &memCache{}
	pc := e.publicClient(t, publicID, e.em.Authority(), c)
	if _, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, upn, svcPassword); err != nil {
		t.Fatal(err)
	}
	return c.snapshot()
}

// silentFromBlob loads blob into a NEW client instance and asks silently for a scope
// the cache has no access token for, so MSAL must redeem the refresh token.
func silentFromBlob(t *testing.T, e *env, blob []byte) (public.AuthResult, error) {
	t.Helper()
	pc := e.publicClient(t, publicID, e.em.Authority(), &memCache{blob: blob})
	accts, err := pc.Accounts(ctx(t))
	if err != nil || len(accts) != 1 {
		t.Fatalf("accounts from the exported cache = %+v, %v; want one", accts, err)
	}
	return pc.AcquireTokenSilent(ctx(t), []string{vaultScope}, public.WithSilentAccount(accts[0]))
}

func TestSilentRefreshFromAnExportedCache(t *testing.T) {
	e := start(t)
	blob := signInWithCache(t, e, svcUPN)
	before := e.em.Journal().Count("token")
	ar, err := silentFromBlob(t, e, blob)
	if err != nil {
		t.Fatal(err)
	}
	if ar.Metadata.TokenSource != public.TokenSourceIdentityProvider || e.em.Journal().Count("token") != before+1 {
		t.Errorf("silent call did not redeem the refresh token (source %v)", ar.Metadata.TokenSource)
	}
	p, err := e.em.Verifier().Verify(ar.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if p.UPN != svcUPN || p.Audience != "https://vault.localhost:8443" {
		t.Errorf("refreshed principal = %+v, want svc for the vault", p)
	}
}

func TestRefreshFailsWithEntrasCodesWhenTheAccountChanges(t *testing.T) {
	tests := map[string]struct {
		upn    string
		change func(t *testing.T, e *env)
		code   int
	}{
		"disabling the user makes refresh fail with AADSTS50057": {svcUPN, func(t *testing.T, e *env) {
			must(t, e.em.DisableUser(svcUPN))
		}, CodeUserDisabled},
		"expiring the user's refresh tokens gives AADSTS700082": {svcUPN, func(t *testing.T, e *env) {
			must(t, e.em.ExpireRefreshTokens(svcUPN))
		}, CodeRefreshTokenExpired},
		"90 idle days on the clock expire the refresh token with AADSTS700082": {svcUPN, func(t *testing.T, e *env) {
			e.clock.Advance(91 * 24 * time.Hour)
		}, CodeRefreshTokenExpired},
		"revoking sessions gives AADSTS50173": {svcUPN, func(t *testing.T, e *env) {
			must(t, e.em.RevokeRefreshTokens(svcUPN))
		}, CodeRefreshTokenRevoked},
		"a password reset revokes refresh tokens with AADSTS50173": {svcUPN, func(t *testing.T, e *env) {
			must(t, e.em.SetPassword(svcUPN, "new password"))
		}, CodeRefreshTokenRevoked},
		"requiring MFA after a password sign-in gives AADSTS50076": {svcUPN, func(t *testing.T, e *env) {
			must(t, e.em.RequireMFA(svcUPN, true))
		}, CodeMFARequired},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := start(t)
			blob := signInWithCache(t, e, tc.upn)
			tc.change(t, e)
			_, err := silentFromBlob(t, e, blob)
			if got := aadFrom(t, err).code(t); got != tc.code {
				t.Errorf("AADSTS%d, want AADSTS%d", got, tc.code)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitPending waits until the client has polled at least once and been told to wait.
func waitPending(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, en := range e.em.Journal().Entries() {
			if en.Operation == "token" && en.Status == http.StatusBadRequest {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the client never polled the token endpoint")
}

func TestDeviceCodeCompletedProgrammatically(t *testing.T) {
	tests := map[string]struct {
		upn      string
		complete func(e *Emulator, userCode string) error
		code     int // 0: success
		oauth    string
	}{
		"an approved sign-in yields tokens after authorization_pending": {svcUPN, func(e *Emulator, c string) error { return e.ApproveDeviceCode(c, svcUPN) }, 0, ""},
		"a user who needs MFA signs in by device code":                  {mfaUPN, func(e *Emulator, c string) error { return e.ApproveDeviceCode(c, mfaUPN) }, 0, ""},
		"a denied sign-in is authorization_declined":                    {svcUPN, func(e *Emulator, c string) error { return e.DenyDeviceCode(c) }, CodeInvalidGrant, "authorization_declined"},
		"a disabled user approved anyway gets AADSTS50057":              {disabledUPN, func(e *Emulator, c string) error { return e.ApproveDeviceCode(c, disabledUPN) }, CodeUserDisabled, "invalid_grant"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := start(t)
			c := &memCache{}
			pc := e.publicClient(t, publicID, e.em.Authority(), c)
			dc, err := pc.AcquireTokenByDeviceCode(ctx(t), []string{adoScope})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(dc.Result.VerificationURL, e.em.VerificationURI()) || !strings.Contains(dc.Result.Message, dc.Result.UserCode) {
				t.Errorf("device code result %q / %q does not point at the approval page", dc.Result.VerificationURL, dc.Result.Message)
			}
			if p := e.em.PendingDeviceSignIns(); len(p) != 1 || p[0].UserCode != dc.Result.UserCode || p[0].ClientID != publicID {
				t.Errorf("pending sign-ins = %+v", p)
			}
			type result struct {
				ar  public.AuthResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				ar, err := dc.AuthenticationResult(ctx(t))
				done <- result{ar, err}
			}()
			waitPending(t, e)
			must(t, tc.complete(e.em, dc.Result.UserCode))
			r := <-done
			if tc.code != 0 {
				w := aadFrom(t, r.err)
				if got := w.code(t); got != tc.code || w.Body.Error != tc.oauth {
					t.Errorf("got %s AADSTS%d, want %s AADSTS%d", w.Body.Error, got, tc.oauth, tc.code)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			p, err := e.em.Verifier().Verify(r.ar.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if p.UPN != tc.upn || p.Audience != adoResource {
				t.Errorf("principal = %+v, want %s for ADO", p, tc.upn)
			}
			// The interactive sign-in satisfied MFA, so its refresh token keeps working.
			if _, err := silentFromBlob(t, e, c.snapshot()); err != nil {
				t.Errorf("refresh after device-code sign-in: %v", err)
			}
			if err := e.em.ApproveDeviceCode(dc.Result.UserCode, tc.upn); !errors.Is(err, ErrUnknownUserCode) && !errors.Is(err, ErrDeviceCodeDone) {
				t.Errorf("approving a redeemed code again: %v, want ErrDeviceCodeDone", err)
			}
		})
	}
}

func TestDeviceCodeExpiresOnTheEmulatorClock(t *testing.T) {
	e := start(t)
	pc := e.publicClient(t, publicID, e.em.Authority(), nil)
	dc, err := pc.AcquireTokenByDeviceCode(ctx(t), []string{adoScope})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(16 * time.Minute)
	if err := e.em.ApproveDeviceCode(dc.Result.UserCode, svcUPN); !errors.Is(err, ErrDeviceCodeExpired) {
		t.Errorf("approve after expiry: %v, want ErrDeviceCodeExpired", err)
	}
	_, err = dc.AuthenticationResult(ctx(t))
	w := aadFrom(t, err)
	if got := w.code(t); got != CodeDeviceCodeExpired || w.Body.Error != "expired_token" {
		t.Errorf("got %s AADSTS%d, want expired_token AADSTS%d", w.Body.Error, got, CodeDeviceCodeExpired)
	}
}

func TestFaultsReachTheClientInEntrasShape(t *testing.T) {
	e := start(t)
	e.em.Faults().Set("token", fault.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 1})
	pc := e.publicClient(t, publicID, e.em.Authority(), nil)
	_, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, svcUPN, svcPassword)
	w := aadFrom(t, err)
	if got := w.code(t); w.Status != http.StatusTooManyRequests || got != CodeThrottled {
		t.Errorf("got %d AADSTS%d, want 429 AADSTS%d", w.Status, got, CodeThrottled)
	}
	// The rule was for one request only.
	if _, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, svcUPN, svcPassword); err != nil {
		t.Fatalf("after the fault: %v", err)
	}

	t.Run("a dropped discovery connection fails the sign-in and is journaled without status", func(t *testing.T) {
		e.em.Faults().Set("openid", fault.Fault{Drop: true, Times: 1})
		fresh := e.publicClient(t, publicID, e.em.Authority(), nil) // discovery is cached per client
		if _, err := fresh.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, svcUPN, svcPassword); err == nil {
			t.Fatal("want an error when the connection is dropped")
		}
		var dropped bool
		for _, en := range e.em.Journal().Entries() {
			dropped = dropped || (en.Operation == "openid" && en.Status == 0)
		}
		if !dropped {
			t.Error("the journal has no unanswered openid request")
		}
	})

	t.Run("azidentity retries a transient 503 and succeeds", func(t *testing.T) {
		e.em.Faults().Set("token", fault.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		opts := e.clientOptions()
		opts.Retry.RetryDelay, opts.Retry.MaxRetryDelay = time.Millisecond, 5*time.Millisecond
		cred, err := azidentity.NewClientSecretCredential(tenantID, confidentialID, confSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
		must(t, err)
		before := e.em.Journal().Count("token")
		if _, err := cred.GetToken(ctx(t), policy.TokenRequestOptions{Scopes: []string{"https://retry.vault.localhost:8443/.default"}}); err != nil {
			t.Fatal(err)
		}
		if n := e.em.Journal().Count("token") - before; n != 2 {
			t.Errorf("token requests = %d, want 2 (one failed, one retried)", n)
		}
	})
}

func TestJournalNeverHoldsTokenValues(t *testing.T) {
	e := start(t)
	c := &memCache{}
	pc := e.publicClient(t, publicID, e.em.Authority(), c)
	ar, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, svcUPN, svcPassword)
	must(t, err)
	_, err = silentFromBlob(t, e, c.snapshot())
	must(t, err)
	j, err := json.Marshal(e.em.Journal().Entries())
	must(t, err)
	var cacheDoc struct {
		RefreshToken map[string]struct{ Secret string } `json:"RefreshToken"`
	}
	must(t, json.Unmarshal(c.snapshot(), &cacheDoc))
	secrets := []string{ar.AccessToken, ar.IDToken.RawToken, svcPassword}
	for _, rt := range cacheDoc.RefreshToken {
		secrets = append(secrets, rt.Secret)
	}
	if len(secrets) < 4 {
		t.Fatal("the cache holds no refresh token to look for")
	}
	for i, s := range secrets {
		if s == "" || strings.Contains(string(j), s) {
			t.Errorf("secret #%d is empty or appears in the journal", i)
		}
	}
	var principals []string
	for _, en := range e.em.Journal().Entries() {
		if en.Operation == "token" {
			principals = append(principals, en.Principal)
		}
	}
	if !slices.Contains(principals, svcUPN) {
		t.Errorf("token journal principals = %v, want the UPN", principals)
	}
}

func TestInstanceDiscoveryWouldLeaveTheMachineAndIsBlocked(t *testing.T) {
	e := start(t)
	e.guard.expectIt = true
	pc, err := public.New(publicID, public.WithAuthority(e.em.Authority()), public.WithHTTPClient(e.http)) // discovery left on
	must(t, err)
	if _, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, svcUPN, svcPassword); err == nil {
		t.Fatal("want the sign-in to fail when MSAL tries to reach login.microsoftonline.com")
	}
	if hosts := e.guard.blockedHosts(); !slices.Contains(hosts, "login.microsoftonline.com") {
		t.Errorf("blocked hosts = %v, want login.microsoftonline.com", hosts)
	}
}

// consentApp is a public client consented, like patrol's, to manage PATs only.
const consentApp = "66666666-6666-4666-8666-666666666666"

func withPATConsent(t *testing.T, e *env) public.Client {
	t.Helper()
	_, err := e.em.AddAppRegistration(AppRegistration{ClientID: consentApp, PublicClient: true, DisplayName: "patrol sign-in",
		Consent: Consent{adoResource: {"vso.pats", "vso.pats_manage"}}})
	must(t, err)
	return e.publicClient(t, consentApp, e.em.Authority(), &memCache{})
}

// aadCode reads the AADSTS code and suberror of a failed MSAL call.
func aadCode(t *testing.T, err error) (int, string) {
	t.Helper()
	var ce msalerrors.CallErr
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not an Entra answer", err)
	}
	text := ce.Err.Error()
	var body struct {
		ErrorCodes []int  `json:"error_codes"`
		Error      string `json:"error"`
		Suberror   string `json:"suberror"`
	}
	if i := strings.Index(text, "{"); i < 0 || json.Unmarshal([]byte(text[i:]), &body) != nil || len(body.ErrorCodes) == 0 {
		t.Fatalf("no Entra error body in %v", err)
	}
	if body.Error != "invalid_grant" && body.Error != "invalid_scope" {
		t.Errorf("OAuth error %q", body.Error)
	}
	return body.ErrorCodes[0], body.Suberror
}

func TestConsent(t *testing.T) {
	tests := map[string]struct {
		scopes   []string
		scp      string // the token's scp, when it is issued
		code     int    // else the AADSTS code
		suberror string
	}{
		".default yields exactly the consented permissions": {
			scopes: []string{adoScope}, scp: "vso.pats vso.pats_manage"},
		"consented permissions asked for by name are granted": {
			scopes: []string{adoResource + "/vso.pats", adoResource + "/vso.pats_manage"}, scp: "vso.pats vso.pats_manage"},
		"one consented permission asked alone is all the token carries": {
			scopes: []string{adoResource + "/vso.pats"}, scp: "vso.pats"},
		"a permission never consented is AADSTS65001 consent_required": {
			scopes: []string{adoResource + "/vso.tokenadministration"}, code: CodeConsentRequired, suberror: "consent_required"},
		"user_impersonation is not granted when only the PAT permissions were consented": {
			scopes: []string{adoResource + "/user_impersonation"}, code: CodeConsentRequired, suberror: "consent_required"},
		".default of a resource with no consent is AADSTS65001": {
			scopes: []string{vaultScope}, code: CodeConsentRequired, suberror: "consent_required"},
		".default mixed with a named permission is refused": {
			scopes: []string{adoScope, adoResource + "/vso.pats"}, code: CodeInvalidScopeValue},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := start(t)
			pc := withPATConsent(t, e)
			ar, err := pc.AcquireTokenByUsernamePassword(ctx(t), tc.scopes, svcUPN, svcPassword)
			if tc.code != 0 {
				if err == nil {
					t.Fatalf("token issued for %v, want AADSTS%d", tc.scopes, tc.code)
				}
				if code, sub := aadCode(t, err); code != tc.code || sub != tc.suberror {
					t.Fatalf("AADSTS%d suberror %q, want AADSTS%d %q", code, sub, tc.code, tc.suberror)
				}
				return
			}
			must(t, err)
			p, err := e.em.Verifier().Verify(ar.AccessToken)
			must(t, err)
			if got := strings.Join(p.Scopes, " "); got != tc.scp {
				t.Errorf("scp %q, want %q", got, tc.scp)
			}
		})
	}
}

func TestARefreshForAnUnconsentedPermissionIsAADSTS65001AndConsentCanBeGrantedLater(t *testing.T) {
	e := start(t)
	pc := withPATConsent(t, e)
	_, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, svcUPN, svcPassword)
	must(t, err)
	accts, err := pc.Accounts(ctx(t))
	must(t, err)
	admin := []string{adoResource + "/vso.tokenadministration"}
	_, err = pc.AcquireTokenSilent(ctx(t), admin, public.WithSilentAccount(accts[0]))
	if err == nil {
		t.Fatal("the refresh token redeemed for an unconsented permission")
	}
	if code, sub := aadCode(t, err); code != CodeConsentRequired || sub != "consent_required" {
		t.Fatalf("AADSTS%d %q, want 65001 consent_required", code, sub)
	}
	must(t, e.em.SetConsent(consentApp, adoResource, "vso.pats", "vso.pats_manage", "vso.tokenadministration"))
	ar, err := pc.AcquireTokenSilent(ctx(t), admin, public.WithSilentAccount(accts[0]))
	must(t, err)
	if p, err := e.em.Verifier().Verify(ar.AccessToken); err != nil || !slices.Equal(p.Scopes, []string{"vso.tokenadministration"}) {
		t.Errorf("after consent: %+v %v, want scp vso.tokenadministration", p, err)
	}
}

// A client declaring the cp1 capability gets xms_cc in its tokens, and passing a claims
// challenge's nbf back gets a token issued no earlier than the challenge asks.
func TestClaimsCapabilitiesAndAChallengesNotBeforeShapeTheAccessToken(t *testing.T) {
	e := start(t)
	_, err := e.em.AddAppRegistration(AppRegistration{ClientID: consentApp, PublicClient: true,
		Consent: Consent{adoResource: {"vso.pats"}}})
	must(t, err)
	pc, err := public.New(consentApp, public.WithAuthority(e.em.Authority()), public.WithHTTPClient(e.http),
		public.WithInstanceDiscovery(false), public.WithCache(&memCache{}), public.WithClientCapabilities([]string{"cp1"}))
	must(t, err)
	ar, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, svcUPN, svcPassword)
	must(t, err)
	claims := tokenClaims(t, ar.AccessToken)
	if cc, _ := claims["xms_cc"].([]any); len(cc) != 1 || cc[0] != "cp1" {
		t.Errorf("xms_cc = %v, want [cp1]", claims["xms_cc"])
	}
	e.clock.Advance(time.Minute)
	revokedAt := e.clock.Now().Unix()
	accts, err := pc.Accounts(ctx(t))
	must(t, err)
	challenge := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"},"xms_caeerror":{"value":"10012"}}}`, revokedAt)
	ar, err = pc.AcquireTokenSilent(ctx(t), []string{adoScope}, public.WithSilentAccount(accts[0]), public.WithClaims(challenge))
	must(t, err)
	if nbf, _ := tokenClaims(t, ar.AccessToken)["nbf"].(float64); int64(nbf) != revokedAt {
		t.Errorf("nbf %d, want the challenge's %d", int64(nbf), revokedAt)
	}
}

func tokenClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	return m
}
