package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// LoginInBrowser signs the service account in through a web browser: the authorization
// code flow with PKCE on a loopback redirect (http://localhost:<port>), which tenants
// that block the device-code flow with Conditional Access still allow. open is given the
// sign-in URL; nil opens the system browser. The account is passed as a login hint, and a
// sign-in completed as anyone else is refused, as Login refuses it.
func (s *ServiceAccounts) LoginInBrowser(ctx context.Context, upn string, open func(url string) error) error {
	a, err := s.account(upn)
	if err != nil {
		return err
	}
	defer a.cache.signingIn()() // a sign-in replaces whatever cache is stored (cache.go)
	opts := []public.AcquireInteractiveOption{public.WithLoginHint(upn)}
	if open != nil {
		opts = append(opts, public.WithOpenURL(open))
	}
	res, err := a.client.AcquireTokenInteractive(ctx, s.opts.Scopes, opts...)
	if err != nil {
		return browserSignInError(upn, err)
	}
	return requireAccount(ctx, a, upn, res.Account)
}

// requireAccount refuses a sign-in completed as another user than upn, which would
// otherwise silently issue PATs under the wrong account. The other user's tokens are
// removed from the account's cache again.
func requireAccount(ctx context.Context, a *account, upn string, got public.Account) error {
	if strings.EqualFold(got.PreferredUsername, upn) {
		return nil
	}
	_ = a.client.RemoveAccount(ctx, got)
	return &SignInError{Account: upn, Kind: WrongAccount,
		Detail: "the sign-in completed as " + got.PreferredUsername + ", so its tokens were discarded"}
}

// browserSignInError classifies a failed browser sign-in. Entra's token endpoint answers
// are classified like every other; a failure the browser reported to MSAL's loopback
// listener (the person cancelled, Entra refused the request) carries only Entra's
// error_description, of which just the AADSTS code is kept.
func browserSignInError(upn string, err error) error {
	var ce msalerrors.CallErr
	if errors.As(err, &ce) {
		return classify(upn, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("identity: browser sign-in of %s: %w", upn, err)
	}
	out := &SignInError{Account: upn, Kind: Other, Detail: "the browser sign-in was cancelled or refused"}
	if codes := codesIn(err.Error()); len(codes) > 0 {
		out.Code = codes[0]
	}
	return out
}
