package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/patrol-dev/patrol/internal/rules"
)

// The bounds settings are lists an operator types into an app setting or an azd
// environment, so they accept commas and spaces alike, ignore case where Azure DevOps
// and Entra do, and refuse anything they cannot read: a bound that silently drops an
// entry would refuse what the operator meant to allow, or worse, be read otherwise than
// written.

// fullScope is Azure DevOps' full-access scope (rotation.FullScope; config does not
// import the core).
const fullScope = "app_token"

// splitList splits on commas and white space, dropping empty items.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

// ParseAllowedOrgs reads PATROL_ALLOWED_ORGS: organization names separated by commas
// or spaces, e.g. "contoso, fabrikam". Names are lower-cased (Azure DevOps ignores
// case). Empty allows no organization.
func ParseAllowedOrgs(raw string) ([]string, error) {
	var out []string
	for _, o := range splitList(raw) {
		if !rules.IsOrgName(o) {
			return nil, fmt.Errorf("%q: want %s", o, rules.OrgNameForm)
		}
		if o = strings.ToLower(o); !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

// ParseAllowedServiceAccounts reads PATROL_ALLOWED_SERVICE_ACCOUNTS: entries separated
// by ';' or new lines, each a UPN, optionally followed by '=' and the organizations it
// may mint in (commas or spaces), e.g.
// "svc-build@contoso.com=contoso,fabrikam; svc-x@contoso.com=contoso". An entry
// without '=' may mint in every organization of PATROL_ALLOWED_ORGS. UPNs are
// lower-cased (Entra ignores case). Empty allows no service account.
func ParseAllowedServiceAccounts(raw string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, entry := range strings.FieldsFunc(raw, func(r rune) bool { return r == ';' || r == '\n' || r == '\r' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		upn, orgList, hasOrgs := entry, "", false
		// A UPN's local part may hold '=', organization names never hold '@': the
		// separator is the last '=' with no '@' after it.
		if i := strings.LastIndex(entry, "="); i >= 0 && !strings.Contains(entry[i:], "@") {
			upn, orgList, hasOrgs = strings.TrimSpace(entry[:i]), entry[i+1:], true
		}
		if !rules.IsUPN(upn) {
			return nil, fmt.Errorf("%q: want %s, optionally =org1,org2", entry, rules.UPNForm)
		}
		upn = strings.ToLower(upn)
		if _, dup := out[upn]; dup {
			return nil, fmt.Errorf("%s is listed twice: list its organizations in one entry", upn)
		}
		orgs, err := ParseAllowedOrgs(orgList)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", upn, err)
		}
		if hasOrgs && len(orgs) == 0 {
			return nil, fmt.Errorf("%s: no organization after '=' (leave out '=' to allow every organization of %s)", upn, SettingAllowedOrgs)
		}
		out[upn] = orgs
	}
	return out, nil
}

// FormatAllowedServiceAccounts writes the value ParseAllowedServiceAccounts reads back,
// entries sorted.
func FormatAllowedServiceAccounts(m map[string][]string) string {
	entries := make([]string, 0, len(m))
	for _, upn := range slices.Sorted(maps.Keys(m)) {
		if orgs := m[upn]; len(orgs) > 0 {
			entries = append(entries, upn+"="+strings.Join(orgs, ","))
			continue
		}
		entries = append(entries, upn)
	}
	return strings.Join(entries, "; ")
}

// ParseAllowedScopes reads PATROL_ALLOWED_SCOPES: scopes separated by commas or
// spaces, each a vso.* scope, app_token (full access), or a prefix ending in '*' such
// as "vso.*". A prefix never admits a sensitive scope (token administration, security,
// identity, profile write, full access): those are admitted only by name. Empty is the
// default, "vso.*".
func ParseAllowedScopes(raw string) ([]string, error) {
	items := splitList(raw)
	if len(items) == 0 {
		items = splitList(DefaultAllowedScopes)
	}
	var out []string
	for _, s := range items {
		prefix, pattern := strings.CutSuffix(s, "*")
		switch {
		case s == fullScope:
		case pattern && (prefix == "vso." || rules.IsScope(prefix)):
		case !pattern && rules.IsScope(s):
		default:
			return nil, fmt.Errorf("%q: want %s, %s, or a prefix ending in '*' such as vso.*", s, rules.ScopeForm, fullScope)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// loadBounds reads the bounds settings into c and checks them against each other and
// against the defaults they bound (which Load has read already).
func loadBounds(c *Config, get func(string) string, bad func(setting, value, problem string)) {
	list := func(setting string, parse func(string) error) {
		raw := get(setting)
		if err := parse(raw); err != nil {
			bad(setting, raw, err.Error())
		}
	}
	var err error
	list(SettingAllowedOrgs, func(raw string) error { c.AllowedOrgs, err = ParseAllowedOrgs(raw); return err })
	list(SettingAllowedServiceAccounts, func(raw string) error {
		c.AllowedServiceAccounts, err = ParseAllowedServiceAccounts(raw)
		return err
	})
	list(SettingAllowedScopes, func(raw string) error { c.AllowedScopes, err = ParseAllowedScopes(raw); return err })

	// Contradictions between the settings would make a bound mean something other
	// than it says; report them rather than pick a reading.
	var problems []string
	for _, upn := range slices.Sorted(maps.Keys(c.AllowedServiceAccounts)) {
		for _, o := range c.AllowedServiceAccounts[upn] {
			if !slices.Contains(c.AllowedOrgs, o) {
				problems = append(problems, fmt.Sprintf("%s may mint in %s, which %s does not list", upn, o, SettingAllowedOrgs))
			}
		}
	}
	if def := strings.ToLower(c.DefaultServiceAccount); def != "" && len(c.AllowedServiceAccounts) > 0 {
		if _, ok := c.AllowedServiceAccounts[def]; !ok {
			problems = append(problems, fmt.Sprintf("does not list %s=%s, so no secret could use the default", SettingDefaultServiceAccount, c.DefaultServiceAccount))
		}
	}
	if len(problems) > 0 {
		bad(SettingAllowedServiceAccounts, get(SettingAllowedServiceAccounts), strings.Join(problems, "; "))
	}
	if c.Lifetime > c.MaxLifetime {
		bad(SettingLifetime, rules.FormatDuration(c.Lifetime), "exceeds "+SettingMaxLifetime+"="+rules.FormatDuration(c.MaxLifetime)+": the default must be within the bound")
	}
	if c.Grace > c.MaxGrace {
		bad(SettingGrace, rules.FormatDuration(c.Grace), "exceeds "+SettingMaxGrace+"="+rules.FormatDuration(c.MaxGrace)+": the default must be within the bound")
	}
}
