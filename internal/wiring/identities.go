package wiring

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"

	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// Identities adapts identity.ServiceAccounts to rotation.Identities. Sign-in errors
// (*identity.SignInError) pass through unchanged: they are permanent when an operator
// must act and their message names the account and `patrol login`.
//
// It remembers which account each token it handed out belongs to, so PATs can ask for
// a fresh one when Azure DevOps refuses a token MSAL's cache still thinks valid.
type Identities struct {
	sa     *identity.ServiceAccounts
	mu     *sync.Mutex
	owners map[[32]byte]string // sha256 of a token → its account
}

var _ rotation.Identities = Identities{}

// NewIdentities wraps sa.
func NewIdentities(sa *identity.ServiceAccounts) Identities {
	return Identities{sa: sa, mu: &sync.Mutex{}, owners: map[[32]byte]string{}}
}

// AccessToken returns an Azure DevOps access token for the account.
func (i Identities) AccessToken(ctx context.Context, account string) (secret.Value, error) {
	tok, err := i.sa.Token(ctx, account)
	if err != nil {
		return secret.Value{}, err
	}
	return i.remember(account, tok.Value()), nil
}

// Refresh returns a fresh token for the account the stale one was issued to.
func (i Identities) Refresh(ctx context.Context, stale secret.Value) (secret.Value, error) {
	i.mu.Lock()
	account, ok := i.owners[sha256.Sum256([]byte(stale.Reveal()))]
	i.mu.Unlock()
	if !ok {
		return secret.Value{}, errors.New("wiring: refresh: the refused token was not issued here")
	}
	tok, err := i.sa.Refresh(ctx, account)
	if err != nil {
		return secret.Value{}, err
	}
	return i.remember(account, tok.Value()), nil
}

func (i Identities) remember(account, token string) secret.Value {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.owners) > 1024 { // tokens live an hour; forget them all rather than track age
		clear(i.owners)
	}
	i.owners[sha256.Sum256([]byte(token))] = account
	return secret.New(token)
}
