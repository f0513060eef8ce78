package entra

import (
	"fmt"
	"slices"
	"strings"
)

// Consent is what the tenant consented an app registration may do on users' behalf:
// for each resource (as scopes name it: "499b84ac-1321-427f-aa17-267ca6975798",
// "https://vault.azure.net"), the delegated permissions granted ("vso.pats"). It is the
// emulator's oauth2PermissionGrant with consentType AllPrincipals (admin consent); the
// emulator models no per-user consent and no consent prompt.
//
// Entra's rules (docs/emulator-fidelity.md 2.1, 2.2): resource/.default yields exactly
// what was consented for that resource and fails with AADSTS65001 when nothing was; an
// explicit permission that was not consented fails with AADSTS65001 (invalid_grant,
// suberror consent_required); .default cannot be combined with explicit permissions.
type Consent map[string][]string

// scopesFor returns the permissions consented for resource (compared as Entra compares
// resource identifiers: case-insensitively, without a trailing slash).
func (c Consent) scopesFor(resource string) []string {
	want := normalizeResource(resource)
	for r, scopes := range c {
		if normalizeResource(r) == want {
			return scopes
		}
	}
	return nil
}

func normalizeResource(r string) string { return strings.TrimSuffix(strings.ToLower(r), "/") }

func (c Consent) clone() Consent {
	if c == nil {
		return nil
	}
	out := make(Consent, len(c))
	for r, s := range c {
		out[r] = slices.Clone(s)
	}
	return out
}

// CodeConsentRequired is AADSTS65001 DelegationDoesNotExist (invalid_grant, suberror
// consent_required).
const CodeConsentRequired = 65001

func consentRequired(app *AppRegistration, resource string) *aadError {
	e := invalidGrant(CodeConsentRequired, "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource %s.",
		app.ClientID, sanitize(app.DisplayName), sanitize(resource))
	e.Suberror = "consent_required"
	return e
}

// grantDelegated decides the scp of a delegated token: what the request asked for,
// checked against the app's consent. A request naming no resource (only OpenID Connect
// scopes) gets Microsoft Graph's sign-in token without a consent check, as every app may
// sign users in.
func grantDelegated(app *AppRegistration, sr scopeRequest) ([]string, *aadError) {
	if sr.Resource == "" {
		return []string{"user_impersonation"}, nil
	}
	consented := app.Consent.scopesFor(sr.Resource)
	if sr.Default {
		if len(consented) == 0 {
			return nil, consentRequired(app, sr.Resource)
		}
		return slices.Clone(consented), nil
	}
	for _, name := range sr.Named {
		if !slices.ContainsFunc(consented, func(c string) bool { return strings.EqualFold(c, name) }) {
			return nil, consentRequired(app, sr.Resource)
		}
	}
	return slices.Clone(sr.Named), nil
}

// applyConsent fills the scp of a user token decided by any grant, or refuses it.
func applyConsent(is issue) (issue, *aadError) {
	if is.Subject.User == nil {
		return is, nil
	}
	granted, aerr := grantDelegated(&is.Subject.App, is.Scope)
	if aerr != nil {
		return issue{}, aerr
	}
	is.Granted = granted
	return is, nil
}

// SetConsent replaces what the tenant consented app clientID may do on resource; no
// scopes withdraws the consent.
func (e *Emulator) SetConsent(clientID, resource string, scopes ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.dir.app(clientID)
	if a == nil {
		return fmt.Errorf("entra: set consent: no app registration %q", clientID)
	}
	c := a.Consent.clone()
	if c == nil {
		c = Consent{}
	}
	for r := range c {
		if normalizeResource(r) == normalizeResource(resource) {
			delete(c, r)
		}
	}
	if len(scopes) > 0 {
		c[resource] = slices.Clone(scopes)
	}
	a.Consent = c
	return nil
}
