package rotation

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBoundsCheck(t *testing.T) {
	// opBounds is a deployment's bounds: two organizations, one account in both and one
	// in contoso only, the default scopes, 90 days, a week's grace.
	opBounds := Bounds{
		Orgs: []string{"contoso", "fabrikam"},
		ServiceAccounts: map[string][]string{
			"svc-build@contoso.com": nil, // every allowed organization
			"svc-x@contoso.com":     {"contoso"},
		},
		Scopes: []string{"vso.*"}, MaxLifetime: 90 * day, MaxGrace: 7 * day,
	}
	// within asks for exactly what the bounds allow at most.
	within := Policy{Org: "contoso", Scopes: []string{"vso.code", "vso.packaging"}, ServiceAccount: "svc-build@contoso.com", Lifetime: 90 * day, Grace: 7 * day}
	edit := func(e func(p *Policy)) Policy {
		p := within
		p.Scopes = append([]string(nil), within.Scopes...)
		e(&p)
		return p
	}
	tests := map[string]struct {
		b Bounds
		p Policy
		// want: the settings the violations name, in order; none when within.
		want []string
		// has: substrings of the message (the bound and the value).
		has []string
	}{
		"a policy at every bound is within": {b: opBounds, p: within},
		"tags that narrow (shorter lifetime and grace, one scope) are within": {
			b: opBounds, p: edit(func(p *Policy) { p.Scopes, p.Lifetime, p.Grace = []string{"vso.code"}, 7*day, time.Hour })},
		"an account without organizations may mint in every allowed organization": {
			b: opBounds, p: edit(func(p *Policy) { p.Org = "fabrikam" })},
		"organizations and accounts compare without regard to case": {
			b: opBounds, p: edit(func(p *Policy) { p.Org, p.ServiceAccount = "Contoso", "SVC-Build@Contoso.com" })},
		"an organization the operator did not allow is refused": {
			b: opBounds, p: edit(func(p *Policy) { p.Org = "northwind" }),
			want: []string{settingAllowedOrgs}, has: []string{"organization northwind not allowed by PATROL_ALLOWED_ORGS"}},
		"with no organization allowed, every organization is refused": {
			b: Bounds{ServiceAccounts: opBounds.ServiceAccounts, Scopes: opBounds.Scopes, MaxLifetime: 90 * day, MaxGrace: 7 * day}, p: within,
			want: []string{settingAllowedOrgs}, has: []string{"PATROL_ALLOWED_ORGS (it is empty)"}},
		"a service account the operator did not allow is refused": {
			b: opBounds, p: edit(func(p *Policy) { p.ServiceAccount = "admin@contoso.com" }),
			want: []string{settingAllowedServiceAccounts}, has: []string{"service account admin@contoso.com not allowed by PATROL_ALLOWED_SERVICE_ACCOUNTS"}},
		"a service account minting outside its own organizations is refused": {
			b: opBounds, p: edit(func(p *Policy) { p.ServiceAccount, p.Org = "svc-x@contoso.com", "fabrikam" }),
			want: []string{settingAllowedServiceAccounts}, has: []string{"svc-x@contoso.com may not mint in fabrikam", "allows contoso"}},
		"a scope outside the operator's list is refused": {
			b: edit2(opBounds, func(b *Bounds) { b.Scopes = []string{"vso.code"} }), p: within,
			want: []string{settingAllowedScopes}, has: []string{"scope vso.packaging not allowed by PATROL_ALLOWED_SCOPES"}},
		"a token administration scope is refused though vso.* covers its name": {
			b: opBounds, p: edit(func(p *Policy) { p.Scopes = append(p.Scopes, "vso.tokens") }),
			want: []string{settingAllowedScopes}, has: []string{"scope vso.tokens not allowed"}},
		"a scope under a sensitive prefix is refused": {
			b: opBounds, p: edit(func(p *Policy) { p.Scopes = []string{"vso.pats_manage", "vso.identity_manage"} }),
			want: []string{settingAllowedScopes}, has: []string{"scopes vso.pats_manage, vso.identity_manage not allowed"}},
		"a sensitive scope listed by name is allowed": {
			b: edit2(opBounds, func(b *Bounds) { b.Scopes = append(b.Scopes, "vso.security_manage") }),
			p: edit(func(p *Policy) { p.Scopes = []string{"vso.security_manage"} })},
		"a sensitive scope is never allowed by a prefix, even its own": {
			b:    edit2(opBounds, func(b *Bounds) { b.Scopes = []string{"vso.identity*"} }),
			p:    edit(func(p *Policy) { p.Scopes = []string{"vso.identity"} }),
			want: []string{settingAllowedScopes}, has: []string{"scope vso.identity not allowed"}},
		"full access with the tag alone is refused": {
			b: opBounds, p: edit(func(p *Policy) { p.Scopes, p.AllowFullScope = []string{FullScope}, true }),
			want: []string{settingAllowedScopes}, has: []string{"scope app_token not allowed by PATROL_ALLOWED_SCOPES"}},
		"full access with the tag and the operator's allowance is within": {
			b: edit2(opBounds, func(b *Bounds) { b.Scopes = append(b.Scopes, FullScope) }),
			p: edit(func(p *Policy) { p.Scopes, p.AllowFullScope = []string{FullScope}, true })},
		"a lifetime longer than the maximum is refused": {
			b: opBounds, p: edit(func(p *Policy) { p.Lifetime = 365 * day }),
			want: []string{settingMaxLifetime}, has: []string{"lifetime 365d exceeds PATROL_MAX_LIFETIME=90d"}},
		"a grace longer than the maximum is refused": {
			b: opBounds, p: edit(func(p *Policy) { p.Grace = 30 * day }),
			want: []string{settingMaxGrace}, has: []string{"grace 30d exceeds PATROL_MAX_GRACE=7d"}},
		"every bound exceeded is named at once": {
			b: opBounds, p: Policy{Org: "northwind", Scopes: []string{FullScope, "vso.tokens"}, ServiceAccount: "admin@contoso.com", Lifetime: 365 * day, Grace: 30 * day, AllowFullScope: true},
			want: []string{settingAllowedOrgs, settingAllowedServiceAccounts, settingAllowedScopes, settingMaxLifetime, settingMaxGrace},
			has:  []string{"northwind", "admin@contoso.com", "app_token, vso.tokens", "365d", "30d"}},
		"the zero bounds admit nothing": {
			b: Bounds{}, p: edit(func(p *Policy) { p.Grace = 0 }),
			want: []string{settingAllowedOrgs, settingAllowedServiceAccounts, settingAllowedScopes, settingMaxLifetime}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.b.Check(tc.p)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Check = %v, want within the bounds", err)
				}
				return
			}
			var be *BoundsError
			if !errors.As(err, &be) {
				t.Fatalf("Check = %v, want a *BoundsError", err)
			}
			var got []string
			for _, v := range be.Violations {
				got = append(got, v.Setting)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("violations name %v, want %v", got, tc.want)
			}
			for _, s := range tc.has {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q does not contain %q", err, s)
				}
			}
			if !strings.HasPrefix(err.Error(), "outside bounds (") || !IsPermanent(err) {
				t.Errorf("message %q (permanent %v), want a permanent \"outside bounds (…)\"", err, IsPermanent(err))
			}
		})
	}
}

func edit2(b Bounds, e func(b *Bounds)) Bounds {
	b.Scopes = append([]string(nil), b.Scopes...)
	e(&b)
	return b
}

// The sensitive set is Microsoft's token administration, security, identity and
// profile-write scopes and full access (bounds.go cites the list); a scope a pipeline
// needs is not in it.
func TestSensitiveScopes(t *testing.T) {
	for _, s := range []string{
		"app_token", "vso.tokens", "vso.tokenadministration", "vso.pats", "vso.pats_manage", "vso.security_manage",
		"vso.identity", "vso.identity_manage", "vso.graph_manage", "vso.memberentitlementmanagement_write", "vso.profile_write",
	} {
		if !IsSensitiveScope(s) {
			t.Errorf("%s is not sensitive", s)
		}
	}
	for _, s := range []string{"vso.code", "vso.code_write", "vso.packaging", "vso.build_execute", "vso.graph", "vso.profile"} {
		if IsSensitiveScope(s) {
			t.Errorf("%s is sensitive", s)
		}
	}
}
