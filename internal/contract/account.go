package contract

import (
	"strings"
	"time"
)

// PATClass is how patrol stands toward one PAT a person holds.
type PATClass string

// PAT classes of a person's account.
const (
	// PATManaged: a managed secret holds it (or held it until patrol re-issued it under
	// the secret's service account); patrol replaces it and revokes it after the grace.
	PATManaged PATClass = "managed"
	// PATServiceAccount: a managed secret holds it and the secret's service account is
	// the person; re-issuing under that account would not help, so a person must act.
	PATServiceAccount PATClass = "service-account"
	// PATUnmanaged: no managed secret holds it; patrol did not make it and cannot replace
	// it. Whatever uses it breaks when the person's account is disabled.
	PATUnmanaged PATClass = "unmanaged"
)

// PersonAccount is the account of every active PAT a person holds in the organizations
// patrol may work in (PATROL_ALLOWED_ORGS), and what patrol did or will do about each:
// the body of GET /api/offboarding/{person} and what `patrol offboard --dry-run`
// prints. It never holds a token value.
type PersonAccount struct {
	Person Person `json:"person"`
	// EventID is the HR event the account was built for; empty when asked for live.
	EventID       string       `json:"eventId,omitempty"`
	Time          time.Time    `json:"time"`
	Organizations []OrgAccount `json:"organizations"`
}

// OrgAccount is one organization's part of a PersonAccount.
type OrgAccount struct {
	Org string `json:"org"`
	// ListedBy is the service account whose token-admin listing this is.
	ListedBy string `json:"listedBy,omitempty"`
	// NotMember: the person is not a user of the organization (Graph has no such user).
	NotMember bool `json:"notMember,omitempty"`
	// Problem, when set, is why the person's PATs could not be listed here ("listing
	// refused: …"): the organization's PATs are then unknown, not absent.
	Problem string       `json:"problem,omitempty"`
	PATs    []AccountPAT `json:"pats"`
	// Omitted counts this organization's PATs left out of PATs by Trimmed (an outcome
	// on pat-events must fit one Service Bus message); the full list is in the log and
	// at GET /api/offboarding/{person}.
	Omitted int `json:"omitted,omitempty"`
}

// MaxReportedPATs bounds the PATs an offboarding-report outcome lists. Service Bus
// refuses a message over 256 KB (Standard tier); a PAT entry is a few hundred bytes, so
// 200 of them leave room for the rest of the outcome.
const MaxReportedPATs = 200

// Trimmed returns the account with at most max PATs listed in all, the ones that need a
// person first: held by a secret whose service account is leaving, then unmanaged,
// then managed (re-issued by patrol). Each organization's Omitted counts what it
// leaves out; the organizations themselves, and their problems, are all kept.
func (a PersonAccount) Trimmed(max int) PersonAccount {
	total := 0
	for _, o := range a.Organizations {
		total += len(o.PATs)
	}
	if total <= max {
		return a
	}
	out := a
	out.Organizations = make([]OrgAccount, len(a.Organizations))
	for i, o := range a.Organizations {
		out.Organizations[i] = o
		out.Organizations[i].PATs = nil
		out.Organizations[i].Omitted = o.Omitted + len(o.PATs)
	}
	left := max
	for _, class := range []PATClass{PATServiceAccount, PATUnmanaged, PATManaged} {
		for i, o := range a.Organizations {
			for _, p := range o.PATs {
				if p.Class != class || left == 0 {
					continue
				}
				out.Organizations[i].PATs = append(out.Organizations[i].PATs, p)
				out.Organizations[i].Omitted--
				left--
			}
		}
	}
	for i := range out.Organizations {
		if out.Organizations[i].PATs == nil {
			out.Organizations[i].PATs = []AccountPAT{}
		}
	}
	return out
}

// AccountPAT is one active PAT of the person.
type AccountPAT struct {
	PATID       string    `json:"patId"`
	DisplayName string    `json:"displayName"`
	Org         string    `json:"org"`
	Scopes      []string  `json:"scopes,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
	Class       PATClass  `json:"class"`
	// Secret and ServiceAccount name the managed secret that holds it (managed,
	// service-account).
	Secret         string `json:"secret,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// NewPATID is the PAT that replaced it, once patrol re-issued the secret.
	NewPATID string `json:"newPatId,omitempty"`
	// RevokeAt is when patrol revokes it (the re-issue's time plus the secret's grace).
	RevokeAt time.Time `json:"revokeAt,omitzero"`
	// Action is what patrol did or will do, for people.
	Action string `json:"action"`
}

// ParsePerson reads one way of naming a person — an Entra object id (a GUID) or a UPN —
// as GET /api/offboarding/{person} takes it.
func ParsePerson(doc, field, v string) (Person, error) {
	v = strings.TrimSpace(v)
	if strings.Contains(v, "@") {
		if err := checkUPN(doc, field, v); err != nil {
			return Person{}, err
		}
		return Person{UPN: v}, nil
	}
	id, err := canonicalGUID(doc, field, v)
	if err != nil {
		return Person{}, Malformed(doc, field, "%q is neither a user principal name (name@domain) nor an Entra object id (a GUID)", Clip(v))
	}
	return Person{ObjectID: id}, nil
}
