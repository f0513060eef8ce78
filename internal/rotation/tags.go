package rotation

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/rules"
)

// Tag names (docs/design.md "Key Vault is the inventory"). Key Vault keeps tags per
// version, so every version patrol writes carries the policy tags forward.
const (
	// Policy.
	TagManaged        = "patrol-managed"
	TagOrg            = "patrol-org"
	TagScopes         = "patrol-scopes"
	TagServiceAccount = "patrol-service-account"
	TagLifetime       = "patrol-lifetime"
	TagGrace          = "patrol-grace"
	TagAllowFullScope = "patrol-allow-full-scope"
	// State of one version.
	TagOwner         = "patrol-owner"
	TagPATID         = "patrol-pat-id"
	TagPreviousPATID = "patrol-previous-pat-id"
	TagReason        = "patrol-reason"
	TagOp            = "patrol-op"
)

// Key Vault limits on tags.
const (
	MaxTags      = 15
	MaxTagLength = 256
)

// FullScope is the scope Azure DevOps uses for a full-access PAT.
const FullScope = "app_token"

// Defaults are the settings that fill in absent policy tags. The composition root
// fills them from the loaded settings (wiring.PolicyDefaults); the core does not read
// settings itself.
type Defaults struct {
	// ServiceAccount is PATROL_DEFAULT_SERVICE_ACCOUNT.
	ServiceAccount string
	// Lifetime is PATROL_LIFETIME.
	Lifetime time.Duration
	// Grace is PATROL_GRACE.
	Grace time.Duration
	// RenewBefore is PATROL_RENEW_BEFORE.
	RenewBefore time.Duration
}

// The settings behind Defaults, named in the errors that send an operator to them. A
// test in internal/wiring holds them equal to config's names.
const (
	settingDefaultServiceAccount = "PATROL_DEFAULT_SERVICE_ACCOUNT"
	settingLifetime              = "PATROL_LIFETIME"
)

// Policy is a managed secret's rotation policy, from its tags and the defaults.
type Policy struct {
	Org            string
	Scopes         []string
	ServiceAccount string
	Lifetime       time.Duration
	Grace          time.Duration
	AllowFullScope bool
}

// IsManaged reports whether tags mark the secret as patrol's.
func IsManaged(tags map[string]string) bool {
	return strings.EqualFold(strings.TrimSpace(tags[TagManaged]), "true")
}

// isScope reports whether s names an Azure DevOps scope: "vso." and then lower-case
// letters, digits and '_'. (Hand-written: the handler's start-up counts.)
func isScope(s string) bool {
	rest, ok := strings.CutPrefix(s, "vso.")
	if !ok || rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ParsePolicy reads the policy tags. A missing tag takes its default; a bad one gives
// a *TagError naming the tag and the value. Full access (app_token) is refused unless
// patrol-allow-full-scope=true.
func ParsePolicy(tags map[string]string, d Defaults) (Policy, error) {
	p := Policy{Lifetime: d.Lifetime, Grace: d.Grace, ServiceAccount: d.ServiceAccount}
	p.Org = strings.TrimSpace(tags[TagOrg])
	switch {
	case p.Org == "":
		return Policy{}, &TagError{Tag: TagOrg, Problem: "required: the Azure DevOps organization the PAT is for"}
	case !rules.IsOrgName(p.Org):
		return Policy{}, &TagError{Tag: TagOrg, Value: p.Org, Problem: "want " + rules.OrgNameForm}
	}

	if raw, ok := tags[TagAllowFullScope]; ok {
		switch strings.ToLower(strings.TrimSpace(raw)) {
		case "true":
			p.AllowFullScope = true
		case "false", "":
		default:
			return Policy{}, &TagError{Tag: TagAllowFullScope, Value: raw, Problem: "want true or false"}
		}
	}

	raw := tags[TagScopes]
	for _, s := range strings.Fields(raw) {
		switch {
		case s == FullScope && !p.AllowFullScope:
			return Policy{}, &TagError{Tag: TagScopes, Value: raw, Problem: "full access (" + FullScope + ") is refused; list vso.* scopes or set " + TagAllowFullScope + "=true", Err: ErrFullScopeRefused}
		case s != FullScope && !isScope(s):
			return Policy{}, &TagError{Tag: TagScopes, Value: raw, Problem: fmt.Sprintf("%q is not a vso.* scope", s)}
		}
		if !slices.Contains(p.Scopes, s) {
			p.Scopes = append(p.Scopes, s)
		}
	}
	if len(p.Scopes) == 0 {
		return Policy{}, &TagError{Tag: TagScopes, Value: raw, Problem: "required: space-separated vso.* scopes such as \"vso.code vso.packaging\""}
	}

	if v := strings.TrimSpace(tags[TagServiceAccount]); v != "" {
		if !rules.IsUPN(v) {
			return Policy{}, &TagError{Tag: TagServiceAccount, Value: v, Problem: "want " + rules.UPNForm}
		}
		p.ServiceAccount = v
	}
	if p.ServiceAccount == "" {
		return Policy{}, &TagError{Tag: TagServiceAccount, Problem: "required when " + settingDefaultServiceAccount + " is not set"}
	}

	// An empty value means unset (Key Vault allows empty tag values).
	if v := strings.TrimSpace(tags[TagLifetime]); v != "" {
		d, err := rules.ParseDuration(v)
		if err != nil {
			return Policy{}, &TagError{Tag: TagLifetime, Value: v, Problem: "want Go syntax like 720h or whole days like 30d"}
		}
		if d < rules.MinLifetime || d > rules.MaxLifetime {
			return Policy{}, &TagError{Tag: TagLifetime, Value: v, Problem: fmt.Sprintf("want between %s and %s", rules.FormatDuration(rules.MinLifetime), rules.FormatDuration(rules.MaxLifetime))}
		}
		p.Lifetime = d
	}
	if v := strings.TrimSpace(tags[TagGrace]); v != "" {
		d, err := rules.ParseDuration(v)
		if err != nil {
			return Policy{}, &TagError{Tag: TagGrace, Value: v, Problem: "want Go syntax like 36h or whole days like 1d"}
		}
		if d > rules.MaxLifetime {
			return Policy{}, &TagError{Tag: TagGrace, Value: v, Problem: "want at most " + rules.FormatDuration(rules.MaxLifetime)}
		}
		p.Grace = d
	}
	if p.Lifetime <= 0 {
		return Policy{}, &TagError{Tag: TagLifetime, Problem: "no lifetime: set the tag or " + settingLifetime}
	}
	return p, nil
}

// Tags writes the policy as tags (with patrol-managed=true), e.g. for `patrol adopt`.
// Zero fields are left out so the settings' defaults apply.
func (p Policy) Tags() map[string]string {
	t := map[string]string{TagManaged: "true", TagOrg: p.Org, TagScopes: strings.Join(p.Scopes, " ")}
	if p.ServiceAccount != "" {
		t[TagServiceAccount] = p.ServiceAccount
	}
	if p.Lifetime > 0 {
		t[TagLifetime] = rules.FormatDuration(p.Lifetime)
	}
	if p.Grace > 0 {
		t[TagGrace] = rules.FormatDuration(p.Grace)
	}
	if p.AllowFullScope {
		t[TagAllowFullScope] = "true"
	}
	return t
}

// State is what one version records about the PAT it holds.
type State struct {
	// Owner is the account the PAT belongs to (a UPN, lower-cased), as verified.
	Owner string
	// PATID is the PAT's authorizationId.
	PATID string
	// PreviousPATID is the PAT this version replaced, revoked after the grace period.
	PreviousPATID string
	// Reason is why this version was written.
	Reason Reason
	// Op is the operation that wrote this version.
	Op string
}

// ParseState reads the state tags of a version. Absent tags are empty (a secret that
// was tagged managed by hand has no state yet).
func ParseState(tags map[string]string) (State, error) {
	s := State{
		Owner:         strings.TrimSpace(tags[TagOwner]),
		PATID:         strings.TrimSpace(tags[TagPATID]),
		PreviousPATID: strings.TrimSpace(tags[TagPreviousPATID]),
		Reason:        Reason(strings.TrimSpace(tags[TagReason])),
		Op:            strings.TrimSpace(tags[TagOp]),
	}
	for _, f := range []struct{ tag, v string }{{TagPATID, s.PATID}, {TagPreviousPATID, s.PreviousPATID}} {
		if f.v == "" {
			continue
		}
		if _, err := uuid.Parse(f.v); err != nil {
			return State{}, &TagError{Tag: f.tag, Value: f.v, Problem: "want a PAT authorizationId (GUID)"}
		}
	}
	if s.Op != "" {
		if err := ValidateOpID(s.Op); err != nil {
			return State{}, &TagError{Tag: TagOp, Value: s.Op, Problem: err.Error()}
		}
	}
	return s, nil
}

// Tags writes the state tags; empty fields are left out.
func (s State) Tags() map[string]string {
	t := map[string]string{}
	for k, v := range map[string]string{
		TagOwner: s.Owner, TagPATID: s.PATID, TagPreviousPATID: s.PreviousPATID,
		TagReason: string(s.Reason), TagOp: s.Op,
	} {
		if v != "" {
			t[k] = v
		}
	}
	return t
}

var stateTags = []string{TagOwner, TagPATID, TagPreviousPATID, TagReason, TagOp}

// VersionTags builds the tag set of a new version: the base version's tags (policy
// and anyone else's tags are carried forward, since Key Vault tags are per version),
// overlaid with policy (adopt: the tags to apply; else nil), with the previous state
// replaced by s. It checks Key Vault's limits.
func VersionTags(base, policy map[string]string, s State) (map[string]string, error) {
	t := maps.Clone(base)
	if t == nil {
		t = map[string]string{}
	}
	for _, k := range stateTags {
		delete(t, k)
	}
	maps.Copy(t, PolicyOnly(policy))
	maps.Copy(t, s.Tags())
	t[TagManaged] = "true"
	if err := CheckTags(t); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckTags enforces Key Vault's limits: at most 15 tags, names and values at most
// 256 characters.
func CheckTags(t map[string]string) error {
	if len(t) > MaxTags {
		names := slices.Sorted(maps.Keys(t))
		return permanent("tags: %d tags exceed Key Vault's limit of %d (%s): remove some of the secret's other tags", len(t), MaxTags, strings.Join(names, ", "))
	}
	for k, v := range t {
		if len(k) > MaxTagLength {
			return permanent("tags: name %.40q… is longer than %d characters", k, MaxTagLength)
		}
		if len(v) > MaxTagLength {
			return &TagError{Tag: k, Value: v[:40] + "…", Problem: fmt.Sprintf("value is longer than %d characters", MaxTagLength)}
		}
	}
	return nil
}
