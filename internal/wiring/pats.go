package wiring

import (
	"context"
	"errors"
	"strings"

	"github.com/patrol-dev/patrol/internal/devops"
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
// Decision: a call Azure DevOps refuses with 401 is retried once with a token fetched
// past MSAL's cache (WithRefresh): a token can be revoked before its expiry (Continuous
// Access Evaluation), and on the local stack it expires on the emulated clock, which
// MSAL cannot see. Only one retry: a second 401 is a real refusal.
type PATs struct {
	c       *devops.Client
	refresh func(ctx context.Context, stale secret.Value) (secret.Value, error)
}

var _ rotation.PATs = PATs{}

// NewPATs wraps a client built with TokenFromContext as its Token option.
func NewPATs(c *devops.Client) PATs { return PATs{c: c} }

// WithRefresh returns p retrying a refused call once with refresh's token.
func (p PATs) WithRefresh(refresh func(ctx context.Context, stale secret.Value) (secret.Value, error)) PATs {
	p.refresh = refresh
	return p
}

// call runs f with auth, and once more with a fresh token when Azure DevOps refused it.
func (p PATs) call(ctx context.Context, auth secret.Value, f func(ctx context.Context) error) error {
	err := f(withAuth(ctx, auth))
	if err == nil || p.refresh == nil || !errors.Is(err, devops.ErrUnauthorized) {
		return err
	}
	fresh, rerr := p.refresh(ctx, auth)
	if rerr != nil {
		return err
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

// RevokeAsAdmin revokes through the token-admin API. A refused credential there means
// the account lacks the right: rotation.ErrNotPermitted.
func (p PATs) RevokeAsAdmin(ctx context.Context, auth secret.Value, org, id string) error {
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

// Verify calls connectionData as the PAT. Azure DevOps does not return a UPN field;
// for Entra users the identity descriptor is
// "Microsoft.IdentityModel.Claims.ClaimsIdentity;<tenant>\<upn>", so the UPN is read
// from its end (empty when it has another shape, and the core then skips the check).
func (p PATs) Verify(ctx context.Context, org string, token secret.Value) (rotation.Identity, error) {
	u, err := p.c.VerifyPAT(ctx, org, token)
	if err != nil {
		return rotation.Identity{}, err
	}
	return rotation.Identity{ID: u.ID, UPN: upnFromDescriptor(u.Descriptor)}, nil
}

func upnFromDescriptor(d string) string {
	_, rest, ok := strings.Cut(d, ";")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(rest, '\\'); i >= 0 {
		rest = rest[i+1:]
	}
	if strings.Count(rest, "@") != 1 || strings.ContainsAny(rest, " ;") {
		return ""
	}
	return rest
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
