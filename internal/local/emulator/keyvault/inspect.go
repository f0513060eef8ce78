package keyvault

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// SecretInfo describes a secret for inspection; values are left out on purpose.
type SecretInfo struct {
	Vault          string
	Name           string
	Deleted        bool
	DeletedDate    time.Time // zero unless Deleted
	ScheduledPurge time.Time // zero unless Deleted
	Current        VersionInfo
	VersionCount   int
}

// VersionInfo describes one version, without its value.
type VersionInfo struct {
	Version     string
	Enabled     bool
	NotBefore   *time.Time
	Expires     *time.Time
	Created     time.Time
	Updated     time.Time
	ContentType string
	Tags        map[string]string
	Current     bool
	// NearExpiryRaised and ExpiredRaised tell whether the version's expiry events
	// have been raised (each is raised at most once).
	NearExpiryRaised bool
	ExpiredRaised    bool
}

func unixPtr(p *int64) *time.Time {
	if p == nil {
		return nil
	}
	t := time.Unix(*p, 0).UTC()
	return &t
}

func versionInfo(s *secretState, v *versionState) VersionInfo {
	return VersionInfo{
		Version: v.id, Enabled: v.enabled, NotBefore: unixPtr(v.nbf), Expires: unixPtr(v.exp),
		Created: time.Unix(v.created, 0).UTC(), Updated: time.Unix(v.updated, 0).UTC(),
		ContentType: v.contentType, Tags: maps.Clone(v.tags), Current: v == s.current(),
		NearExpiryRaised: v.nearFired, ExpiredRaised: v.expiredFired,
	}
}

// Vaults lists the vault names.
func (e *Emulator) Vaults() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.vaults))
}

// Secrets lists a vault's secrets (active and soft-deleted) by name.
func (e *Emulator) Secrets(vault string) ([]SecretInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs, err := e.vaultLocked(vault)
	if err != nil {
		return nil, err
	}
	var out []SecretInfo
	for _, s := range vs.secrets {
		info := SecretInfo{Vault: vs.name, Name: s.name, Deleted: s.deleted(), Current: versionInfo(s, s.current()), VersionCount: len(s.versions)}
		if s.deleted() {
			info.DeletedDate, info.ScheduledPurge = s.deletedAt, s.purgeAt
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b SecretInfo) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out, nil
}

// Versions lists a secret's versions in creation order (soft-deleted secrets too).
func (e *Emulator) Versions(vault, name string) ([]VersionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs, err := e.vaultLocked(vault)
	if err != nil {
		return nil, err
	}
	s := vs.secrets[strings.ToLower(name)]
	if s == nil {
		return nil, fmt.Errorf("keyvault: no secret %q in vault %q", name, vault)
	}
	out := make([]VersionInfo, 0, len(s.versions))
	for _, v := range s.versions {
		out = append(out, versionInfo(s, v))
	}
	return out, nil
}

// SecretValue returns a version's value ("" version: the current one) for tests that
// must compare values. Nothing else in the inspection API exposes values; do not log it.
func (e *Emulator) SecretValue(vault, name, version string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs, err := e.vaultLocked(vault)
	if err != nil {
		return "", err
	}
	s := vs.secrets[strings.ToLower(name)]
	if s == nil {
		return "", fmt.Errorf("keyvault: no secret %q in vault %q", name, vault)
	}
	v := s.current()
	if version != "" {
		if v = s.version(version); v == nil {
			return "", fmt.Errorf("keyvault: secret %q has no version %q", name, version)
		}
	}
	return v.value, nil
}

// NewSecret is a secret version to seed with Put.
type NewSecret struct {
	Value       string
	ContentType string
	Tags        map[string]string
	Enabled     *bool // default true
	NotBefore   *time.Time
	Expires     *time.Time
}

// Put creates a new version directly (seeding a demo or a test), with the same rules,
// limits and events as SetSecret but without a request. It returns the version.
func (e *Emulator) Put(vault, name string, n NewSecret) (string, error) {
	req := setRequest{value: n.Value, tags: n.Tags, attrs: attributes{Enabled: n.Enabled}}
	if n.ContentType != "" {
		req.contentType = &n.ContentType
	}
	if n.NotBefore != nil {
		u := n.NotBefore.Unix()
		req.attrs.NotBefore = &u
	}
	if n.Expires != nil {
		u := n.Expires.Unix()
		req.attrs.Expires = &u
	}
	now := e.clk.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	vs, err := e.vaultLocked(vault)
	if err != nil {
		return "", err
	}
	e.expireLocked(vs, now)
	s, v, prev, aerr := vs.set(name, req, now, newVersionID)
	if aerr != nil {
		return "", fmt.Errorf("keyvault: put secret %q: %w", name, aerr)
	}
	if prev != nil {
		stopTimers(prev)
	}
	e.versionCreatedLocked(vs.name, s, v, now)
	return v.id, nil
}

func (e *Emulator) vaultLocked(vault string) (*vaultState, error) {
	vs := e.vaults[strings.ToLower(vault)]
	if vs == nil {
		return nil, fmt.Errorf("keyvault: no vault %q", vault)
	}
	return vs, nil
}
