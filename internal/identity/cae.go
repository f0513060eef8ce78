package identity

import (
	"context"
	"fmt"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// clientCapabilities declares that patrol handles claims challenges: "An application
// will not receive claims challenges … unless it declares it is ready to handle them
// with the "cp1" capability" (https://learn.microsoft.com/entra/identity-platform/claims-challenge).
// Azure DevOps enforces Continuous Access Evaluation: a token revoked before its expiry
// (sessions revoked, account disabled, a location policy) gets a 401 carrying a claims
// challenge, and the client must pass those claims to Entra for a new token.
var clientCapabilities = []string{"cp1"}

// TokenWithClaims returns a new token for the account with scopes (nil: Options.Scopes),
// asking Entra for claims: the JSON of a resource's claims challenge. MSAL then skips
// its cached access token and redeems the refresh token with the claims. When Entra
// refuses (the sessions were revoked in Entra too), the *SignInError says to sign in
// again. Like Token, it reloads a cache that changed in the vault after invalid_grant.
func (s *ServiceAccounts) TokenWithClaims(ctx context.Context, upn string, scopes []string, claims string) (Token, error) {
	return s.againIfReloaded(ctx, upn, func(ctx context.Context, upn string) (Token, error) {
		return s.silent(ctx, upn, scopes, claims)
	})
}

// TokenAdmin returns a token for the token administration API (TokenAdminScopes),
// redeemed from the account's sign-in. Without consent for vso.tokenadministration it
// is a *SignInError of kind ConsentRequired.
func (s *ServiceAccounts) TokenAdmin(ctx context.Context, upn string) (Token, error) {
	return s.againIfReloaded(ctx, upn, func(ctx context.Context, upn string) (Token, error) {
		return s.silent(ctx, upn, TokenAdminScopes, "")
	})
}

// ListingToken returns a token to list a person's PATs (ListingScopes), redeemed from
// the account's sign-in. Without consent for those permissions it is a *SignInError of
// kind ConsentRequired.
func (s *ServiceAccounts) ListingToken(ctx context.Context, upn string) (Token, error) {
	return s.silent(ctx, upn, ListingScopes, "")
}

// silent gets a token from the account's cache or refresh token, with optional claims.
func (s *ServiceAccounts) silent(ctx context.Context, upn string, scopes []string, claims string) (Token, error) {
	if len(scopes) == 0 {
		scopes = s.opts.Scopes
	}
	a, err := s.account(upn)
	if err != nil {
		return Token{}, err
	}
	accts, err := a.client.Accounts(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("identity: read cache of %s: %w", upn, err)
	}
	for _, acct := range accts {
		if !strings.EqualFold(acct.PreferredUsername, upn) {
			continue
		}
		opts := []public.AcquireSilentOption{public.WithSilentAccount(acct)}
		if claims != "" {
			opts = append(opts, public.WithClaims(claims))
		}
		res, err := a.client.AcquireTokenSilent(ctx, scopes, opts...)
		if err != nil {
			return Token{}, s.signInError(upn, scopes, err)
		}
		return Token{value: res.AccessToken, ExpiresOn: res.ExpiresOn}, nil
	}
	return Token{}, &SignInError{Account: upn, Kind: NotSignedIn}
}

// signInError is classify, naming the app registration and the permissions asked for
// when consent is missing.
func (s *ServiceAccounts) signInError(upn string, scopes []string, err error) *SignInError {
	se := classify(upn, err)
	if se.Kind == ConsentRequired {
		se.Detail = fmt.Sprintf("app registration %s has no consent for %s", s.opts.ClientID, permissionNames(scopes))
	}
	return se
}

// permissionNames turns "499b84ac-…/vso.pats" scopes into "vso.pats, vso.pats_manage".
func permissionNames(scopes []string) string {
	names := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		names = append(names, sc[strings.LastIndex(sc, "/")+1:])
	}
	return strings.Join(names, ", ")
}
