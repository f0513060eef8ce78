package entra

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseScope(t *testing.T) {
	tests := map[string]struct {
		raw      string
		resource string
		scp      []string
		openID   bool
		offline  bool
		code     int
	}{
		"MSAL's ADO request targets the GUID and asks for id and refresh tokens": {
			raw: adoScope + " openid offline_access profile", resource: adoResource, openID: true, offline: true},
		"a vault resource keeps its port":                       {raw: vaultScope, resource: "https://vault.localhost:8443"},
		"a named permission is the scp":                         {raw: adoResource + "/vso.tokens", resource: adoResource, scp: []string{"vso.tokens"}},
		"a bare permission is Microsoft Graph's":                {raw: "User.Read openid", resource: graphResource, scp: []string{"User.Read"}, openID: true},
		"two resources in one request are AADSTS28000":          {raw: adoScope + " " + vaultScope, code: CodeMultipleResources},
		"a resource without a permission is AADSTS70011":        {raw: "https://vault.localhost:8443", code: CodeInvalidScopeValue},
		".default mixed with a named permission is AADSTS70011": {raw: adoScope + " " + adoResource + "/vso.pats", code: CodeInvalidScopeValue},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sr, aerr := parseScope(tc.raw)
			if tc.code != 0 {
				if aerr == nil || aerr.Code != tc.code {
					t.Fatalf("error %v, want AADSTS%d", aerr, tc.code)
				}
				return
			}
			if aerr != nil {
				t.Fatal(aerr)
			}
			if sr.audience() != tc.resource || !slices.Equal(sr.Named, tc.scp) || sr.Default != (tc.scp == nil) || sr.OpenID != tc.openID || sr.Offline != tc.offline || sr.Raw != tc.raw {
				t.Errorf("parsed %+v (aud %s)", sr, sr.audience())
			}
		})
	}
}

// TestDecideRefreshOrder pins which condition wins when several hold: the account state
// comes first, so a disabled user is told 50057 even when the token is also expired.
func TestDecideRefreshOrder(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	d, err := fixtureDirectory().normalize()
	must(t, err)
	svc := d.user(svcUPN)
	fresh := refreshRecord{UserOID: svc.ObjectID, ClientID: publicID, Issued: now.Add(-time.Hour), Expires: now.Add(time.Hour)}
	req := tokenRequest{GrantType: "refresh_token", ClientID: publicID, RefreshToken: "opaque", Scope: vaultScope}
	tests := map[string]struct {
		rec    func() *refreshRecord
		user   func(u *User)
		req    func(r *tokenRequest)
		code   int
		status int
	}{
		"a fresh token for an enabled user is redeemed": {},
		"an unknown token is AADSTS9002313":             {rec: func() *refreshRecord { return nil }, code: CodeMalformedRequest},
		"a token past its inactivity window is AADSTS700082": {rec: func() *refreshRecord {
			r := fresh
			r.Expires = now
			return &r
		}, code: CodeRefreshTokenExpired},
		"a disabled user wins over an expired token": {rec: func() *refreshRecord {
			r := fresh
			r.Expired = true
			return &r
		}, user: func(u *User) { u.Disabled = true }, code: CodeUserDisabled},
		"revocation wins over expiry": {rec: func() *refreshRecord {
			r := fresh
			r.Expired, r.Revoked = true, true
			return &r
		}, code: CodeRefreshTokenRevoked},
		"a token from an interactive MFA sign-in survives RequiresMFA": {rec: func() *refreshRecord {
			r := fresh
			r.MFA = true
			return &r
		}, user: func(u *User) { u.RequiresMFA = true }},
		"a token of another client is AADSTS70000": {req: func(r *tokenRequest) { r.ClientID = confidentialID; r.ClientSecret = confSecret }, code: CodeInvalidGrant},
		"a missing scope is AADSTS900144":          {req: func(r *tokenRequest) { r.Scope = "" }, code: CodeMissingParameter},
		"a wrong secret fails before the grant is looked at": {req: func(r *tokenRequest) { r.ClientID = confidentialID; r.ClientSecret = "x" },
			rec: func() *refreshRecord { return nil }, code: CodeInvalidClientSecret, status: http.StatusUnauthorized},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, _ := fixtureDirectory().normalize()
			u := d.user(svcUPN)
			u.ObjectID = svc.ObjectID
			if tc.user != nil {
				tc.user(u)
			}
			r := req
			if tc.req != nil {
				tc.req(&r)
			}
			rec := &fresh
			if tc.rec != nil {
				rec = tc.rec()
			}
			is, aerr := decideRefresh(&d, rec, r, now)
			if tc.code == 0 {
				if aerr != nil {
					t.Fatal(aerr)
				}
				if is.Subject.User == nil || is.Subject.User.UPN != svcUPN || is.RefreshToken != is.Scope.Offline {
					t.Errorf("issued to %v with refresh=%v", is.Subject.User != nil, is.RefreshToken)
				}
				return
			}
			if aerr == nil || aerr.Code != tc.code {
				t.Fatalf("got %v, want AADSTS%d", aerr, tc.code)
			}
			if tc.status != 0 && aerr.Status != tc.status {
				t.Errorf("status %d, want %d", aerr.Status, tc.status)
			}
		})
	}
}

func TestDecideMSI(t *testing.T) {
	d, err := fixtureDirectory().normalize()
	must(t, err)
	uami := d.app(userMIID)
	tests := map[string]struct {
		sel    miSelector
		system string
		app    string
	}{
		"no selector is the system-assigned identity":         {app: systemMIID},
		"an object id selects a user-assigned identity":       {sel: miSelector{ObjectID: uami.ObjectID}, app: userMIID},
		"an app registration is not a managed identity":       {sel: miSelector{ClientID: confidentialID}},
		"without a system-assigned identity there is nothing": {system: "none"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dd := d
			if tc.system == "none" {
				dd.SystemAssignedIdentity = ""
			}
			is, merr := decideMSI(&dd, msiRequest{Resource: "https://vault.localhost:8443", Selector: tc.sel})
			if tc.app == "" {
				if merr == nil || merr.Status != http.StatusBadRequest {
					t.Fatalf("got %s, %v; want a 400", is.Subject.App.ClientID, merr)
				}
				return
			}
			if merr != nil || is.Subject.App.ClientID != tc.app || is.Scope.audience() != "https://vault.localhost:8443" {
				t.Errorf("got %s, %v; want %s", is.Subject.App.ClientID, merr, tc.app)
			}
		})
	}
}

const formType = "application/x-www-form-urlencoded; charset=utf-8"

func checkAADError(t *testing.T, aerr *aadError) {
	t.Helper()
	if aerr.Code == 0 || aerr.Err == "" || aerr.Description == "" || (aerr.Status != 400 && aerr.Status != 401) {
		t.Errorf("incomplete error %+v", aerr)
	}
	if strings.ContainsAny(aerr.Description, "\x00\r\n\x1b") {
		t.Errorf("description carries control characters: %q", aerr.Description)
	}
}
