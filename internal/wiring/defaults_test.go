package wiring

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The core names the settings behind its defaults in its errors without importing
// config; this keeps those names equal to config's.
func TestPolicyErrorsNameTheSettingsBehindTheDefaults(t *testing.T) {
	tests := map[string]struct {
		tags    map[string]string
		d       rotation.Defaults
		setting string
	}{
		"no service account names the default service account setting": {
			tags: map[string]string{rotation.TagOrg: "contoso", rotation.TagScopes: "vso.code"}, d: rotation.Defaults{Lifetime: config.DefaultLifetime},
			setting: config.SettingDefaultServiceAccount},
		"no lifetime names the lifetime setting": {
			tags: map[string]string{rotation.TagOrg: "contoso", rotation.TagScopes: "vso.code"}, d: rotation.Defaults{ServiceAccount: "svc@contoso.com"},
			setting: config.SettingLifetime},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := rotation.ParsePolicy(tc.tags, tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.setting) {
				t.Fatalf("ParsePolicy error = %v, want it to name %s", err, tc.setting)
			}
		})
	}
}

func TestPolicyDefaultsComeFromTheSettings(t *testing.T) {
	c := config.Config{
		DefaultServiceAccount: "svc@contoso.com", Lifetime: config.DefaultLifetime, Grace: config.DefaultGrace, RenewBefore: config.DefaultRenewBefore,
		AllowedOrgs: []string{"contoso", "fabrikam"}, AllowedServiceAccounts: map[string][]string{"svc@contoso.com": {"contoso"}, "svc-x@contoso.com": nil},
		AllowedScopes: []string{"vso.*", "vso.tokens"}, MaxLifetime: 30 * 24 * time.Hour, MaxGrace: 2 * time.Hour,
	}
	want := rotation.Defaults{
		ServiceAccount: c.DefaultServiceAccount, Lifetime: c.Lifetime, Grace: c.Grace, RenewBefore: c.RenewBefore,
		Bounds: rotation.Bounds{
			Orgs: []string{"contoso", "fabrikam"}, ServiceAccounts: map[string][]string{"svc@contoso.com": {"contoso"}, "svc-x@contoso.com": nil},
			Scopes: []string{"vso.*", "vso.tokens"}, MaxLifetime: 30 * 24 * time.Hour, MaxGrace: 2 * time.Hour,
		},
	}
	got := PolicyDefaults(c)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PolicyDefaults = %+v, want %+v", got, want)
	}
	// The core keeps its own copy: editing the loaded settings afterwards changes nothing.
	c.AllowedOrgs[0], c.AllowedServiceAccounts["svc@contoso.com"][0], c.AllowedScopes[1] = "evil", "evil", "app_token"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PolicyDefaults shares its lists with the settings: %+v", got)
	}
}

// The core names the settings behind its bounds in its refusals without importing
// config; this keeps those names equal to config's.
func TestBoundsRefusalsNameTheSettingsBehindTheBounds(t *testing.T) {
	within := rotation.Policy{Org: "contoso", Scopes: []string{"vso.code"}, ServiceAccount: "svc@contoso.com", Lifetime: time.Hour, Grace: time.Hour}
	bounds := rotation.Bounds{
		Orgs: []string{"contoso"}, ServiceAccounts: map[string][]string{"svc@contoso.com": {"contoso"}},
		Scopes: []string{"vso.*"}, MaxLifetime: time.Hour, MaxGrace: time.Hour,
	}
	if err := bounds.Check(within); err != nil {
		t.Fatalf("the baseline policy is outside the bounds: %v", err)
	}
	tests := map[string]struct {
		edit    func(p *rotation.Policy)
		setting string
	}{
		"another organization names the allowed organizations setting": {
			edit: func(p *rotation.Policy) { p.Org = "fabrikam" }, setting: config.SettingAllowedOrgs},
		"another account names the allowed service accounts setting": {
			edit: func(p *rotation.Policy) { p.ServiceAccount = "x@contoso.com" }, setting: config.SettingAllowedServiceAccounts},
		"a sensitive scope names the allowed scopes setting": {
			edit: func(p *rotation.Policy) { p.Scopes = []string{"vso.tokens"} }, setting: config.SettingAllowedScopes},
		"a longer lifetime names the maximum lifetime setting": {
			edit: func(p *rotation.Policy) { p.Lifetime = 2 * time.Hour }, setting: config.SettingMaxLifetime},
		"a longer grace names the maximum grace setting": {
			edit: func(p *rotation.Policy) { p.Grace = 2 * time.Hour }, setting: config.SettingMaxGrace},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := within
			tc.edit(&p)
			err := bounds.Check(p)
			var be *rotation.BoundsError
			if !errors.As(err, &be) || len(be.Violations) != 1 || be.Violations[0].Setting != tc.setting || !strings.Contains(err.Error(), tc.setting) {
				t.Fatalf("Check = %v, want one violation naming %s", err, tc.setting)
			}
		})
	}
}
