package entra

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

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
