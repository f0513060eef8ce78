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
// It remembers which account (and which scopes) each token it handed out belongs to, so
// PATs can answer a claims challenge for it and ask for the same account's token
// administration token.
type Identities struct {
	sa     *identity.ServiceAccounts
	mu     *sync.Mutex
	owners map[[32]byte]issued // sha256 of a token → whose and what for
}

type issued struct {
	account string
	scopes  []string // nil: the default (PAT lifecycle) scopes
}

var _ rotation.Identities = Identities{}

// NewIdentities wraps sa.
func NewIdentities(sa *identity.ServiceAccounts) Identities {
	return Identities{sa: sa, mu: &sync.Mutex{}, owners: map[[32]byte]issued{}}
}

// AccessToken returns an Azure DevOps access token for the account.
func (i Identities) AccessToken(ctx context.Context, account string) (secret.Value, error) {
	tok, err := i.sa.Token(ctx, account)
	if err != nil {
		return secret.Value{}, err
	}
	return i.remember(issued{account: account}, tok.Value()), nil
}

// Challenged answers a claims challenge Azure DevOps sent for the refused token: a new
// token for the same account and scopes, asked for with the challenge's claims.
func (i Identities) Challenged(ctx context.Context, refused secret.Value, claims string) (secret.Value, error) {
	who, err := i.owner(refused)
	if err != nil {
		return secret.Value{}, err
	}
	tok, err := i.sa.TokenWithClaims(ctx, who.account, who.scopes, claims)
	if err != nil {
		return secret.Value{}, err
	}
	return i.remember(who, tok.Value()), nil
}

// TokenAdmin returns a token administration token for the account auth was issued to.
func (i Identities) TokenAdmin(ctx context.Context, auth secret.Value) (secret.Value, error) {
	who, err := i.owner(auth)
	if err != nil {
		return secret.Value{}, err
	}
	tok, err := i.sa.TokenAdmin(ctx, who.account)
	if err != nil {
		return secret.Value{}, err
	}
	return i.remember(issued{account: who.account, scopes: identity.TokenAdminScopes}, tok.Value()), nil
}

// ListingToken returns a token for the account to list a person's PATs (Graph and
// token administration).
func (i Identities) ListingToken(ctx context.Context, account string) (secret.Value, error) {
	tok, err := i.sa.ListingToken(ctx, account)
	if err != nil {
		return secret.Value{}, err
	}
	return i.remember(issued{account: account, scopes: identity.ListingScopes}, tok.Value()), nil
}

func (i Identities) owner(tok secret.Value) (issued, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	who, ok := i.owners[sha256.Sum256([]byte(tok.Reveal()))]
	if !ok {
		return issued{}, errors.New("wiring: the token was not issued here")
	}
	return who, nil
}

func (i Identities) remember(who issued, token string) secret.Value {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.owners) > 1024 { // tokens live an hour; forget them all rather than track age
		clear(i.owners)
	}
	i.owners[sha256.Sum256([]byte(token))] = who
	return secret.New(token)
}
