package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/functionapp"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/wiring"
)

// The second organization of the account tests.
const org2 = "fabrikam-local"

// accountEnv is a stack with a second organization where the service account is an
// administrator and alice a member, and bounds that let patrol work in both.
type accountEnv struct {
	*env
	d      rotation.Defaults
	person contract.Person
	tok    string // alice's Azure DevOps token
}

func newAccountEnv(t *testing.T) *accountEnv {
	e := newEnv(t, envOptions{})
	svc, _ := e.st.Entra.User(account)
	alice, _ := e.st.Entra.User(stack.Person)
	if _, err := e.st.DevOps.AddOrganization(devopsemu.Organization{Name: org2, TenantID: stack.TenantID}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []devopsemu.User{
		{ObjectID: svc.ObjectID, UPN: account, DisplayName: "Build service account", Admin: true},
		{ObjectID: alice.ObjectID, UPN: stack.Person, DisplayName: "Alice Example"},
	} {
		if _, err := e.st.DevOps.AddUser(org2, u); err != nil {
			t.Fatal(err)
		}
	}
	d := e.svc.Defaults
	d.Bounds.Orgs = []string{org, org2}
	d.Bounds.ServiceAccounts = map[string][]string{account: {org, org2}}
	tok, err := personToken(e)
	if err != nil {
		t.Fatal(err)
	}
	return &accountEnv{env: e, d: d, person: contract.Person{UPN: stack.Person, ObjectID: alice.ObjectID}, tok: tok}
}

// alicePAT creates a PAT as alice in inOrg and, when secret is set, stores it there
// tagged for patrol under serviceAccount; it returns the PAT's id.
func (a *accountEnv) alicePAT(inOrg, name, secret, serviceAccount string) string {
	a.t.Helper()
	pat, err := a.alice().CreatePAT(a.ctx, inOrg, devops.CreateRequest{DisplayName: name, Scope: "vso.code vso.build", ValidTo: a.st.Clock.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)})
	if err != nil {
		a.t.Fatal(err)
	}
	if secret != "" {
		tags := rotation.Policy{Org: inOrg, Scopes: []string{"vso.code"}, ServiceAccount: serviceAccount}.Tags()
		tags[rotation.TagOwner], tags[rotation.TagPATID] = stack.Person, pat.AuthorizationID
		if _, err := a.st.KV.Put(stack.Vault, secret, kvemu.NewSecret{Value: pat.Token.Reveal(), Tags: tags}); err != nil {
			a.t.Fatal(err)
		}
	}
	return pat.AuthorizationID
}

// alice is an Azure DevOps client signed in as alice.
func (a *accountEnv) alice() *devops.Client {
	a.t.Helper()
	dc, err := devops.NewClient(devops.Options{BaseURL: a.st.DevOpsURL, HTTPClient: a.st.HTTP,
		Token: func(context.Context) (string, error) { return a.tok, nil }})
	if err != nil {
		a.t.Fatal(err)
	}
	return dc
}

func (a *accountEnv) account() contract.PersonAccount {
	a.t.Helper()
	acc, err := functionapp.BuildAccount(a.ctx, a.svc.Store, wiring.People{PATs: a.svc.PATs, Identities: a.svc.Identities},
		a.person, "", a.d, a.st.Clock.Now())
	if err != nil {
		a.t.Fatal(err)
	}
	return acc
}

func patsByID(acc contract.PersonAccount) map[string]contract.AccountPAT {
	out := map[string]contract.AccountPAT{}
	for _, o := range acc.Organizations {
		for _, p := range o.PATs {
			out[p.PATID] = p
		}
	}
	return out
}

func TestTheAccountOfAPersonClassifiesEveryPATAcrossTwoOrganizations(t *testing.T) {
	a := newAccountEnv(t)
	reissued := a.alicePAT(org, "deploy", "pat-deploy", account)
	held := a.alicePAT(org, "feed", "pat-feed", account)
	own := a.alicePAT(org2, "agent", "pat-agent", stack.Person)
	loose := a.alicePAT(org2, "release pipeline (variable group)", "", "")
	gone := a.alicePAT(org, "revoked already", "", "")
	if err := a.alice().RevokePAT(a.ctx, org, gone); err != nil {
		t.Fatal(err)
	}
	// pat-deploy is re-issued under the service account, as the offboarding does.
	o, err := a.svc.Rotator.Run(a.ctx, "pat-deploy", rotation.Trigger{Kind: rotation.TriggerOffboarding, Op: rotation.NewOpID(),
		Person: rotation.Person{UPN: stack.Person}})
	if err != nil || o.Status != rotation.StatusRotated {
		t.Fatalf("re-issue pat-deploy: %s %v", o.Status, err)
	}

	acc := a.account()
	if len(acc.Organizations) != 2 {
		t.Fatalf("organizations %+v, want %s and %s", acc.Organizations, org, org2)
	}
	for _, oa := range acc.Organizations {
		if oa.Problem != "" || oa.NotMember || oa.ListedBy != account {
			t.Errorf("%s: problem %q, not a member %v, listed by %q", oa.Org, oa.Problem, oa.NotMember, oa.ListedBy)
		}
	}
	got := patsByID(acc)
	want := map[string]struct {
		class  contract.PATClass
		org    string
		secret string
	}{
		reissued: {contract.PATManaged, org, "pat-deploy"},
		held:     {contract.PATManaged, org, "pat-feed"},
		own:      {contract.PATServiceAccount, org2, "pat-agent"},
		loose:    {contract.PATUnmanaged, org2, ""},
	}
	if len(got) != len(want) {
		t.Errorf("%d PATs in the account, want %d (the revoked one left out): %+v", len(got), len(want), got)
	}
	for id, w := range want {
		p := got[id]
		if p.Class != w.class || p.Org != w.org || p.Secret != w.secret {
			t.Errorf("PAT %s: class %s org %s secret %q; want %s %s %q", id, p.Class, p.Org, p.Secret, w.class, w.org, w.secret)
		}
	}
	if p := got[reissued]; p.NewPATID != o.PATID || p.RevokeAt.IsZero() {
		t.Errorf("re-issued PAT: new id %q (want %s), revoke at %s", p.NewPATID, o.PATID, p.RevokeAt)
	}
	if p := got[loose]; p.DisplayName != "release pipeline (variable group)" || strings.Join(p.Scopes, " ") != "vso.code vso.build" || p.Expires.IsZero() {
		t.Errorf("unmanaged PAT: %+v; want its display name, scopes and expiry", p)
	}
}

func TestAListingRefusedForLackOfPermissionSaysSoInsteadOfListingNothing(t *testing.T) {
	a := newAccountEnv(t)
	a.alicePAT(org, "feed", "pat-feed", account)
	// In org2 the service account is no longer a Project Collection Administrator.
	svc, _ := a.st.Entra.User(account)
	if _, err := a.st.DevOps.AddUser(org2, devopsemu.User{ObjectID: svc.ObjectID, UPN: account}); err != nil {
		t.Fatal(err)
	}
	acc := a.account()
	byOrg := map[string]contract.OrgAccount{}
	for _, oa := range acc.Organizations {
		byOrg[oa.Org] = oa
	}
	if p := byOrg[org2].Problem; !strings.HasPrefix(p, "listing refused: ") || !strings.Contains(p, "Project Collection Administrator") {
		t.Errorf("%s without the role: problem %q, want a refusal naming the role", org2, p)
	}
	if len(byOrg[org].PATs) != 1 || byOrg[org].Problem != "" {
		t.Errorf("%s: %+v, want its one PAT listed", org, byOrg[org])
	}

	// Without consent for the listing permissions nothing can be listed anywhere (a
	// new stack: MSAL would answer from the token it cached above).
	a = newAccountEnv(t)
	a.alicePAT(org, "feed", "pat-feed", account)
	if err := a.st.Entra.SetConsent(stack.PublicClientID, devopsemu.ResourceID, devopsemu.ScopePATs, devopsemu.ScopePATsManage); err != nil {
		t.Fatal(err)
	}
	for _, oa := range a.account().Organizations {
		if !strings.HasPrefix(oa.Problem, "listing refused: ") || !strings.Contains(oa.Problem, "vso.graph") || len(oa.PATs) != 0 {
			t.Errorf("%s without consent: problem %q, %d PATs; want a refusal naming the permission", oa.Org, oa.Problem, len(oa.PATs))
		}
	}
}

func TestOffboardDryRunPrintsTheAccountAndSendsNothing(t *testing.T) {
	a := newAccountEnv(t)
	isolateSDKVariables(t, a.envFile)
	held := a.alicePAT(org, "feed", "pat-feed", account)
	loose := a.alicePAT(org, "release pipeline", "", "")
	out, errOut, code := a.patrol("offboard", "--upn", stack.Person, "--dry-run")
	if code != 0 {
		t.Fatalf("offboard --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{held, loose, "unmanaged", "managed", "pat-feed", "release pipeline", "dry run"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	out, _, code = a.patrol("offboard", "--upn", stack.Person, "--dry-run", "-o", "json")
	var acc contract.PersonAccount
	if err := json.Unmarshal([]byte(out), &acc); code != 0 || err != nil || len(patsByID(acc)) != 2 {
		t.Fatalf("offboard --dry-run -o json: exit %d, %v\n%s", code, err, out)
	}
	if n := len(a.messages(contract.QueueOffboarding)) + len(a.messages(contract.QueueRotations)) + len(a.messages(contract.QueueRevocations)); n != 0 {
		t.Errorf("a dry run sent %d messages", n)
	}
}
