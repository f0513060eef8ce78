package wiring

import (
	"context"
	"errors"
	"strings"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// People lists a person's PATs for the account of a person (functionapp.People): a
// token for the listing scopes (Graph read and token administration) of the listing
// account, the Graph users API to find the person's subject descriptor, the token-admin
// API to list. Only active PATs are returned.
//
// A refused credential, or an app registration without consent for those permissions,
// is rotation.ErrNotPermitted: the operator must grant them (docs/offboarding.md).
type People struct {
	PATs       PATs
	Identities Identities
}

// PersonPATs lists the person's active PATs in org as account.
func (p People) PersonPATs(ctx context.Context, account, org string, person contract.Person) ([]contract.AccountPAT, error) {
	tok, err := p.Identities.ListingToken(ctx, account)
	var se *identity.SignInError
	if errors.As(err, &se) && se.Kind == identity.ConsentRequired {
		return nil, classified{err: err, is: rotation.ErrNotPermitted}
	}
	if err != nil {
		return nil, err
	}
	var list []devops.SessionToken
	err = p.PATs.call(ctx, tok, func(ctx context.Context) error {
		u, err := p.findUser(ctx, org, person)
		if err != nil {
			return err
		}
		list, err = p.PATs.c.AdminListUserPATs(ctx, org, u.Descriptor)
		return err
	})
	if errors.Is(err, devops.ErrUnauthorized) {
		return nil, classified{err: err, is: rotation.ErrNotPermitted}
	}
	if err != nil {
		return nil, err
	}
	out := []contract.AccountPAT{}
	for _, st := range list {
		if !st.IsValid {
			continue
		}
		out = append(out, contract.AccountPAT{PATID: strings.ToLower(st.AuthorizationID), DisplayName: st.DisplayName, Org: org,
			Scopes: strings.Fields(st.Scope), Expires: st.ValidTo.UTC()})
	}
	return out, nil
}

// findUser looks the person up by object id (it cannot be renamed), then by UPN.
func (p People) findUser(ctx context.Context, org string, person contract.Person) (devops.GraphUser, error) {
	var err error = rotation.ErrNotFound
	for _, key := range []string{person.ObjectID, person.UPN} {
		if key == "" {
			continue
		}
		var u devops.GraphUser
		if u, err = p.PATs.c.FindUser(ctx, org, key); !errors.Is(err, rotation.ErrNotFound) {
			return u, err
		}
	}
	return devops.GraphUser{}, err
}

// RevokePersonPAT revokes another user's PAT in org as account, through token
// administration (PATs.RevokeAsAdmin asks for its token).
func (p People) RevokePersonPAT(ctx context.Context, account, org, patID string) error {
	tok, err := p.Identities.AccessToken(ctx, account)
	if err != nil {
		return err
	}
	return p.PATs.RevokeAsAdmin(ctx, tok, org, patID)
}
