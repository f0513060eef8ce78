package entra

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
)

func TestDiscoveryNamesTheAuthorityHostWithItsPort(t *testing.T) {
	e := start(t)
	tests := map[string]struct {
		tenant string
		status int
	}{
		"the tenant id is served":                       {tenantID, http.StatusOK},
		"the verified domain is accepted as the tenant": {"contoso.localhost", http.StatusOK},
		"organizations resolves to the only tenant":     {"organizations", http.StatusOK},
		"an unknown tenant is AADSTS90002":              {"00000000-0000-4000-8000-000000000001", http.StatusBadRequest},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp, err := e.http.Get("https://" + e.em.Host() + "/" + tc.tenant + "/v2.0/.well-known/openid-configuration")
			must(t, err)
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusOK {
				var body aadErrorBody
				must(t, json.NewDecoder(resp.Body).Decode(&body))
				if body.Error != "invalid_tenant" || len(body.ErrorCodes) != 1 || body.ErrorCodes[0] != CodeTenantNotFound ||
					!strings.HasPrefix(body.ErrorDescription, "AADSTS90002: ") || !strings.Contains(body.ErrorDescription, "\r\nTrace ID: "+body.TraceID) {
					t.Errorf("error body = %+v", body)
				}
				return
			}
			var doc openIDConfiguration
			must(t, json.NewDecoder(resp.Body).Decode(&doc))
			if doc.Issuer != e.em.Issuer() || !strings.HasPrefix(doc.Issuer, "https://"+e.em.Host()+"/") {
				t.Errorf("issuer %q, want %q", doc.Issuer, e.em.Issuer())
			}
			tok, _ := url.Parse(doc.TokenEndpoint)
			if tok.Host != e.em.Host() || strings.Contains(tok.Host, "token") {
				t.Errorf("token endpoint %q", doc.TokenEndpoint)
			}
		})
	}
}

func TestErrorsEchoTheClientRequestIDAsCorrelationID(t *testing.T) {
	e := start(t)
	req, _ := http.NewRequest(http.MethodPost, "https://"+e.em.Host()+"/"+tenantID+"/oauth2/v2.0/token",
		strings.NewReader("grant_type=password&client_id="+publicID+"&username="+url.QueryEscape(svcUPN)+"&password=wrong&scope="+url.QueryEscape(adoScope)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	const cid = "0b7c4b1e-3a7d-4a52-9d0e-2f1f3c5a6b7d"
	req.Header.Set("client-request-id", cid)
	resp, err := e.http.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var body aadErrorBody
	must(t, json.NewDecoder(resp.Body).Decode(&body))
	if body.CorrelationID != cid || !strings.Contains(body.ErrorDescription, "Correlation ID: "+cid) {
		t.Errorf("correlation id %q, want the client's %q", body.CorrelationID, cid)
	}
	if _, err := time.Parse(aadTimestamp, body.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", body.Timestamp, err)
	}
	if strings.Contains(body.ErrorDescription, "wrong") {
		t.Error("the error repeats the password")
	}
}

func TestUserRealm(t *testing.T) {
	e := start(t)
	tests := map[string]struct {
		user, accountType string
	}{
		"a user of the tenant's domain is Managed":         {svcUPN, "Managed"},
		"an unknown user of a known domain is Managed":     {"ghost@contoso.localhost", "Managed"},
		"a user of a domain no tenant has is Unknown":      {"someone@example.org", "Unknown"},
		"a name without a domain is Unknown, not an error": {"svc", "Unknown"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp, err := e.http.Get("https://" + e.em.Host() + "/common/UserRealm/" + url.PathEscape(tc.user) + "?api-version=1.0")
			must(t, err)
			defer resp.Body.Close()
			var ur userRealm
			must(t, json.NewDecoder(resp.Body).Decode(&ur))
			if ur.AccountType != tc.accountType || ur.CloudInstanceName == "" || ur.CloudAudienceURN == "" || (tc.accountType == "Managed") != (ur.DomainName != "") {
				t.Errorf("user realm = %+v, want %s", ur, tc.accountType)
			}
		})
	}
}

func TestVerifier(t *testing.T) {
	e := start(t)
	other := start(t) // same key and tenant, different port: a different issuer
	cred := e.secretCredential(t, tenantID, confidentialID, confSecret)
	tok, err := cred.GetToken(ctx(t), tokenOptions(vaultScope))
	must(t, err)
	otherTok, err := other.secretCredential(t, tenantID, confidentialID, confSecret).GetToken(ctx(t), tokenOptions(vaultScope))
	must(t, err)
	parts := strings.Split(tok.Token, ".")
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": e.em.Issuer(), "tid": tenantID, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("k"))
	must(t, err)
	check := func(t *testing.T, raw string, ok bool) {
		t.Helper()
		_, err := e.em.Verifier().Verify(raw)
		if (err == nil) != ok {
			t.Fatalf("Verify: %v, want ok=%v", err, ok)
		}
		if err != nil && !errors.Is(err, authn.ErrInvalidToken) {
			t.Errorf("error %v does not wrap authn.ErrInvalidToken", err)
		}
		if err != nil && strings.Contains(err.Error(), raw) {
			t.Error("the error repeats the token")
		}
	}
	tests := map[string]struct {
		raw string
		ok  bool
	}{
		"a fresh token from this emulator verifies":         {tok.Token, true},
		"a token from another emulator's issuer is refused": {otherTok.Token, false},
		"a token with a changed payload is refused":         {parts[0] + "." + parts[1] + "x." + parts[2], false},
		"an HS256 token is refused whatever its claims":     {forged, false},
		"something that is not a JWT is refused":            {"not-a-token", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { check(t, tc.raw, tc.ok) })
	}
	t.Run("a token past exp on the emulator clock is refused", func(t *testing.T) {
		e.clock.Advance(2 * time.Hour)
		check(t, tok.Token, false)
	})
}

func tokenOptions(scope string) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{scope}}
}

func TestNewRejectsABadDirectory(t *testing.T) {
	key, ca := shared(t)
	tests := map[string]func(d *Directory){
		"a tenant id that is not a GUID":       func(d *Directory) { d.TenantID = "contoso" },
		"an app whose client id is not a GUID": func(d *Directory) { d.AppRegistrations[0].ClientID = "patrol" },
		"the same client id twice":             func(d *Directory) { d.AppRegistrations[1].ClientID = d.AppRegistrations[0].ClientID },
		"a UPN without a domain":               func(d *Directory) { d.Users[0].UPN = "svc" },
		"the same UPN twice in another case":   func(d *Directory) { d.Users[1].UPN = strings.ToUpper(svcUPN) },
		"a public client with a secret":        func(d *Directory) { d.AppRegistrations[1].Secret = "x" },
		"a system identity that is an app":     func(d *Directory) { d.SystemAssignedIdentity = confidentialID },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			d := fixtureDirectory()
			mutate(&d)
			if em, err := New(Options{Directory: d, CA: ca, SigningKey: key}); err == nil {
				em.Close()
				t.Fatal("want an error")
			} else if !strings.HasPrefix(err.Error(), "entra: directory: ") {
				t.Errorf("error %q does not say where the problem is", err)
			}
		})
	}
}

func TestRuntimeDirectoryChanges(t *testing.T) {
	e := start(t)
	u, err := e.em.AddUser(User{UPN: "new@contoso.localhost", Password: "pw"})
	must(t, err)
	if u.ObjectID == "" {
		t.Error("AddUser did not assign an object id")
	}
	if _, err := e.em.AddUser(User{UPN: "NEW@contoso.localhost"}); err == nil {
		t.Error("adding the same UPN again succeeded")
	}
	_, err = e.em.AddAppRegistration(AppRegistration{ClientID: "55555555-5555-4555-8555-555555555555", PublicClient: true,
		Consent: Consent{adoResource: {"vso.pats"}}})
	must(t, err)
	pc := e.publicClient(t, "55555555-5555-4555-8555-555555555555", e.em.Authority(), nil)
	if _, err := pc.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, "new@contoso.localhost", "pw"); err != nil {
		t.Fatalf("a user and app added at runtime cannot sign in: %v", err)
	}
	if err := e.em.DisableUser("ghost@contoso.localhost"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("disabling an unknown user: %v, want ErrUnknownUser", err)
	}
}
