package wiring

import (
	"context"

	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// Identities adapts identity.ServiceAccounts to rotation.Identities. Sign-in errors
// (*identity.SignInError) pass through unchanged: they are permanent when an operator
// must act and their message names the account and `patrol login`.
type Identities struct{ sa *identity.ServiceAccounts }

var _ rotation.Identities = Identities{}

// NewIdentities wraps sa.
func NewIdentities(sa *identity.ServiceAccounts) Identities { return Identities{sa: sa} }

// AccessToken returns an Azure DevOps access token for the account.
func (i Identities) AccessToken(ctx context.Context, account string) (rotation.Secret, error) {
	tok, err := i.sa.Token(ctx, account)
	if err != nil {
		return rotation.Secret{}, err
	}
	return rotation.NewSecret(tok.Value()), nil
}
