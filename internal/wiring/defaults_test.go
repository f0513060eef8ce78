package wiring

import (
	"strings"
	"testing"

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
	c := config.Config{DefaultServiceAccount: "svc@contoso.com", Lifetime: config.DefaultLifetime, Grace: config.DefaultGrace, RenewBefore: config.DefaultRenewBefore}
	want := rotation.Defaults{ServiceAccount: c.DefaultServiceAccount, Lifetime: c.Lifetime, Grace: c.Grace, RenewBefore: c.RenewBefore}
	if got := PolicyDefaults(c); got != want {
		t.Errorf("PolicyDefaults = %+v, want %+v", got, want)
	}
}
