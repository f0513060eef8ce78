package wiring

import (
	"context"
	"errors"
	"strings"

	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// PATs adapts the typed Azure DevOps client to rotation.PATs.
//
// Decision: one devops.Client for every service account, whose Token option reads the
// call's access token from the context (withAuth). The core passes `auth` per call
// because one process rotates secrets of many accounts; a client per call would rebuild
// the HTTP plumbing each time, and a token field on a shared client would race.
//
// Decision: the devops client is built without retries of its own (MaxAttempts 1): the
// core retries every step, cleaning up leftovers of a lost create first, so a second
// retry layer would only multiply attempts and waiting.
type PATs struct {
	c *devops.Client
}

var _ rotation.PATs = PATs{}

// NewPATs wraps a client built with TokenFromContext as its Token option.
func NewPATs(c *devops.Client) PATs { return PATs{c: c} }

type authKey struct{}

func withAuth(ctx context.Context, auth rotation.Secret) context.Context {
	return context.WithValue(ctx, authKey{}, auth)
}

// TokenFromContext is the devops.Options.Token of the client behind PATs.
func TokenFromContext(ctx context.Context) (string, error) {
	s, ok := ctx.Value(authKey{}).(rotation.Secret)
	if !ok || s.IsZero() {
		return "", errors.New("no service-account access token for this call")
	}
	return s.Reveal(), nil
}

// Create issues an organization-scoped PAT.
func (p PATs) Create(ctx context.Context, auth rotation.Secret, req rotation.PATRequest) (rotation.NewPAT, error) {
	pat, err := p.c.CreatePAT(withAuth(ctx, auth), req.Org, devops.CreateRequest{
		DisplayName: req.DisplayName, Scope: strings.Join(req.Scopes, " "), ValidTo: req.ValidTo,
	})
	if err != nil {
		return rotation.NewPAT{}, classify(err)
	}
	return rotation.NewPAT{ID: pat.AuthorizationID, Token: rotation.NewSecret(pat.Token.Reveal()), ValidTo: pat.ValidTo.UTC(),
		Scopes: strings.Fields(pat.Scope)}, nil
}

// Revoke revokes one of the caller's PATs; unknown ids are success (the client's rule).
func (p PATs) Revoke(ctx context.Context, auth rotation.Secret, org, id string) error {
	return classify(p.c.RevokePAT(withAuth(ctx, auth), org, id))
}

// RevokeAsAdmin revokes through the token-admin API. A refused credential there means
// the account lacks the right: rotation.ErrNotPermitted.
func (p PATs) RevokeAsAdmin(ctx context.Context, auth rotation.Secret, org, id string) error {
	err := p.c.AdminRevoke(withAuth(ctx, auth), org, []string{id})
	if errors.Is(err, devops.ErrUnauthorized) {
		return classified{err: err, is: rotation.ErrNotPermitted}
	}
	return classify(err)
}

// FindByDisplayName lists the caller's active PATs named exactly displayName (the
// client matches prefixes; "patrol s op" must not match "patrol s op2").
func (p PATs) FindByDisplayName(ctx context.Context, auth rotation.Secret, org, displayName string) ([]rotation.PATInfo, error) {
	all, err := p.c.FindByDisplayName(withAuth(ctx, auth), org, displayName)
	if err != nil {
		return nil, classify(err)
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
func (p PATs) Verify(ctx context.Context, org string, token rotation.Secret) (rotation.Identity, error) {
	u, err := p.c.VerifyPAT(ctx, org, devops.NewSecret(token.Reveal()))
	if err != nil {
		return rotation.Identity{}, classify(err)
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

// classify adds the core's sentinel to a devops error; Permanent and RetryAfter come
// from *devops.Error itself.
func classify(err error) error {
	if errors.Is(err, devops.ErrNotFound) {
		return classified{err: err, is: rotation.ErrNotFound}
	}
	return err
}

// classified is err that also matches the core's sentinel `is`, keeping err's text and
// classification.
type classified struct{ err, is error }

func (c classified) Error() string   { return c.err.Error() }
func (c classified) Unwrap() []error { return []error{c.err, c.is} }

// PatrolPATs lists the account's active PATs that patrol created (display names
// starting rotation.DisplayNamePrefix), for the sweep's orphan clean-up.
func (p PATs) PatrolPATs(ctx context.Context, auth rotation.Secret, org string) ([]rotation.PATInfo, error) {
	all, err := p.c.FindByDisplayName(withAuth(ctx, auth), org, rotation.DisplayNamePrefix)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]rotation.PATInfo, 0, len(all))
	for _, x := range all {
		out = append(out, rotation.PATInfo{ID: x.AuthorizationID, DisplayName: x.DisplayName, ValidFrom: x.ValidFrom, ValidTo: x.ValidTo})
	}
	return out, nil
}
