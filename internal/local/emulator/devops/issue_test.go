package devops

import (
	"errors"
	"testing"
	"time"
)

// A PAT issued in process works like one created over the wire: it authenticates its
// owner in its organization only, and the owner's active PATs list it. Seeding must
// not be a shortcut around what patrol later sees.
func TestIssuedPATWorksLikeACreatedOne(t *testing.T) {
	e := newEnv(t, RateLimit{})
	exp := e.clock.Now().Add(30 * 24 * time.Hour)
	info, value, err := e.srv.IssuePAT("fabrikam", "alice@contoso.test", "seeded", "vso.code", exp)
	if err != nil {
		t.Fatal(err)
	}
	if info.OwnerUPN != "alice@contoso.test" || info.Org != "fabrikam" || info.Status != StatusActive || !info.ValidTo.Equal(exp) {
		t.Errorf("issued %+v", info)
	}
	if u, err := e.srv.ValidateToken("fabrikam", value); err != nil || u.ObjectID != aliceOID {
		t.Errorf("the issued value authenticates %q, %v; want alice", u.ObjectID, err)
	}
	if _, err := e.srv.ValidateToken("contoso", value); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("the value works in another organization: %v", err)
	}
	if got := e.srv.ActivePATs("fabrikam", aliceOID); len(got) != 1 || got[0].AuthorizationID != info.AuthorizationID {
		t.Errorf("alice's active PATs: %v", got)
	}
	if n := e.srv.Journal().Count(OpCreatePat); n != 0 {
		t.Errorf("issuing in process journaled %d CreatePat requests", n)
	}
}

func TestIssuePATRefuses(t *testing.T) {
	e := newEnv(t, RateLimit{})
	future := e.clock.Now().Add(time.Hour)
	for name, c := range map[string]struct {
		org, user string
		validTo   time.Time
		want      error
	}{
		"an unknown organization": {"nowhere", "alice@contoso.test", future, ErrUnknownOrganization},
		"a user who is no member": {"contoso", "mallory@contoso.test", future, ErrUnknownUser},
		"a validTo in the past":   {"contoso", "alice@contoso.test", e.clock.Now().Add(-time.Hour), nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := e.srv.IssuePAT(c.org, c.user, "x", "vso.code", c.validTo)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
}
