package functionapp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

const (
	pat3 = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"
	pat4 = "12345678-1234-4234-8234-123456789abc"
)

var alice = contract.Person{UPN: "alice@contoso.com", ObjectID: "6f1c2a4e-8d3b-4c55-9a10-2b7e4d9c0f13"}

func TestClassifyAccount(t *testing.T) {
	reissued := managed("pat-reissued", ver2, map[string]string{rotation.TagPATID: pat2, rotation.TagPreviousPATID: pat1})
	reissued.Created = now.Add(-time.Hour)
	vs := []rotation.Version{
		reissued,
		managed("pat-held", ver1, map[string]string{rotation.TagPATID: pat3, rotation.TagOwner: alice.UPN}),
		managed("pat-own-account", ver1, map[string]string{rotation.TagPATID: pat4, rotation.TagServiceAccount: alice.UPN, rotation.TagOwner: alice.UPN}),
	}
	tests := map[string]struct {
		id      string
		class   contract.PATClass
		secret  string
		newID   string
		revoke  time.Time
		account string
	}{
		"a PAT a version replaced is managed, with its replacement and revocation time": {
			id: pat1, class: contract.PATManaged, secret: "pat-reissued", newID: pat2, revoke: now.Add(23 * time.Hour), account: "svc-build@contoso.com"},
		"a PAT a version holds, under another service account, is managed and due for re-issue": {
			id: pat3, class: contract.PATManaged, secret: "pat-held", account: "svc-build@contoso.com"},
		"a PAT a version holds whose service account is the person needs attention": {
			id: strings.ToUpper(pat4), class: contract.PATServiceAccount, secret: "pat-own-account", account: alice.UPN},
		"a PAT no version holds is unmanaged": {
			id: "99999999-9999-4999-8999-999999999999", class: contract.PATUnmanaged},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := OrgListing{Org: "contoso", Account: "svc-build@contoso.com", PATs: []contract.AccountPAT{{PATID: tc.id, DisplayName: "x", Org: "contoso"}}}
			acc := ClassifyAccount(alice, "hr-1", []OrgListing{l}, vs, defaults, now)
			if len(acc.Organizations) != 1 || len(acc.Organizations[0].PATs) != 1 {
				t.Fatalf("account = %+v", acc)
			}
			p := acc.Organizations[0].PATs[0]
			if p.Class != tc.class || p.Secret != tc.secret || p.NewPATID != tc.newID || !p.RevokeAt.Equal(tc.revoke) || p.ServiceAccount != tc.account || p.Action == "" {
				t.Errorf("got class %s secret %q new %q revokeAt %s account %q action %q", p.Class, p.Secret, p.NewPATID, p.RevokeAt, p.ServiceAccount, p.Action)
			}
			if acc.EventID != "hr-1" || acc.Person != alice || !acc.Time.Equal(now) || acc.Organizations[0].ListedBy != "svc-build@contoso.com" {
				t.Errorf("header = %+v", acc)
			}
		})
	}
}

func TestListingAccount(t *testing.T) {
	b := rotation.Bounds{Orgs: []string{"contoso", "fabrikam", "tailspin"},
		ServiceAccounts: map[string][]string{"svc-b@contoso.com": {"contoso", "fabrikam"}, "svc-a@contoso.com": {"fabrikam"}}}
	tests := map[string]struct {
		def, org, want string
	}{
		"the default service account lists where the bounds let it work": {def: "SVC-B@contoso.com", org: "contoso", want: "svc-b@contoso.com"},
		"elsewhere the first bounded account that may work there lists":  {def: "svc-b@contoso.com", org: "tailspin", want: ""},
		"without a default the first account alphabetically lists":       {org: "fabrikam", want: "svc-a@contoso.com"},
		"a default the bounds do not admit is passed over":               {def: "someone@contoso.com", org: "contoso", want: "svc-b@contoso.com"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ListingAccount(tc.org, rotation.Defaults{ServiceAccount: tc.def, Bounds: b}); got != tc.want {
				t.Errorf("ListingAccount(%q) = %q, want %q", tc.org, got, tc.want)
			}
		})
	}
}

type fakePeople map[string]error // org → error; nil lists one PAT

func (f fakePeople) PersonPATs(_ context.Context, account, org string, _ contract.Person) ([]contract.AccountPAT, error) {
	if err := f[org]; err != nil {
		return nil, err
	}
	return []contract.AccountPAT{{PATID: pat1, Org: org, DisplayName: "by " + account}}, nil
}

func TestGatherAccountSaysWhyAnOrganizationCouldNotBeListed(t *testing.T) {
	d := defaults
	d.Bounds.Orgs = []string{"contoso", "fabrikam", "northwind", "tailspin"}
	d.Bounds.ServiceAccounts = map[string][]string{"svc-build@contoso.com": {"contoso", "fabrikam", "northwind"}}
	people := fakePeople{
		"fabrikam":  errors.Join(errors.New("401 TF400813"), rotation.ErrNotPermitted),
		"northwind": rotation.ErrNotFound,
	}
	got := GatherAccount(context.Background(), people, alice, d)
	want := map[string]string{ // org → the start of its problem
		"contoso": "", "fabrikam": "listing refused: svc-build@contoso.com may not list", "northwind": "", "tailspin": "listing refused: no service account may work in tailspin",
	}
	if len(got) != len(want) {
		t.Fatalf("%d listings, want %d", len(got), len(want))
	}
	for _, l := range got {
		if !strings.HasPrefix(l.Problem, want[l.Org]) || (want[l.Org] == "") != (l.Problem == "") {
			t.Errorf("%s: problem %q, want it to start %q", l.Org, l.Problem, want[l.Org])
		}
	}
	if len(got[0].PATs) != 1 || got[0].Account != "svc-build@contoso.com" || !got[2].NotMember {
		t.Errorf("contoso lists %d PATs as %q; northwind not a member: %v", len(got[0].PATs), got[0].Account, got[2].NotMember)
	}
	if l := GatherAccount(context.Background(), nil, alice, d); !strings.HasPrefix(l[0].Problem, "listing refused") {
		t.Errorf("no People: problem %q, want a refusal", l[0].Problem)
	}
}

func (f fakePeople) RevokePersonPAT(context.Context, string, string, string) error { return nil }
