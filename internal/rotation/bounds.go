package rotation

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/rules"
)

// Bounds are the operator's limits on what any managed secret may ask for. Tags can be
// written by anyone who may write the vault's secrets (Key Vault Secrets Officer); the
// bounds are settings of the function app, which only someone with rights on the app
// can change, through a reviewed deployment. So tags only narrow within the bounds: a
// policy outside them is never minted (Decide answers needs-attention, reason
// outside-bounds, before any PAT is created).
//
// The zero Bounds admits nothing: a core built without bounds does not mint.
type Bounds struct {
	// Orgs are the organizations a PAT may be minted in (PATROL_ALLOWED_ORGS),
	// lower-case.
	Orgs []string
	// ServiceAccounts are the accounts that may mint (PATROL_ALLOWED_SERVICE_ACCOUNTS):
	// lower-case UPN → the organizations that account may mint in, each also in Orgs.
	// An empty list means every organization in Orgs.
	ServiceAccounts map[string][]string
	// Scopes are the scopes a PAT may carry (PATROL_ALLOWED_SCOPES): exact scopes, or
	// prefixes ending in '*' such as "vso.*". A sensitive scope (IsSensitiveScope) is
	// admitted only by its exact name, never by a prefix.
	Scopes []string
	// MaxLifetime bounds a PAT's lifetime (PATROL_MAX_LIFETIME).
	MaxLifetime time.Duration
	// MaxGrace bounds how long a replaced PAT stays valid (PATROL_MAX_GRACE).
	MaxGrace time.Duration
}

// The settings behind Bounds, named in the violations. A test in internal/wiring holds
// them equal to config's names.
const (
	settingAllowedOrgs            = "PATROL_ALLOWED_ORGS"
	settingAllowedServiceAccounts = "PATROL_ALLOWED_SERVICE_ACCOUNTS"
	settingAllowedScopes          = "PATROL_ALLOWED_SCOPES"
	settingMaxLifetime            = "PATROL_MAX_LIFETIME"
	settingMaxGrace               = "PATROL_MAX_GRACE"
)

// sensitiveScopes are refused unless the operator lists them by name: with any of them
// a PAT reaches beyond the resources of the secret that asked for it, to other
// credentials, permissions or identities, so a tag writer could use patrol to escalate.
// Names and meanings are Microsoft's scope list,
// https://learn.microsoft.com/azure/devops/integrate/get-started/authentication/oauth#scopes.
// An entry ending in '*' covers every scope with that prefix (the read and manage
// variants Microsoft adds over time).
var sensitiveScopes = []string{
	// Full access: everything the service account may do.
	FullScope,
	// Token administration: create, read, revoke PATs and other delegated tokens,
	// including other users' (vso.tokenadministration), and the PAT lifecycle API.
	"vso.tokens", "vso.tokenadministration", "vso.pats*",
	// Security: read, write and manage security permissions.
	"vso.security_manage",
	// Identity: read and manage identities and groups, and users' entitlements
	// (access levels, group membership).
	"vso.identity*", "vso.graph_manage", "vso.memberentitlementmanagement_write",
	// Profile write: change the account's profile.
	"vso.profile_write",
}

// IsSensitiveScope reports whether a scope is one the bounds refuse unless the operator
// lists it by name.
func IsSensitiveScope(s string) bool {
	return slices.ContainsFunc(sensitiveScopes, func(p string) bool { return scopeMatches(p, s) })
}

// SensitiveScopes lists the sensitive scopes ('*' marks a prefix), for documentation
// and error messages.
func SensitiveScopes() []string { return slices.Clone(sensitiveScopes) }

// scopeMatches reports whether the scope pattern p (exact, or a prefix ending in '*')
// covers s.
func scopeMatches(p, s string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasPrefix(s, prefix)
	}
	return p == s
}

// AllowsScope reports whether the bounds admit scope s: a sensitive scope only when
// listed by name, any other when an entry covers it.
func (b Bounds) AllowsScope(s string) bool {
	if IsSensitiveScope(s) {
		return slices.Contains(b.Scopes, s)
	}
	return slices.ContainsFunc(b.Scopes, func(p string) bool { return scopeMatches(p, s) })
}

// Check returns nil when the policy is within the bounds, else a *BoundsError naming
// every bound it exceeds, so that an operator sees all of them at once.
func (b Bounds) Check(p Policy) error {
	var out []BoundViolation
	org := strings.ToLower(p.Org)
	orgAllowed := slices.Contains(b.Orgs, org)
	if !orgAllowed {
		out = append(out, BoundViolation{Setting: settingAllowedOrgs, Problem: "organization " + p.Org + " not allowed by " + settingAllowedOrgs + emptyNote(b.Orgs)})
	}
	// An organization outside PATROL_ALLOWED_ORGS is reported once, above, not again
	// for the account.
	account := strings.ToLower(p.ServiceAccount)
	if orgs, ok := b.ServiceAccounts[account]; !ok {
		note := ""
		if len(b.ServiceAccounts) == 0 {
			note = " (it is empty)"
		}
		out = append(out, BoundViolation{Setting: settingAllowedServiceAccounts, Problem: "service account " + p.ServiceAccount + " not allowed by " + settingAllowedServiceAccounts + note})
	} else if orgAllowed && len(orgs) > 0 && !slices.Contains(orgs, org) {
		out = append(out, BoundViolation{Setting: settingAllowedServiceAccounts, Problem: fmt.Sprintf(
			"service account %s may not mint in %s (%s allows %s)", p.ServiceAccount, p.Org, settingAllowedServiceAccounts, strings.Join(orgs, ", "))})
	}
	var refused []string
	for _, s := range p.Scopes {
		if !b.AllowsScope(s) {
			refused = append(refused, s)
		}
	}
	if len(refused) > 0 {
		noun := "scope"
		if len(refused) > 1 {
			noun = "scopes"
		}
		out = append(out, BoundViolation{Setting: settingAllowedScopes, Problem: noun + " " + strings.Join(refused, ", ") + " not allowed by " + settingAllowedScopes})
	}
	if p.Lifetime > b.MaxLifetime {
		out = append(out, BoundViolation{Setting: settingMaxLifetime, Problem: fmt.Sprintf(
			"lifetime %s exceeds %s=%s", rules.FormatDuration(p.Lifetime), settingMaxLifetime, rules.FormatDuration(b.MaxLifetime))})
	}
	if p.Grace > b.MaxGrace {
		out = append(out, BoundViolation{Setting: settingMaxGrace, Problem: fmt.Sprintf(
			"grace %s exceeds %s=%s", rules.FormatDuration(p.Grace), settingMaxGrace, rules.FormatDuration(b.MaxGrace))})
	}
	if len(out) == 0 {
		return nil
	}
	return &BoundsError{Violations: out}
}

func emptyNote(list []string) string {
	if len(list) == 0 {
		return " (it is empty)"
	}
	return ""
}

// BoundViolation is one bound a policy exceeds: the setting that sets the bound, and
// what exceeds it.
type BoundViolation struct {
	Setting string
	Problem string
}

// BoundsError is a policy outside the operator's bounds. Its message names each bound
// and value, e.g. "outside bounds (scope vso.tokens not allowed by PATROL_ALLOWED_SCOPES)".
type BoundsError struct {
	Violations []BoundViolation
}

func (e *BoundsError) Error() string {
	problems := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		problems[i] = v.Problem
	}
	return "outside bounds (" + strings.Join(problems, "; ") + ")"
}

// Permanent: only an operator changing the tags or the settings can help.
func (e *BoundsError) Permanent() bool { return true }

// checkWithinBounds refuses a policy the operator's bounds do not admit, before any
// check that could decide to mint.
func checkWithinBounds(f Facts) (Decision, bool) {
	if err := f.Input.Defaults.Bounds.Check(f.Policy); err != nil {
		return attention(ReasonOutsideBounds, err)
	}
	return pass()
}
