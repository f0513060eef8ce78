package devops

import (
	"net/url"
	"testing"
	"time"
)

func TestGraphUsersListsEveryMemberAcrossPagesWithTheirDescriptors(t *testing.T) {
	e := newEnv(t, RateLimit{})
	e.srv.graphPageSize = 2 // three members: two pages
	tok := "Bearer " + e.scopedToken(bobOID, "bob@contoso.test", ScopeGraph)
	const list = "/contoso/_apis/graph/users?subjectTypes=aad&api-version=7.1-preview.1"
	byUPN := map[string]graphUser{}
	path, pages := list, 0
	for {
		r := e.call("GET", path, tok, nil, false)
		if r.status != 200 {
			t.Fatalf("list users: status %d: %s", r.status, r.body)
		}
		var page graphUsers
		r.decode(t, &page)
		if page.Count != len(page.Value) {
			t.Errorf("count %d for %d users", page.Count, len(page.Value))
		}
		for _, u := range page.Value {
			byUPN[u.PrincipalName] = u
		}
		pages++
		next := r.header.Get("X-MS-ContinuationToken")
		if next == "" {
			break
		}
		path = list + "&continuationToken=" + url.QueryEscape(next)
	}
	if pages != 2 || len(byUPN) != 3 {
		t.Fatalf("walked %d pages and %d users, want 2 pages and 3 users", pages, len(byUPN))
	}
	alice := byUPN["alice@contoso.test"]
	want, _ := e.srv.AddUser("contoso", User{ObjectID: aliceOID, UPN: "alice@contoso.test", DisplayName: "Alice"})
	if alice.OriginID != aliceOID || alice.Origin != "aad" || alice.Descriptor != want.Descriptor || alice.SubjectKind != "user" || alice.Domain != testTenant {
		t.Errorf("alice = %+v; want originId %s, origin aad, descriptor %s, domain %s", alice, aliceOID, want.Descriptor, testTenant)
	}

	r := e.call("GET", "/contoso/_apis/graph/users/"+alice.Descriptor+"?api-version=7.1-preview.1", tok, nil, false)
	var one graphUser
	r.decode(t, &one)
	if r.status != 200 || one.OriginID != aliceOID {
		t.Errorf("get alice by descriptor: status %d, originId %q", r.status, one.OriginID)
	}
	if r := e.call("GET", "/contoso/_apis/graph/users/aad.bm9wZQ?api-version=7.1-preview.1", tok, nil, false); r.status != 404 {
		t.Errorf("unknown descriptor: status %d, want 404", r.status)
	}
	if r := e.call("GET", list+"&continuationToken=garbage", tok, nil, false); r.status != 400 {
		t.Errorf("forged continuation token: status %d, want 400", r.status)
	}
	r = e.call("GET", "/contoso/_apis/graph/users?subjectTypes=vss&api-version=7.1-preview.1", tok, nil, false)
	var none graphUsers
	r.decode(t, &none)
	if r.status != 200 || len(none.Value) != 0 {
		t.Errorf("subjectTypes=vss: status %d, %d users, want none", r.status, len(none.Value))
	}
	if r := e.call("GET", list, "Bearer "+e.alice(), nil, false); r.status != 401 || !contains(vssMessage(t, r), ScopeGraph) {
		t.Errorf("a token without vso.graph: status %d, want 401 naming vso.graph", r.status)
	}
}

func TestSetRateLimitChangesTheBudgetOfARunningEmulator(t *testing.T) {
	e := newEnv(t, RateLimit{}) // unlimited
	tok := "Bearer " + e.scopedToken(bobOID, "bob@contoso.test", ScopeGraph)
	const list = "/contoso/_apis/graph/users?api-version=7.1-preview.1"
	e.srv.SetRateLimit(RateLimit{Limit: 2, Window: time.Minute})
	for i, want := range []int{200, 200, 429} {
		if r := e.call("GET", list, tok, nil, false); r.status != want {
			t.Fatalf("call %d: status %d, want %d", i+1, r.status, want)
		}
	}
	e.srv.SetRateLimit(RateLimit{Limit: 3, Window: time.Minute})
	if r := e.call("GET", list, tok, nil, false); r.status != 200 {
		t.Errorf("after raising the budget: status %d, want 200", r.status)
	}
}
