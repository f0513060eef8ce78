package functionapp

// This file builds the account of a person (docs/offboarding.md "The account of a
// person"): every active PAT the person holds in the organizations patrol may work in,
// and what patrol did or will do about each. AccountOf gathers, ClassifyAccount decides
// (pure, with now), and the callers publish or answer it.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// People lists a person's active PATs in one organization, signed in as account: the
// Graph users API resolves the person to a subject descriptor, the token-admin API
// lists (the wiring adapter). The PATs come back with PATID, DisplayName, Org, Scopes
// and Expires; Class and the rest are ClassifyAccount's. rotation.ErrNotFound: the
// person is not a user of the organization. rotation.ErrNotPermitted: the account may
// not list there (no consent for vso.tokenadministration and vso.graph, or not a
// Project Collection Administrator).
// RevokePersonPAT revokes one PAT of another user in org through token administration,
// signed in as account; an unknown id is success.
type People interface {
	PersonPATs(ctx context.Context, account, org string, person contract.Person) ([]contract.AccountPAT, error)
	RevokePersonPAT(ctx context.Context, account, org, patID string) error
}

// OrgListing is what gathering found in one organization.
type OrgListing struct {
	Org, Account string
	NotMember    bool
	// Problem is why nothing could be listed ("listing refused: …"), or empty.
	Problem string
	PATs    []contract.AccountPAT
}

// ListingAccount is the service account that lists a person's PATs in org: the default
// service account (PATROL_DEFAULT_SERVICE_ACCOUNT) when the bounds let it work there,
// else the first, alphabetically, of PATROL_ALLOWED_SERVICE_ACCOUNTS that may. Empty:
// none may.
func ListingAccount(org string, d rotation.Defaults) string {
	may := func(account string) bool {
		orgs, ok := d.Bounds.ServiceAccounts[strings.ToLower(account)]
		return ok && (len(orgs) == 0 || slices.Contains(orgs, strings.ToLower(org)))
	}
	if d.ServiceAccount != "" && may(d.ServiceAccount) {
		return strings.ToLower(d.ServiceAccount)
	}
	for _, a := range slices.Sorted(maps.Keys(d.Bounds.ServiceAccounts)) {
		if may(a) {
			return a
		}
	}
	return ""
}

// GatherAccount lists the person's PATs in every organization patrol may work in
// (PATROL_ALLOWED_ORGS). A refusal or failure in one organization is that
// organization's Problem, never an empty list.
func GatherAccount(ctx context.Context, people People, person contract.Person, d rotation.Defaults) []OrgListing {
	orgs := slices.Sorted(slices.Values(d.Bounds.Orgs))
	out := make([]OrgListing, 0, len(orgs))
	for _, org := range orgs {
		l := OrgListing{Org: org, Account: ListingAccount(org, d)}
		var err error
		switch {
		case people == nil:
			l.Problem = "listing refused: this instance has no Azure DevOps client to list with"
		case l.Account == "":
			l.Problem = fmt.Sprintf("listing refused: no service account may work in %s (PATROL_ALLOWED_SERVICE_ACCOUNTS, PATROL_DEFAULT_SERVICE_ACCOUNT)", org)
		default:
			l.PATs, err = people.PersonPATs(ctx, l.Account, org, person)
		}
		switch {
		case err == nil:
		case errors.Is(err, rotation.ErrNotFound):
			l.NotMember = true
		case errors.Is(err, rotation.ErrNotPermitted):
			l.Problem = fmt.Sprintf("listing refused: %s may not list other people's PATs in %s (it needs consent for vso.tokenadministration and vso.graph, and the Project Collection Administrator role): %v", l.Account, org, err)
		default:
			l.Problem = fmt.Sprintf("listing failed: %v", err)
		}
		out = append(out, l)
	}
	return out
}

// held is what a managed secret's current version says about one PAT id.
type held struct {
	secret, account string
	replacedBy      string        // the current PAT, when this one was replaced
	created         time.Time     // when the current version was written
	grace           time.Duration // the secret's grace
}

// ClassifyAccount decides what each listed PAT is (contract.PATClass) and what patrol
// did or will do about it, from the managed secrets' current versions: a PAT a
// version holds (patrol-pat-id) is managed, or service-account when the secret's
// service account is the person; one a version replaced (patrol-previous-pat-id) is
// managed and re-issued, revoked at the version's time plus the grace; any other is
// unmanaged.
func ClassifyAccount(person contract.Person, eventID string, listings []OrgListing, versions []rotation.Version, d rotation.Defaults, now time.Time) contract.PersonAccount {
	who := rotation.Person{UPN: person.UPN, ObjectID: person.ObjectID}
	byID := map[string]held{}
	for _, v := range versions {
		if !rotation.IsManaged(v.Tags) {
			continue
		}
		h := held{secret: v.Name, created: v.Created, grace: d.Grace, account: strings.TrimSpace(v.Tags[rotation.TagServiceAccount])}
		if p, err := rotation.ParsePolicy(v.Tags, d); err == nil {
			h.account, h.grace = p.ServiceAccount, p.Grace
		} else if h.account == "" {
			h.account = d.ServiceAccount
		}
		cur := strings.ToLower(strings.TrimSpace(v.Tags[rotation.TagPATID]))
		if cur != "" {
			byID[cur] = h
		}
		if prev := strings.ToLower(strings.TrimSpace(v.Tags[rotation.TagPreviousPATID])); prev != "" {
			r := h
			r.replacedBy = cur
			byID[prev] = r
		}
	}
	acc := contract.PersonAccount{Person: person, EventID: eventID, Time: now, Organizations: []contract.OrgAccount{}}
	for _, l := range listings {
		oa := contract.OrgAccount{Org: l.Org, ListedBy: l.Account, NotMember: l.NotMember, Problem: l.Problem, PATs: []contract.AccountPAT{}}
		for _, p := range l.PATs {
			h, ok := byID[strings.ToLower(p.PATID)]
			switch {
			case !ok:
				p.Class = contract.PATUnmanaged
				p.Action = "report only: no secret patrol manages holds it; whatever uses it stops working when the account is disabled"
			case h.replacedBy != "":
				p.Class, p.Secret, p.ServiceAccount, p.NewPATID = contract.PATManaged, h.secret, h.account, h.replacedBy
				p.RevokeAt = h.created.Add(h.grace).UTC()
				p.Action = fmt.Sprintf("re-issued under %s as %s; revoked at %s", h.account, h.replacedBy, p.RevokeAt.Format(time.RFC3339))
			case who.Is(h.account):
				p.Class, p.Secret, p.ServiceAccount = contract.PATServiceAccount, h.secret, h.account
				p.Action = fmt.Sprintf("needs attention: the service account of %s is this person; set %s to a non-personal account, then rotate", h.secret, rotation.TagServiceAccount)
			case eventID != "":
				p.Class, p.Secret, p.ServiceAccount = contract.PATManaged, h.secret, h.account
				p.Action = fmt.Sprintf("re-issue under %s queued; this PAT is revoked %s after it", h.account, h.grace)
			default:
				p.Class, p.Secret, p.ServiceAccount = contract.PATManaged, h.secret, h.account
				p.Action = fmt.Sprintf("re-issue under %s on offboarding, then revoke this PAT %s later", h.account, h.grace)
			}
			oa.PATs = append(oa.PATs, p)
		}
		slices.SortFunc(oa.PATs, func(a, b contract.AccountPAT) int {
			return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.Secret, b.Secret), cmp.Compare(a.DisplayName, b.DisplayName), cmp.Compare(a.PATID, b.PATID))
		})
		acc.Organizations = append(acc.Organizations, oa)
	}
	return acc
}

// Account builds the account of a person now (BuildAccount), saying what an
// offboarding would do with the unmanaged PATs under this instance's
// PATROL_OFFBOARDING_UNMANAGED (OffboardingReport).
func (a *App) Account(ctx context.Context, person contract.Person) (contract.PersonAccount, error) {
	acc, err := BuildAccount(ctx, a.o.Inventory, a.o.People, person, "", a.o.Defaults, a.now())
	if err != nil {
		return acc, err
	}
	acc, _ = ApplyUnmanaged(acc, a.o.Unmanaged, a.o.Defaults.Grace, a.now())
	return acc, nil
}

// BuildAccount gathers and classifies the account of a person: the managed secrets from
// the vault, the person's PATs from Azure DevOps. Only a failure to read the vault is
// an error; each organization says itself why it could not be listed. It keeps nothing:
// every instance, and the operator's CLI, answers alike.
func BuildAccount(ctx context.Context, inv Inventory, people People, person contract.Person, eventID string, d rotation.Defaults, now time.Time) (contract.PersonAccount, error) {
	versions, err := inv.ListManaged(ctx)
	if err != nil {
		return contract.PersonAccount{}, fmt.Errorf("functionapp: list managed secrets: %w", err)
	}
	listings := GatherAccount(ctx, people, person, d)
	return ClassifyAccount(person, eventID, listings, versions, d, now), nil
}
