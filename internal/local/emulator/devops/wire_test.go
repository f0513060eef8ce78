package devops

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
)

type patResult struct {
	PatToken *struct {
		DisplayName     string   `json:"displayName"`
		ValidTo         string   `json:"validTo"`
		ValidFrom       string   `json:"validFrom"`
		Scope           string   `json:"scope"`
		TargetAccounts  []string `json:"targetAccounts"`
		AuthorizationID string   `json:"authorizationId"`
		Token           *string  `json:"token"`
	} `json:"patToken"`
	PatTokenError string `json:"patTokenError"`
}

func TestPATLifecycle(t *testing.T) {
	e := newEnv(t, RateLimit{})
	now := e.clock.Now()
	c := e.create("rot-svc1-20261127", "vso.code  vso.build", now.Add(60*24*time.Hour))
	if len(c.value) != 84 {
		t.Errorf("PAT value has %d characters, want 84", len(c.value))
	}
	if !e.srv.IsActive(c.id) {
		t.Fatalf("new PAT %s is not active", c.id)
	}

	get := e.call("GET", "/contoso/_apis/tokens/pats?authorizationId="+c.id+"&api-version=7.1-preview.1", "Bearer "+e.alice(), nil, false)
	var got patResult
	get.decode(t, &got)
	if get.status != 200 || got.PatToken == nil || got.PatToken.Token != nil || !strings.Contains(string(get.body), `"token":null`) {
		t.Fatalf("get: status %d, want 200 with token null", get.status)
	}
	if got.PatToken.Scope != "vso.code vso.build" || got.PatToken.DisplayName != "rot-svc1-20261127" {
		t.Errorf("get: scope %q name %q", got.PatToken.Scope, got.PatToken.DisplayName)
	}
	org, _ := e.srv.PAT(c.id)
	if len(got.PatToken.TargetAccounts) != 1 || got.PatToken.TargetAccounts[0] == "" || org.AllOrgs {
		t.Errorf("targetAccounts = %v, want the organization id", got.PatToken.TargetAccounts)
	}
	if _, err := time.Parse(time.RFC3339Nano, got.PatToken.ValidFrom); err != nil {
		t.Errorf("validFrom %q: %v", got.PatToken.ValidFrom, err)
	}

	newTo := now.Add(90 * 24 * time.Hour)
	upd := e.call("PUT", patsPath, "Bearer "+e.alice(), map[string]any{"authorizationId": c.id, "displayName": "renamed", "validTo": newTo.Format(time.RFC3339Nano)}, false)
	var u patResult
	upd.decode(t, &u)
	if upd.status != 200 || u.PatTokenError != "none" || u.PatToken.DisplayName != "renamed" || u.PatToken.Token != nil {
		t.Fatalf("update: status %d error %q", upd.status, u.PatTokenError)
	}
	if vt, _ := time.Parse(time.RFC3339Nano, u.PatToken.ValidTo); !vt.Equal(newTo) {
		t.Errorf("update validTo = %s, want %s", u.PatToken.ValidTo, newTo)
	}
	if user, err := e.srv.ValidateToken("contoso", c.value); err != nil || user.UPN != "alice@contoso.test" {
		t.Errorf("ValidateToken after update: %v (user %q)", err, user.UPN)
	}

	rev := e.call("DELETE", "/contoso/_apis/tokens/pats?authorizationId="+c.id+"&api-version=7.1-preview.1", "Bearer "+e.alice(), nil, false)
	if rev.status != http.StatusNoContent {
		t.Fatalf("revoke: status %d", rev.status)
	}
	if e.srv.IsActive(c.id) || len(e.srv.ActivePATs("contoso", "alice@contoso.test")) != 0 {
		t.Error("revoked PAT still active")
	}
	if info, _ := e.srv.PAT(c.id); info.Status != StatusRevoked {
		t.Errorf("status = %s, want revoked", info.Status)
	}
	again := e.call("PUT", patsPath, "Bearer "+e.alice(), map[string]any{"authorizationId": c.id, "displayName": "x"}, false)
	var a patResult
	again.decode(t, &a)
	if a.PatTokenError != "authorizationNotFound" || a.PatToken != nil {
		t.Errorf("update of revoked PAT: patTokenError %q", a.PatTokenError)
	}
	unknown := e.call("DELETE", "/contoso/_apis/tokens/pats?authorizationId=4ab5764f-4193-4f1d-b995-64144880b7d7&api-version=7.1-preview.1", "Bearer "+e.alice(), nil, false)
	if unknown.status != 404 || !contains(vssMessage(t, unknown), "SessionTokenNotFoundException") {
		t.Errorf("revoke unknown: status %d", unknown.status)
	}
	for _, entry := range e.srv.Journal().Entries() {
		if b, _ := json.Marshal(entry); strings.Contains(string(b), c.value) {
			t.Fatal("journal entry holds the PAT value")
		}
	}
	if n := e.srv.Journal().Count(OpCreatePat); n != 1 {
		t.Errorf("journal counted %d CreatePat, want 1", n)
	}
}

func TestPathsAreCaseInsensitive(t *testing.T) {
	e := newEnv(t, RateLimit{})
	r := e.call("GET", "/Contoso/_APIS/Tokens/Pats?api-version=6.1-preview", "Bearer "+e.alice(), nil, false)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
}

func TestRequestErrors(t *testing.T) {
	e := newEnv(t, RateLimit{})
	cases := map[string]struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		"a request without api-version is refused":           {"GET", "/contoso/_apis/tokens/pats", nil, 400, "api-version"},
		"a released api-version is refused on a preview API": {"GET", "/contoso/_apis/tokens/pats?api-version=7.1", nil, 400, "-preview"},
		"an unknown organization is not found":               {"GET", "/nowhere/_apis/tokens/pats?api-version=7.1-preview.1", nil, 404, "nowhere"},
		"an unknown path is not found":                       {"GET", "/contoso/_apis/nothing?api-version=7.1-preview.1", nil, 404, "does not exist"},
		"a create body that is not JSON is a bad request":    {"POST", patsPath, []byte("{"), 400, "not valid JSON"},
		"a create body with a wrong type names the field":    {"POST", patsPath, []byte(`{"displayName":1}`), 400, "displayName"},
		"a get with a malformed id is a bad request":         {"GET", "/contoso/_apis/tokens/pats?authorizationId=xyz&api-version=7.1-preview.1", nil, 400, "GUID"},
		"$top above 100 is a bad request":                    {"GET", patsPath + "&$top=101", nil, 400, "$top"},
		"an unknown display filter is a bad request":         {"GET", patsPath + "&displayFilterOption=nope", nil, 400, "displayFilterOption"},
		"a forged continuation token is a bad request":       {"GET", patsPath + "&continuationToken=abc", nil, 400, "continuationToken"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.call(tc.method, tc.path, "Bearer "+e.alice(), tc.body, false)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			if msg := vssMessage(t, r); !contains(msg, tc.want) {
				t.Errorf("message %q lacks %q", msg, tc.want)
			}
			if r.header.Get("X-TFS-ServiceError") == "" {
				t.Error("no X-TFS-ServiceError header")
			}
		})
	}
}

type listPage struct {
	ContinuationToken string `json:"continuationToken"`
	PatTokens         []struct {
		DisplayName     string  `json:"displayName"`
		AuthorizationID string  `json:"authorizationId"`
		Token           *string `json:"token"`
	} `json:"patTokens"`
}

func TestListPagesAcrossSeveralPages(t *testing.T) {
	e := newEnv(t, RateLimit{})
	until := e.clock.Now().Add(30 * 24 * time.Hour)
	for _, n := range []string{"g", "c", "a", "f", "b", "e", "d"} {
		e.create("pat-"+n, "vso.code", until)
	}
	var names []string
	pages := 0
	q := url.Values{"api-version": {"7.1-preview.1"}, "sortByOption": {"displayName"}, "isSortAscending": {"true"}, "$top": {"3"}}
	for {
		r := e.call("GET", "/contoso/_apis/tokens/pats?"+q.Encode(), "Bearer "+e.alice(), nil, false)
		if r.status != 200 {
			t.Fatalf("page %d: status %d: %s", pages, r.status, vssMessage(t, r))
		}
		var p listPage
		r.decode(t, &p)
		pages++
		for _, pt := range p.PatTokens {
			if pt.Token != nil {
				t.Fatal("list returned a token value")
			}
			names = append(names, pt.DisplayName)
		}
		if p.ContinuationToken == "" {
			break
		}
		if pages == 1 {
			// The service requires the same filtering options with a continuation token.
			bad := url.Values{"api-version": {"7.1-preview.1"}, "sortByOption": {"displayDate"}, "continuationToken": {p.ContinuationToken}}
			if r := e.call("GET", "/contoso/_apis/tokens/pats?"+bad.Encode(), "Bearer "+e.alice(), nil, false); r.status != 400 {
				t.Errorf("continuation with other filters: status %d, want 400", r.status)
			}
		}
		q.Set("continuationToken", p.ContinuationToken)
	}
	if pages != 3 || strings.Join(names, ",") != "pat-a,pat-b,pat-c,pat-d,pat-e,pat-f,pat-g" {
		t.Errorf("%d pages, names %v", pages, names)
	}
	// Bob sees none of Alice's PATs.
	r := e.call("GET", patsPath, "Bearer "+e.userToken(bobOID, "bob@contoso.test"), nil, false)
	var p listPage
	r.decode(t, &p)
	if len(p.PatTokens) != 0 {
		t.Errorf("bob lists %d PATs of alice", len(p.PatTokens))
	}
}

func TestListFiltersByStatus(t *testing.T) {
	e := newEnv(t, RateLimit{})
	now := e.clock.Now()
	short := e.create("short", "vso.code", now.Add(24*time.Hour))
	e.clock.Advance(time.Second)
	revoked := e.create("revoked", "vso.code", now.Add(30*24*time.Hour))
	e.clock.Advance(time.Second)
	active := e.create("active", "vso.code", now.Add(30*24*time.Hour))
	e.call("DELETE", "/contoso/_apis/tokens/pats?authorizationId="+revoked.id+"&api-version=7.1-preview.1", "Bearer "+e.alice(), nil, false)
	e.clock.Advance(48 * time.Hour)
	cases := map[string]struct {
		filter string
		want   []string
	}{
		"active lists only usable PATs":         {"active", []string{active.id}},
		"revoked lists only revoked PATs":       {"revoked", []string{revoked.id}},
		"expired lists PATs past their validTo": {"expired", []string{short.id}},
		"all lists every PAT":                   {"all", []string{short.id, revoked.id, active.id}},
		"the default is active":                 {"", []string{active.id}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := patsPath + "&sortByOption=displayDate"
			if tc.filter != "" {
				path += "&displayFilterOption=" + tc.filter
			}
			r := e.call("GET", path, "Bearer "+e.alice(), nil, false)
			var p listPage
			r.decode(t, &p)
			var ids []string
			for _, pt := range p.PatTokens {
				ids = append(ids, pt.AuthorizationID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", ids, tc.want)
			}
		})
	}
}

func TestPoliciesAndValidation(t *testing.T) {
	year := 365 * 24 * time.Hour
	cases := map[string]struct {
		policies  Policies
		body      map[string]any
		wantError string
		wantTo    time.Duration // expected lifetime when created
	}{
		"a lifespan policy silently clamps validTo": {
			Policies{MaxLifespan: 30 * 24 * time.Hour}, map[string]any{"displayName": "p", "scope": "vso.code", "validTo": "2027-06-01T00:00:00Z"}, "none", 30 * 24 * time.Hour},
		"the one-year service limit clamps validTo": {
			Policies{}, map[string]any{"displayName": "p", "scope": "vso.code", "validTo": "2029-01-01T00:00:00Z"}, "none", year},
		"validTo without a zone is UTC with seven fractional digits": {
			Policies{}, map[string]any{"displayName": "p", "scope": "vso.code", "validTo": "2026-12-27T12:00:00.0000000"}, "none", 30 * 24 * time.Hour},
		"an omitted validTo defaults to thirty days": {
			Policies{}, map[string]any{"displayName": "p", "scope": "vso.code"}, "none", 30 * 24 * time.Hour},
		"full scope is refused under the no-full-scope policy": {
			Policies{NoFullScope: true}, map[string]any{"displayName": "p", "scope": "app_token"}, "fullScopePatPolicyViolation", 0},
		"full scope is allowed without that policy": {
			Policies{}, map[string]any{"displayName": "p", "scope": "app_token", "validTo": "2026-12-27T12:00:00Z"}, "none", 30 * 24 * time.Hour},
		"a global PAT is refused under the no-global policy": {
			Policies{NoGlobal: true}, map[string]any{"displayName": "p", "scope": "vso.code", "allOrgs": true}, "globalPatPolicyViolation", 0},
		"a user outside the creation allow-list is denied": {
			Policies{RestrictCreation: true, AllowList: []string{"bob@contoso.test"}}, map[string]any{"displayName": "p", "scope": "vso.code"}, "accessDenied", 0},
		"a user on the creation allow-list may create": {
			Policies{RestrictCreation: true, AllowList: []string{"ALICE@contoso.test"}}, map[string]any{"displayName": "p", "scope": "vso.code", "validTo": "2026-12-27T12:00:00Z"}, "none", 30 * 24 * time.Hour},
		"a missing display name is refused": {
			Policies{}, map[string]any{"scope": "vso.code"}, "displayNameRequired", 0},
		"an unknown scope is refused": {
			Policies{}, map[string]any{"displayName": "p", "scope": "repo:write"}, "invalidScope", 0},
		"an empty scope is refused": {
			Policies{}, map[string]any{"displayName": "p", "scope": " "}, "invalidScope", 0},
		"a validTo in the past is refused": {
			Policies{}, map[string]any{"displayName": "p", "scope": "vso.code", "validTo": "2020-01-01T00:00:00Z"}, "invalidValidTo", 0},
		"a display name with a newline is refused": {
			Policies{}, map[string]any{"displayName": "a\nb", "scope": "vso.code"}, "invalidDisplayName", 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, RateLimit{})
			if err := e.srv.SetPolicies("contoso", tc.policies); err != nil {
				t.Fatal(err)
			}
			r := e.call("POST", patsPath, "Bearer "+e.alice(), tc.body, false)
			var res patResult
			r.decode(t, &res)
			if r.status != 200 || res.PatTokenError != tc.wantError {
				t.Fatalf("status %d patTokenError %q, want 200 %q", r.status, res.PatTokenError, tc.wantError)
			}
			if tc.wantError != "none" {
				if res.PatToken != nil || !contains(string(r.body), `"patToken":null`) {
					t.Error("a failed create returned a patToken")
				}
				if len(e.srv.PATs("contoso")) != 0 {
					t.Error("a failed create stored a PAT")
				}
				return
			}
			to, err := time.Parse(time.RFC3339Nano, res.PatToken.ValidTo)
			if err != nil {
				t.Fatal(err)
			}
			if got := to.Sub(e.clock.Now()); got != tc.wantTo {
				t.Errorf("lifetime %s, want %s", got, tc.wantTo)
			}
		})
	}
}

func TestUpdatePolicies(t *testing.T) {
	e := newEnv(t, RateLimit{})
	c := e.create("p", "vso.code", e.clock.Now().Add(24*time.Hour))
	e.srv.SetPolicies("contoso", Policies{NoFullScope: true, NoGlobal: true, MaxLifespan: 7 * 24 * time.Hour})
	cases := map[string]struct {
		body map[string]any
		want string
	}{
		"widening to full scope is refused":     {map[string]any{"authorizationId": c.id, "scope": "app_token"}, "fullScopePatPolicyViolation"},
		"making it global is refused":           {map[string]any{"authorizationId": c.id, "allOrgs": true}, "globalPatPolicyViolation"},
		"a malformed id is refused":             {map[string]any{"authorizationId": "nope"}, "invalidAuthorizationId"},
		"an extension is clamped by the policy": {map[string]any{"authorizationId": c.id, "validTo": "2027-11-27T12:00:00Z"}, "none"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.call("PUT", patsPath, "Bearer "+e.alice(), tc.body, false)
			var res patResult
			r.decode(t, &res)
			if res.PatTokenError != tc.want {
				t.Fatalf("patTokenError %q, want %q", res.PatTokenError, tc.want)
			}
		})
	}
	if info, _ := e.srv.PAT(c.id); info.ValidTo.Sub(e.clock.Now()) != 7*24*time.Hour {
		t.Errorf("validTo %s not clamped to 7 days", info.ValidTo)
	}
}

func TestLifecycleAuthRefusals(t *testing.T) {
	e := newEnv(t, RateLimit{})
	pat := e.create("p", "vso.code", e.clock.Now().Add(24*time.Hour))
	e.srv.AddUser("contoso", User{ObjectID: "44444444-4444-4444-4444-444444444444", UPN: "gone@contoso.test", Disabled: true})
	cases := map[string]struct {
		auth       string
		noSuppress bool
		status     int
		want       string // in the VSS message; "" for the HTML page
	}{
		"no token with Suppress is 401":                     {"", false, 401, "TF400813"},
		"no token without Suppress is the 203 sign-in page": {"", true, 203, ""},
		"a garbage token is 401":                            {"Bearer not-a-jwt", false, 401, "TF400813"},
		"a service principal token is refused":              {"Bearer " + e.token(jwt.MapClaims{"oid": "55555555-5555-5555-5555-555555555555", "appid": "app-1", "idtyp": "app", "roles": []string{"x"}}), false, 401, "Service principals and managed identities can't"},
		"a PAT is refused on the lifecycle API":             {basic(pat.value), false, 401, "Personal access tokens cannot"},
		"a token for another audience is refused":           {"Bearer " + e.token(jwt.MapClaims{"oid": aliceOID, "upn": "alice@contoso.test", "scp": "x", "aud": "https://vault.azure.net"}), false, 401, "audience"},
		"a token from another tenant is refused":            {"Bearer " + e.token(jwt.MapClaims{"oid": aliceOID, "upn": "alice@contoso.test", "scp": "x", "tid": "99999999-9999-9999-9999-999999999999"}), false, 401, "TF400813"},
		"an expired token is refused":                       {"Bearer " + e.token(jwt.MapClaims{"oid": aliceOID, "upn": "alice@contoso.test", "scp": "x", "exp": e.clock.Now().Add(-time.Minute).Unix()}), false, 401, "TF400813"},
		"a non-member is refused":                           {"Bearer " + e.userToken("66666666-6666-6666-6666-666666666666", "eve@contoso.test"), false, 401, "eve@contoso.test"},
		"a disabled member is refused":                      {"Bearer " + e.userToken("44444444-4444-4444-4444-444444444444", "gone@contoso.test"), false, 401, "TF400813"},
		"the audience with a trailing slash is accepted":    {"Bearer " + e.token(jwt.MapClaims{"oid": aliceOID, "upn": "alice@contoso.test", "scp": "vso.pats", "aud": ResourceID + "/"}), false, 200, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.call("GET", patsPath, tc.auth, nil, tc.noSuppress)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			switch {
			case tc.status == 203:
				if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !contains(string(r.body), "Sign In") {
					t.Error("203 is not the HTML sign-in page")
				}
			case tc.want != "":
				if msg := vssMessage(t, r); !contains(msg, tc.want) {
					t.Errorf("message %q lacks %q", msg, tc.want)
				}
			}
		})
	}
}

func TestConnectionData(t *testing.T) {
	e := newEnv(t, RateLimit{})
	now := e.clock.Now()
	pat := e.create("p", "vso.code", now.Add(24*time.Hour))
	short := e.create("short", "vso.code", now.Add(time.Hour))
	cd := "/contoso/_apis/connectionData?api-version=7.1-preview.1"

	r := e.call("GET", cd, "Basic "+basicAnyUser("whoever", pat.value), nil, false)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	var body struct {
		AuthenticatedUser struct {
			ID                  string `json:"id"`
			SubjectDescriptor   string `json:"subjectDescriptor"`
			ProviderDisplayName string `json:"providerDisplayName"`
		} `json:"authenticatedUser"`
		InstanceID     string `json:"instanceId"`
		DeploymentType string `json:"deploymentType"`
	}
	r.decode(t, &body)
	alice, err := e.srv.ValidateToken("contoso", pat.value)
	if err != nil {
		t.Fatal(err)
	}
	if body.AuthenticatedUser.ID != alice.ID || alice.ID == aliceOID || body.AuthenticatedUser.ProviderDisplayName != "Alice" || body.DeploymentType != "hosted" {
		t.Errorf("authenticatedUser = %+v, want Azure DevOps' id %s for Alice (not her Entra object id)", body.AuthenticatedUser, alice.ID)
	}
	if r := e.call("GET", "/fabrikam/_apis/connectionData", basic(pat.value), nil, false); r.status != 401 {
		t.Errorf("PAT for contoso at fabrikam: status %d, want 401", r.status)
	}
	if r := e.call("GET", "/fabrikam/_apis/connectionData", basic(pat.value), nil, true); r.status != 203 {
		t.Errorf("refused PAT without Suppress: status %d, want the 203 sign-in page", r.status)
	}
	if r := e.call("GET", cd, "Bearer "+e.scopedToken(aliceOID, "alice@contoso.test", "vso.profile"), nil, false); r.status != 200 {
		t.Errorf("connectionData with a bearer token of any scope: status %d, want 200", r.status)
	} else {
		var bearer struct {
			AuthenticatedUser struct {
				ID string `json:"id"`
			} `json:"authenticatedUser"`
		}
		r.decode(t, &bearer)
		if bearer.AuthenticatedUser.ID != alice.ID {
			t.Errorf("connectionData as Alice's Entra token says id %s, as her PAT %s: want the same identity", bearer.AuthenticatedUser.ID, alice.ID)
		}
	}

	e.clock.Advance(2 * time.Hour)
	if r := e.call("GET", cd, basic(short.value), nil, false); r.status != 401 || !contains(vssMessage(t, r), "TF400813") {
		t.Errorf("expired PAT: status %d, want 401", r.status)
	}
	if r := e.call("GET", cd, basic(pat.value), nil, false); r.status != 200 {
		t.Errorf("unexpired PAT after advancing: status %d", r.status)
	}
	if err := e.srv.DisableUser("contoso", "alice@contoso.test"); err != nil {
		t.Fatal(err)
	}
	if r := e.call("GET", cd, basic(pat.value), nil, false); r.status != 401 {
		t.Errorf("disabled owner: status %d, want 401", r.status)
	}
	e.srv.SetUserDisabled("contoso", aliceOID, false)
	e.call("DELETE", "/contoso/_apis/tokens/pats?authorizationId="+pat.id+"&api-version=7.1-preview.1", "Bearer "+e.alice(), nil, false)
	if r := e.call("GET", cd, basic(pat.value), nil, false); r.status != 401 {
		t.Errorf("revoked PAT: status %d, want 401", r.status)
	}
	if _, err := e.srv.ValidateToken("contoso", pat.value); err == nil || strings.Contains(err.Error(), pat.value) {
		t.Error("ValidateToken accepted a revoked PAT or printed its value")
	}
}

func basicAnyUser(user, pat string) string {
	return basic(pat)[len("Basic "):] // user name is ignored; the helper keeps ":" + pat
}

func TestTokenAdmin(t *testing.T) {
	e := newEnv(t, RateLimit{})
	until := e.clock.Now().Add(24 * time.Hour)
	var ids []string
	for i := range 3 {
		ids = append(ids, e.create("p"+strconv.Itoa(i), "vso.code", until).id)
	}
	admin := "Bearer " + e.admin()
	alice, _ := e.srv.AddUser("contoso", User{ObjectID: aliceOID, UPN: "alice@contoso.test", DisplayName: "Alice"})
	listPath := "/contoso/_apis/tokenadmin/personalaccesstokens/" + alice.Descriptor + "?isPublic=false&pageSize=2&api-version=7.1-preview.1"

	if r := e.call("GET", listPath, "Bearer "+e.scopedToken(aliceOID, "alice@contoso.test", "vso.tokenadministration"), nil, false); r.status != 401 || !contains(vssMessage(t, r), "Project Collection Administrator") {
		t.Errorf("non-admin list: status %d, want 401 for lack of the role", r.status)
	}
	if r := e.call("GET", listPath, "Bearer "+e.userToken(adminOID, "admin@contoso.test"), nil, false); r.status != 401 || !contains(vssMessage(t, r), "vso.tokenadministration") {
		t.Errorf("admin list with only the PAT scopes: status %d, want 401 naming vso.tokenadministration", r.status)
	}
	var seen []string
	path := listPath
	for {
		r := e.call("GET", path, admin, nil, false)
		if r.status != 200 {
			t.Fatalf("admin list: status %d", r.status)
		}
		var page struct {
			Value []struct {
				AuthorizationID string  `json:"authorizationId"`
				IsValid         bool    `json:"isValid"`
				Token           *string `json:"token"`
			} `json:"value"`
			ContinuationToken *string `json:"continuationToken"`
		}
		r.decode(t, &page)
		for _, v := range page.Value {
			if !v.IsValid || v.Token != nil {
				t.Errorf("session token %s: valid %v, token present %v", v.AuthorizationID, v.IsValid, v.Token != nil)
			}
			seen = append(seen, v.AuthorizationID)
		}
		if page.ContinuationToken == nil {
			break
		}
		path = listPath + "&continuationToken=" + url.QueryEscape(*page.ContinuationToken)
	}
	if len(seen) != 3 {
		t.Errorf("admin listed %d PATs, want 3", len(seen))
	}

	revPath := "/contoso/_apis/tokenadmin/revocations?isPublic=false&api-version=7.1-preview.1"
	if r := e.call("POST", revPath, "Bearer "+e.alice(), []map[string]string{{"authorizationId": ids[0]}}, false); r.status != 401 {
		t.Errorf("non-admin revoke: status %d, want 401", r.status)
	}
	if r := e.call("POST", revPath, admin, []byte(`[{"authorizationId":"nope"}]`), false); r.status != 400 {
		t.Errorf("malformed revocation: status %d, want 400", r.status)
	}
	body := []map[string]string{{"authorizationId": ids[0]}, {"authorizationId": ids[1]}, {"authorizationId": "4ab5764f-4193-4f1d-b995-64144880b7d7"}}
	if r := e.call("POST", revPath, admin, body, false); r.status != 204 {
		t.Fatalf("admin revoke: status %d", r.status)
	}
	if e.srv.IsActive(ids[0]) || e.srv.IsActive(ids[1]) || !e.srv.IsActive(ids[2]) {
		t.Error("admin revoke did not revoke exactly the listed PATs")
	}
	if r := e.call("GET", "/contoso/_apis/tokenadmin/personalaccesstokens/aad.unknown?api-version=7.1-preview.1", admin, nil, false); r.status != 404 {
		t.Errorf("unknown descriptor: status %d, want 404", r.status)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, RateLimit{Limit: 3, Window: time.Minute})
	tok := "Bearer " + e.alice()
	for i := range 3 {
		r := e.call("GET", patsPath, tok, nil, false)
		if r.status != 200 {
			t.Fatalf("request %d: status %d", i, r.status)
		}
		if got, want := r.header.Get("X-RateLimit-Remaining"), strconv.Itoa(2-i); got != want {
			t.Errorf("request %d: X-RateLimit-Remaining %q, want %q", i, got, want)
		}
		if r.header.Get("X-RateLimit-Limit") != "3" || r.header.Get("X-RateLimit-Resource") == "" || r.header.Get("X-RateLimit-Reset") == "" {
			t.Errorf("request %d: rate-limit headers missing: %v", i, r.header)
		}
		e.clock.Advance(10 * time.Second)
	}
	r := e.call("GET", patsPath, tok, nil, false)
	if r.status != 429 || !contains(vssMessage(t, r), "TF400733") {
		t.Fatalf("over budget: status %d, want 429 TF400733", r.status)
	}
	// The oldest request leaves the 1-minute window 30 s from now.
	if got := r.header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After %q, want 30", got)
	}
	if reset, _ := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64); reset != e.clock.Now().Add(50*time.Second).Unix() {
		t.Errorf("X-RateLimit-Reset %d", reset)
	}
	if other := e.call("GET", patsPath, "Bearer "+e.userToken(bobOID, "bob@contoso.test"), nil, false); other.status != 200 {
		t.Errorf("another identity is throttled too: status %d", other.status)
	}
	e.clock.Advance(30 * time.Second)
	if r := e.call("GET", patsPath, tok, nil, false); r.status != 200 {
		t.Errorf("after Retry-After: status %d", r.status)
	}
}

func TestFaultInjection(t *testing.T) {
	e := newEnv(t, RateLimit{})
	pat := e.create("p", "vso.code", e.clock.Now().Add(24*time.Hour))
	doomed := e.create("doomed", "vso.code", e.clock.Now().Add(24*time.Hour))
	cases := map[string]struct {
		op     string
		fault  fault.Fault
		method string
		path   string
		auth   string
		status int
	}{
		"a create answers 503 once":            {OpCreatePat, fault.Fault{Status: 503, Times: 1}, "POST", patsPath, "Bearer " + e.alice(), 503},
		"a list is throttled with Retry-After": {OpListPats, fault.Fault{Status: 429, RetryAfter: 7 * time.Second, Times: 1}, "GET", patsPath, "Bearer " + e.alice(), 429},
		"connectionData answers 500":           {OpConnectionData, fault.Fault{Status: 500, Times: 1}, "GET", "/contoso/_apis/connectionData", basic(pat.value), 500},
		"a get answers 502":                    {OpGetPat, fault.Fault{Status: 502, Times: 1}, "GET", "/contoso/_apis/tokens/pats?api-version=7.1-preview.1&authorizationId=" + pat.id, "Bearer " + e.alice(), 502},
		"a revoke answers 503":                 {OpRevokePat, fault.Fault{Status: 503, Times: 1}, "DELETE", "/contoso/_apis/tokens/pats?api-version=7.1-preview.1&authorizationId=" + doomed.id, "Bearer " + e.alice(), 503},
		"an admin revocation answers 503":      {OpAdminRevoke, fault.Fault{Status: 503, Times: 1}, "POST", "/contoso/_apis/tokenadmin/revocations?api-version=7.1-preview.1", "Bearer " + e.admin(), 503},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e.srv.Faults().Set(tc.op, tc.fault)
			defer e.srv.Faults().Reset()
			var body any
			switch tc.op {
			case OpCreatePat:
				body = map[string]any{"displayName": "x", "scope": "vso.code"}
			case OpAdminRevoke:
				body = []map[string]string{{"authorizationId": doomed.id}}
			}
			r := e.call(tc.method, tc.path, tc.auth, body, false)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			vssMessage(t, r)
			if tc.fault.RetryAfter > 0 && r.header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
			}
			if r2 := e.call(tc.method, tc.path, tc.auth, body, false); r2.status >= 400 {
				t.Errorf("after the fault was used up: status %d", r2.status)
			}
		})
	}
	t.Run("a dropped connection fails the request", func(t *testing.T) {
		before := len(e.srv.PATs("contoso"))
		e.srv.Faults().Set(OpCreatePat, fault.Fault{Drop: true, Times: 1})
		req, _ := http.NewRequest("POST", e.url+patsPath, strings.NewReader(`{"displayName":"x","scope":"vso.code"}`))
		req.Header.Set("Authorization", "Bearer "+e.alice())
		if res, err := e.client.Do(req); err == nil {
			res.Body.Close()
			t.Fatalf("status %d, want a connection error", res.StatusCode)
		}
		if n := len(e.srv.PATs("contoso")); n != before {
			t.Errorf("%d PATs exist; a dropped create must not have created one", n)
		}
	})
}

func TestInspectionAPIValidatesInput(t *testing.T) {
	e := newEnv(t, RateLimit{})
	cases := map[string]func() error{
		"an organization name with a space": func() error { _, err := e.srv.AddOrganization(Organization{Name: "a b"}); return err },
		"an organization id that is not a GUID": func() error {
			_, err := e.srv.AddOrganization(Organization{Name: "ok", ID: "x"})
			return err
		},
		"a user without a GUID object id":     func() error { _, err := e.srv.AddUser("contoso", User{ObjectID: "x", UPN: "u"}); return err },
		"a user in an unknown organization":   func() error { _, err := e.srv.AddUser("none", User{ObjectID: aliceOID, UPN: "u"}); return err },
		"disabling an unknown user":           func() error { return e.srv.DisableUser("contoso", "nobody") },
		"policies of an unknown organization": func() error { return e.srv.SetPolicies("none", Policies{}) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			if err := f(); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, RateLimit{Limit: 1000})
	tok := "Bearer " + e.alice()
	org, ok := e.srv.Organization("CONTOSO")
	if !ok {
		t.Fatal("organization contoso not found")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			e.srv.SetPolicies("contoso", Policies{MaxLifespan: time.Duration(i+1) * time.Hour})
			e.srv.AddOrganization(Organization{Name: "contoso", TenantID: testTenant, ID: org.ID})
			e.srv.SetUserDisabled("contoso", bobOID, i%2 == 0)
			e.srv.ActivePATs("contoso", aliceOID)
		}
	}()
	errs := make(chan string, 20)
	for i := range 20 {
		go func() {
			r := e.call("POST", patsPath, tok, map[string]any{"displayName": "c" + strconv.Itoa(i), "scope": "vso.code"}, false)
			errs <- strconv.Itoa(r.status)
		}()
	}
	for range 20 {
		if s := <-errs; s != "200" {
			t.Errorf("concurrent create: status %s", s)
		}
	}
	<-done
}

// Each operation needs its delegated scope (Sprint 257): a user_impersonation token,
// which was all docs/deploy.md once told operators to consent, is refused everywhere
// but connectionData.
func TestEachOperationRequiresItsScope(t *testing.T) {
	e := newEnv(t, RateLimit{})
	pat := e.create("p", "vso.code", e.clock.Now().Add(24*time.Hour))
	admin, err := e.srv.AddUser("contoso", User{ObjectID: adminOID, UPN: "admin@contoso.test", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]struct{ method, path string }{
		"list":           {"GET", patsPath},
		"get":            {"GET", "/contoso/_apis/tokens/pats?authorizationId=" + pat.id + "&api-version=7.1-preview.1"},
		"create":         {"POST", patsPath},
		"revoke":         {"DELETE", "/contoso/_apis/tokens/pats?authorizationId=00000000-0000-0000-0000-000000000001&api-version=7.1-preview.1"},
		"admin list":     {"GET", "/contoso/_apis/tokenadmin/personalaccesstokens/" + admin.Descriptor + "?isPublic=false&api-version=7.1-preview.1"},
		"admin revoke":   {"POST", "/contoso/_apis/tokenadmin/revocations?isPublic=false&api-version=7.1-preview.1"},
		"connectionData": {"GET", "/contoso/_apis/connectionData"},
		"graph users":    {"GET", "/contoso/_apis/graph/users?api-version=7.1-preview.1"},
	}
	cases := map[string]struct {
		scp     string
		allowed []string
	}{
		"user_impersonation alone reaches only connectionData": {"user_impersonation", []string{"connectionData"}},
		"vso.pats reads PATs but cannot change them":           {"vso.pats", []string{"list", "get", "connectionData"}},
		"vso.pats_manage changes PATs but cannot read them":    {"vso.pats_manage", []string{"create", "revoke", "connectionData"}},
		"both PAT scopes manage PATs but not other users'":     {"vso.pats vso.pats_manage", []string{"list", "get", "create", "revoke", "connectionData"}},
		"vso.tokenadministration reaches only token admin":     {"vso.tokenadministration", []string{"admin list", "admin revoke", "connectionData"}},
		"vso.graph reads users and nothing of PATs":            {"vso.graph", []string{"graph users", "connectionData"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tok := "Bearer " + e.scopedToken(adminOID, "admin@contoso.test", tc.scp)
			for op, c := range ops {
				var body any
				switch op {
				case "create":
					body = map[string]any{"displayName": "x", "scope": "vso.code", "validTo": e.clock.Now().Add(time.Hour).Format(time.RFC3339)}
				case "admin revoke":
					body = []map[string]string{{"authorizationId": pat.id}}
				}
				r := e.call(c.method, c.path, tok, body, false)
				// Allowed is anything but 401: a get or revoke of another user's PAT is 404.
				if allowed := slices.Contains(tc.allowed, op); allowed != (r.status != 401) {
					t.Errorf("%s with scp %q: status %d, want allowed=%v", op, tc.scp, r.status, allowed)
				} else if !allowed && (r.status != 401 || !contains(vssMessage(t, r), "TF400813")) {
					t.Errorf("%s with scp %q: status %d, want 401 TF400813", op, tc.scp, r.status)
				}
			}
		})
	}
}

func TestConnectionDataNamesTheIdentityAsAzureDevOpsDoes(t *testing.T) {
	e := newEnv(t, RateLimit{})
	pat := e.create("p", "vso.code", e.clock.Now().Add(24*time.Hour))
	r := e.call("GET", "/contoso/_apis/connectionData", basic(pat.value), nil, false)
	var body struct {
		AuthenticatedUser struct {
			ID                string                       `json:"id"`
			Descriptor        string                       `json:"descriptor"`
			SubjectDescriptor string                       `json:"subjectDescriptor"`
			Properties        map[string]map[string]string `json:"properties"`
		} `json:"authenticatedUser"`
	}
	r.decode(t, &body)
	u := body.AuthenticatedUser
	if want := "Microsoft.IdentityModel.Claims.ClaimsIdentity;" + testTenant + `\alice@contoso.test`; u.Descriptor != want {
		t.Errorf("descriptor %q, want %q", u.Descriptor, want)
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(u.SubjectDescriptor, "aad."))
	if err != nil || !strings.HasPrefix(u.SubjectDescriptor, "aad.") || string(key) == aliceOID || string(key) == "" {
		t.Errorf("subjectDescriptor %q: want aad. + base64 of a storage key that is not the Entra object id", u.SubjectDescriptor)
	}
	if u.ID == aliceOID || u.Properties["http://schemas.microsoft.com/identity/claims/objectidentifier"]["$value"] != aliceOID {
		t.Errorf("id %s, properties %v: want an Azure DevOps id and the object id only as a property", u.ID, u.Properties)
	}
}

func TestRevokedSessionsGetAClaimsChallengeOnlyWhenTheClientDeclaredCP1(t *testing.T) {
	e := newEnv(t, RateLimit{})
	cae := e.token(jwt.MapClaims{"oid": aliceOID, "upn": "alice@contoso.test", "scp": "vso.pats", "idtyp": "user", "xms_cc": []string{"cp1"}})
	plain := e.alice()
	e.clock.Advance(time.Minute)
	if err := e.srv.RevokeSessions("alice@contoso.test"); err != nil {
		t.Fatal(err)
	}
	revokedAt := e.clock.Now().Truncate(time.Second)

	r := e.call("GET", patsPath, "Bearer "+cae, nil, false)
	challenge := r.header.Values("WWW-Authenticate")
	if r.status != 401 || len(challenge) == 0 || !strings.Contains(challenge[0], `error="insufficient_claims"`) || !strings.Contains(challenge[0], `authorization_uri="https://login.microsoftonline.com/`+testTenant+`/oauth2/authorize"`) {
		t.Fatalf("cp1 token after revocation: status %d, WWW-Authenticate %q; want a claims challenge", r.status, challenge)
	}
	_, b64, _ := strings.Cut(challenge[0], `claims="`)
	claims, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(b64, `"`))
	if want := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"},"xms_caeerror":{"value":"10012"}}}`, revokedAt.Unix()); err != nil || string(claims) != want {
		t.Errorf("claims %s (%v), want %s", claims, err, want)
	}
	if r := e.call("GET", patsPath, "Bearer "+plain, nil, false); r.status != 401 || strings.Contains(strings.Join(r.header.Values("WWW-Authenticate"), " "), "insufficient_claims") {
		t.Errorf("token without cp1 after revocation: status %d, WWW-Authenticate %q; want a plain 401", r.status, r.header.Values("WWW-Authenticate"))
	}
	fresh := e.token(jwt.MapClaims{"oid": aliceOID, "upn": "alice@contoso.test", "scp": "vso.pats", "idtyp": "user", "nbf": revokedAt.Unix()})
	if r := e.call("GET", patsPath, "Bearer "+fresh, nil, false); r.status != 200 {
		t.Errorf("token issued at the revocation: status %d, want 200", r.status)
	}
}

// Local divergence (docs/emulator-fidelity.md D6): an expired token gets a challenge so
// MSAL, whose cache runs on the wall clock, fetches a fresh one.
func TestAnExpiredTokenGetsAClaimsChallengeForNow(t *testing.T) {
	e := newEnv(t, RateLimit{})
	tok := e.alice()
	e.clock.Advance(2 * time.Hour)
	r := e.call("GET", patsPath, "Bearer "+tok, nil, false)
	if h := r.header.Get("WWW-Authenticate"); r.status != 401 || !strings.Contains(h, `error="insufficient_claims"`) {
		t.Fatalf("expired token: status %d, WWW-Authenticate %q", r.status, h)
	}
	if h := strings.Join(r.header.Values("WWW-Authenticate"), ", "); !strings.Contains(h, "TFS-Federated") || !strings.Contains(h, "Basic realm") {
		t.Errorf("401 headers %q lack Basic and TFS-Federated", h)
	}
}

func TestDelayedPropagationRefusesANewPATForItsFirstCalls(t *testing.T) {
	e := newEnv(t, RateLimit{})
	e.srv.DelayPATPropagation(2)
	pat := e.create("p", "vso.code", e.clock.Now().Add(24*time.Hour))
	e.srv.DelayPATPropagation(0)
	var got []int
	for range 3 {
		got = append(got, e.call("GET", "/contoso/_apis/connectionData", basic(pat.value), nil, false).status)
	}
	if !slices.Equal(got, []int{401, 401, 200}) {
		t.Errorf("connectionData statuses %v, want [401 401 200]", got)
	}
}
