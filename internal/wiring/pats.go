package wiring

import (
	"context"
	"errors"
	"strings"

	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// PATs adapts the typed Azure DevOps client to rotation.PATs.
//
// Decision: one devops.Client for every service account, whose Token option reads the
// call's access token from the context (withAuth). The core passes `auth` per call
// because one process rotates secrets of many accounts; a client per call would rebuild
// the HTTP plumbing each time, and a token field on a shared client would race.
//
// Decision: a call Azure DevOps refuses with 401 and a claims challenge (Continuous
// Access Evaluation: the token was revoked before its expiry) is retried once with a
// token asked for with exactly those claims (WithTokens; the client declares cp1). A
// 401 without a challenge is a refusal and is not retried: no request of patrol's own
// could make Entra issue what the service wants. On the local stack an access token
// expired on the emulated clock, which MSAL cannot see, is answered with a challenge too
// (docs/emulator-fidelity.md D6). Only one retry: a second 401 is a real refusal.
type PATs struct {
	c          *devops.Client
	challenged func(ctx context.Context, refused secret.Value, claims string) (secret.Value, error)
	tokenAdmin func(ctx context.Context, auth secret.Value) (secret.Value, error)
}

var _ rotation.PATs = PATs{}

// NewPATs wraps a client built with TokenFromContext as its Token option.
func NewPATs(c *devops.Client) PATs { return PATs{c: c} }

// WithTokens returns p answering claims challenges with challenged's token and
// revoking other people's PATs with tokenAdmin's (Identities.Challenged and
// Identities.TokenAdmin).
func (p PATs) WithTokens(challenged func(ctx context.Context, refused secret.Value, claims string) (secret.Value, error),
	tokenAdmin func(ctx context.Context, auth secret.Value) (secret.Value, error)) PATs {
	p.challenged, p.tokenAdmin = challenged, tokenAdmin
	return p
}

// call runs f with auth, and once more with a new token when Azure DevOps refused it
// with a claims challenge. When Entra refuses that token (the sessions were revoked
// there too), its sign-in error is the answer, marked rotation.ErrSignInRequired: it
// tells the operator what to do, at whatever step it happened.
func (p PATs) call(ctx context.Context, auth secret.Value, f func(ctx context.Context) error) error {
	err := f(withAuth(ctx, auth))
	var de *devops.Error
	if err == nil || p.challenged == nil || !errors.As(err, &de) || de.Claims == "" {
		return err
	}
	fresh, rerr := p.challenged(ctx, auth, de.Claims)
	var se *identity.SignInError
	if errors.As(rerr, &se) && se.Permanent() {
		return classified{err: rerr, is: rotation.ErrSignInRequired}
	}
	if rerr != nil {
		return rerr
	}
	return f(withAuth(ctx, fresh))
}

type authKey struct{}

func withAuth(ctx context.Context, auth secret.Value) context.Context {
	return context.WithValue(ctx, authKey{}, auth)
}

// TokenFromContext is the devops.Options.Token of the client behind PATs.
func TokenFromContext(ctx context.Context) (string, error) {
	s, ok := ctx.Value(authKey{}).(secret.Value)
	if !ok || s.IsZero() {
		return "", errors.New("no service-account access token for this call")
	}
	return s.Reveal(), nil
}

// Create issues an organization-scoped PAT.
func (p PATs) Create(ctx context.Context, auth secret.Value, req rotation.PATRequest) (rotation.NewPAT, error) {
	var pat devops.PAT
	err := p.call(ctx, auth, func(ctx context.Context) (err error) {
		pat, err = p.c.CreatePAT(ctx, req.Org, devops.CreateRequest{
			DisplayName: req.DisplayName, Scope: strings.Join(req.Scopes, " "), ValidTo: req.ValidTo,
		})
		return err
	})
	if err != nil {
		return rotation.NewPAT{}, err
	}
	return rotation.NewPAT{ID: pat.AuthorizationID, Token: pat.Token, ValidTo: pat.ValidTo.UTC(),
		Scopes: strings.Fields(pat.Scope)}, nil
}

// Revoke revokes one of the caller's PATs; unknown ids are success (the client's rule).
func (p PATs) Revoke(ctx context.Context, auth secret.Value, org, id string) error {
	return p.call(ctx, auth, func(ctx context.Context) error { return p.c.RevokePAT(ctx, org, id) })
}

// RevokeAsAdmin revokes through the token-admin API, with a token for
// vso.tokenadministration (the lifecycle token does not carry it). A refused credential
// there, or an app registration without consent for that permission, means the account
// may not: rotation.ErrNotPermitted.
func (p PATs) RevokeAsAdmin(ctx context.Context, auth secret.Value, org, id string) error {
	if p.tokenAdmin != nil {
		admin, err := p.tokenAdmin(ctx, auth)
		var se *identity.SignInError
		if errors.As(err, &se) && se.Kind == identity.ConsentRequired {
			return classified{err: err, is: rotation.ErrNotPermitted}
		}
		if err != nil {
			return err
		}
		auth = admin
	}
	err := p.call(ctx, auth, func(ctx context.Context) error { return p.c.AdminRevoke(ctx, org, []string{id}) })
	if errors.Is(err, devops.ErrUnauthorized) {
		return classified{err: err, is: rotation.ErrNotPermitted}
	}
	return err
}

// FindByDisplayName lists the caller's active PATs named exactly displayName (the
// client matches prefixes; "patrol s op" must not match "patrol s op2").
func (p PATs) FindByDisplayName(ctx context.Context, auth secret.Value, org, displayName string) ([]rotation.PATInfo, error) {
	var all []devops.PAT
	err := p.call(ctx, auth, func(ctx context.Context) (err error) {
		all, err = p.c.FindByDisplayName(ctx, org, displayName)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []rotation.PATInfo
	for _, x := range all {
		if x.DisplayName == displayName {
			out = append(out, rotation.PATInfo{ID: x.AuthorizationID, DisplayName: x.DisplayName, ValidFrom: x.ValidFrom, ValidTo: x.ValidTo})
		}
	}
	return out, nil
}

// Verify calls connectionData as the PAT and returns Azure DevOps' id of the identity
// it authenticates as. A refusal (401) may mean the PAT has not propagated yet:
// rotation.ErrPATRefused, which the core retries.
//
// Decision: identities are compared by Azure DevOps' own id (Whoami), never by a name
// parsed from the descriptor. The descriptor's form is
// "Microsoft.IdentityModel.Claims.ClaimsIdentity;<tenant>\<sign-in name>", whose sign-in
// name need not be the UPN patrol was given, and a parse that found nothing used to
// skip the check.
func (p PATs) Verify(ctx context.Context, org string, token secret.Value) (rotation.Identity, error) {
	u, err := p.c.VerifyPAT(ctx, org, token)
	if errors.Is(err, devops.ErrUnauthorized) {
		return rotation.Identity{}, classified{err: err, is: rotation.ErrPATRefused}
	}
	if err != nil {
		return rotation.Identity{}, err
	}
	return rotation.Identity{ID: u.ID}, nil
}

// Whoami calls connectionData with the service account's token: the identity its PATs
// must authenticate as.
func (p PATs) Whoami(ctx context.Context, auth secret.Value, org string) (rotation.Identity, error) {
	var u devops.User
	err := p.call(ctx, auth, func(ctx context.Context) (err error) {
		u, err = p.c.Whoami(ctx, org)
		return err
	})
	if err != nil {
		return rotation.Identity{}, err
	}
	return rotation.Identity{ID: u.ID}, nil
}

// classified is err that also matches the core's sentinel `is`, keeping err's text and
// classification.
type classified struct{ err, is error }

func (c classified) Error() string   { return c.err.Error() }
func (c classified) Unwrap() []error { return []error{c.err, c.is} }

// PatrolPATs lists the account's active PATs that patrol created (display names
// starting rotation.DisplayNamePrefix), for the sweep's orphan clean-up.
func (p PATs) PatrolPATs(ctx context.Context, auth secret.Value, org string) ([]rotation.PATInfo, error) {
	var all []devops.PAT
	err := p.call(ctx, auth, func(ctx context.Context) (err error) {
		all, err = p.c.FindByDisplayName(ctx, org, rotation.DisplayNamePrefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]rotation.PATInfo, 0, len(all))
	for _, x := range all {
		out = append(out, rotation.PATInfo{ID: x.AuthorizationID, DisplayName: x.DisplayName, ValidFrom: x.ValidFrom, ValidTo: x.ValidTo})
	}
	return out, nil
}
