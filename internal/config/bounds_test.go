package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/rules"
)

func TestLoadReadsTheBounds(t *testing.T) {
	tests := map[string]struct {
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		"unset bounds allow no organization and no account, the default scopes, 90 days and a week": {
			check: func(t *testing.T, c Config) {
				if len(c.AllowedOrgs) != 0 || len(c.AllowedServiceAccounts) != 0 {
					t.Errorf("orgs %v accounts %v, want none", c.AllowedOrgs, c.AllowedServiceAccounts)
				}
				if !slices.Equal(c.AllowedScopes, []string{"vso.*"}) || c.MaxLifetime != 90*rules.Day || c.MaxGrace != 7*rules.Day {
					t.Errorf("scopes %v max lifetime %v max grace %v, want [vso.*] 90d 7d", c.AllowedScopes, c.MaxLifetime, c.MaxGrace)
				}
			},
		},
		"lists accept commas, spaces and mixed case, and drop repeats": {
			env: map[string]string{
				SettingAllowedOrgs:            " Contoso,fabrikam  contoso ",
				SettingAllowedServiceAccounts: "SVC-Build@Contoso.com = Contoso, fabrikam ;\nsvc-x@contoso.com=contoso;;",
				SettingAllowedScopes:          "vso.*, vso.tokens vso.tokens app_token",
			},
			check: func(t *testing.T, c Config) {
				if !slices.Equal(c.AllowedOrgs, []string{"contoso", "fabrikam"}) {
					t.Errorf("orgs = %v", c.AllowedOrgs)
				}
				want := map[string][]string{"svc-build@contoso.com": {"contoso", "fabrikam"}, "svc-x@contoso.com": {"contoso"}}
				if !reflect.DeepEqual(c.AllowedServiceAccounts, want) {
					t.Errorf("accounts = %v, want %v", c.AllowedServiceAccounts, want)
				}
				if !slices.Equal(c.AllowedScopes, []string{"vso.*", "vso.tokens", "app_token"}) {
					t.Errorf("scopes = %v", c.AllowedScopes)
				}
			},
		},
		"an account without organizations may mint in every allowed one": {
			env: map[string]string{SettingAllowedOrgs: "contoso", SettingAllowedServiceAccounts: "svc-build@contoso.com"},
			check: func(t *testing.T, c Config) {
				if orgs, ok := c.AllowedServiceAccounts["svc-build@contoso.com"]; !ok || len(orgs) != 0 {
					t.Errorf("accounts = %v", c.AllowedServiceAccounts)
				}
			},
		},
		"a UPN holding '=' is read whole": {
			env: map[string]string{SettingAllowedOrgs: "contoso", SettingAllowedServiceAccounts: "a=b@contoso.com; c=d@contoso.com=contoso"},
			check: func(t *testing.T, c Config) {
				want := map[string][]string{"a=b@contoso.com": nil, "c=d@contoso.com": {"contoso"}}
				if !reflect.DeepEqual(c.AllowedServiceAccounts, want) {
					t.Errorf("accounts = %v, want %v", c.AllowedServiceAccounts, want)
				}
			},
		},
		"maximums in days and Go syntax are read": {
			env: map[string]string{SettingMaxLifetime: "180d", SettingMaxGrace: "96h"},
			check: func(t *testing.T, c Config) {
				if c.MaxLifetime != 180*rules.Day || c.MaxGrace != 96*60*60*1e9 {
					t.Errorf("max lifetime %v max grace %v", c.MaxLifetime, c.MaxGrace)
				}
			},
		},
		"the default service account listed in any case is accepted": {
			env: map[string]string{
				SettingDefaultServiceAccount: "Svc-Build@contoso.com", SettingAllowedOrgs: "contoso",
				SettingAllowedServiceAccounts: "svc-build@contoso.com=contoso",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Load(with(tc.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			if s := c.LogValue().String(); !strings.Contains(s, SettingAllowedOrgs) || !strings.Contains(s, SettingMaxGrace) {
				t.Errorf("LogValue leaves out the bounds: %s", s)
			}
		})
	}
}

func TestLoadNamesTheBadBound(t *testing.T) {
	tests := map[string]struct {
		env  map[string]string
		want []string // substrings naming the setting and the value
	}{
		"an organization name with a slash is refused": {
			env: map[string]string{SettingAllowedOrgs: "contoso, contoso/project"}, want: []string{SettingAllowedOrgs, `"contoso/project"`}},
		"an account that is not a UPN is refused": {
			env:  map[string]string{SettingAllowedOrgs: "contoso", SettingAllowedServiceAccounts: "svc-build=contoso"},
			want: []string{SettingAllowedServiceAccounts, `"svc-build=contoso"`, "user principal name"}},
		"an account with '=' and no organization is refused": {
			env:  map[string]string{SettingAllowedOrgs: "contoso", SettingAllowedServiceAccounts: "svc-build@contoso.com="},
			want: []string{SettingAllowedServiceAccounts, "no organization after '='"}},
		"an account listed twice is refused": {
			env:  map[string]string{SettingAllowedOrgs: "contoso,fabrikam", SettingAllowedServiceAccounts: "svc@contoso.com=contoso; SVC@contoso.com=fabrikam"},
			want: []string{SettingAllowedServiceAccounts, "svc@contoso.com is listed twice"}},
		"an account's organization outside the allowed organizations is refused": {
			env:  map[string]string{SettingAllowedOrgs: "contoso", SettingAllowedServiceAccounts: "svc@contoso.com=contoso,fabrikam"},
			want: []string{SettingAllowedServiceAccounts, "svc@contoso.com may mint in fabrikam, which " + SettingAllowedOrgs + " does not list"}},
		"an account list without the default service account is refused": {
			env: map[string]string{
				SettingDefaultServiceAccount: "svc-default@contoso.com", SettingAllowedOrgs: "contoso",
				SettingAllowedServiceAccounts: "svc@contoso.com",
			},
			want: []string{SettingAllowedServiceAccounts, SettingDefaultServiceAccount + "=svc-default@contoso.com"}},
		"a scope that is not vso.* is refused": {
			env: map[string]string{SettingAllowedScopes: "vso.code repo:write"}, want: []string{SettingAllowedScopes, `"repo:write"`}},
		"a bare star is refused": {
			env: map[string]string{SettingAllowedScopes: "*"}, want: []string{SettingAllowedScopes, `"*"`, "vso.*"}},
		"an upper-case scope is refused, as the tag would be": {
			env: map[string]string{SettingAllowedScopes: "vso.Code"}, want: []string{SettingAllowedScopes, `"vso.Code"`}},
		"a maximum lifetime over a year is refused": {
			env: map[string]string{SettingMaxLifetime: "400d"}, want: []string{SettingMaxLifetime, `"400d"`, "365d"}},
		"a maximum grace that is not a duration is refused": {
			env: map[string]string{SettingMaxGrace: "a week"}, want: []string{SettingMaxGrace, `"a week"`}},
		"a default lifetime above the maximum is refused": {
			env: map[string]string{SettingLifetime: "180d"}, want: []string{SettingLifetime, `"180d"`, SettingMaxLifetime + "=90d"}},
		"a default grace above the maximum is refused": {
			env: map[string]string{SettingGrace: "1d", SettingMaxGrace: "12h"}, want: []string{SettingGrace, SettingMaxGrace + "=12h0m0s"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load(with(tc.env))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			var se *SettingError
			if !errors.As(err, &se) {
				t.Errorf("error is %T, want it to wrap *SettingError", err)
			}
		})
	}
}

// FuzzBoundsSettings feeds arbitrary text to the bounds parsers: they never panic, what
// they accept is well formed, and writing it back reads the same.
func FuzzBoundsSettings(f *testing.F) {
	f.Add("contoso, fabrikam", "svc-build@contoso.com=contoso,fabrikam; svc-x@contoso.com=contoso", "vso.* vso.tokens")
	f.Add("", "", "")
	f.Add("Contoso", "a=b@contoso.com", "app_token,vso.code*")
	f.Add(",, ,", ";;\n", "vso.")
	f.Add("x", "svc@contoso.com=", "*")
	f.Add("contoso", "svc@contoso.com==contoso", "vso.*,*")
	f.Fuzz(func(t *testing.T, orgsRaw, accountsRaw, scopesRaw string) {
		if orgs, err := ParseAllowedOrgs(orgsRaw); err == nil {
			for _, o := range orgs {
				if !rules.IsOrgName(o) || o != strings.ToLower(o) {
					t.Fatalf("ParseAllowedOrgs(%q) accepted %q", orgsRaw, o)
				}
			}
			again, err := ParseAllowedOrgs(strings.Join(orgs, ","))
			if err != nil || !slices.Equal(again, orgs) {
				t.Fatalf("orgs %v do not read back: %v, %v", orgs, again, err)
			}
		}
		if accounts, err := ParseAllowedServiceAccounts(accountsRaw); err == nil {
			for upn, orgs := range accounts {
				if !rules.IsUPN(upn) || upn != strings.ToLower(upn) {
					t.Fatalf("ParseAllowedServiceAccounts(%q) accepted account %q", accountsRaw, upn)
				}
				for _, o := range orgs {
					if !rules.IsOrgName(o) {
						t.Fatalf("ParseAllowedServiceAccounts(%q) accepted organization %q", accountsRaw, o)
					}
				}
			}
			text := FormatAllowedServiceAccounts(accounts)
			again, err := ParseAllowedServiceAccounts(text)
			if err != nil || !sameAccounts(again, accounts) {
				t.Fatalf("accounts %v written as %q read back as %v, %v", accounts, text, again, err)
			}
		}
		if scopes, err := ParseAllowedScopes(scopesRaw); err == nil {
			if len(scopes) == 0 {
				t.Fatalf("ParseAllowedScopes(%q) accepted no scope (empty means the default)", scopesRaw)
			}
			for _, s := range scopes {
				prefix, _ := strings.CutSuffix(s, "*")
				if s != fullScope && !strings.HasPrefix(prefix, "vso.") {
					t.Fatalf("ParseAllowedScopes(%q) accepted %q", scopesRaw, s)
				}
			}
		}
	})
}

// sameAccounts compares account lists, an empty organization list equal to none.
func sameAccounts(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}
