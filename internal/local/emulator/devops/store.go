package devops

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Organization is an Azure DevOps organization and its PAT policies.
type Organization struct {
	Name string // e.g. "contoso"; matched case-insensitively in URLs
	ID   string // GUID; generated when empty. PATs carry it in targetAccounts.
	// TenantID, when set, is the Entra tenant the organization is connected to: tokens
	// from other tenants are refused.
	TenantID string
	Policies Policies
}

// Policies are the organization's PAT policies (Organization settings → Policies).
type Policies struct {
	// MaxLifespan caps validTo; longer requests are clamped silently. Zero = the
	// service-wide one year.
	MaxLifespan time.Duration
	// NoFullScope refuses app_token (full access) PATs: fullScopePatPolicyViolation.
	NoFullScope bool
	// NoGlobal refuses allOrgs PATs: globalPatPolicyViolation.
	NoGlobal bool
	// RestrictCreation limits PAT creation to AllowList (UPNs or object ids); others get
	// accessDenied.
	RestrictCreation bool
	AllowList        []string
}

// User is a member of an organization.
type User struct {
	ObjectID string // Entra object id; matched with the token's oid
	// ID is Azure DevOps' own identity id (connectionData's authenticatedUser.id), a
	// GUID distinct from the Entra object id (docs/emulator-fidelity.md 5.1); generated
	// when empty.
	ID string
	// StorageKey is the Graph storage key the subject descriptor encodes (5.3);
	// generated when empty.
	StorageKey string
	// TenantID is the Entra tenant of the account, part of its identity descriptor
	// (5.2); the organization's tenant when empty.
	TenantID    string
	UPN         string
	DisplayName string
	Descriptor  string // subject descriptor: "aad." + base64 of StorageKey; generated when empty
	Admin       bool   // may call the token-admin API
	Disabled    bool   // a disabled user's PATs stop working at once
}

// Status is a PAT's lifecycle state as the list filter sees it.
type Status string

// PAT statuses.
const (
	StatusActive  Status = "active"
	StatusRevoked Status = "revoked"
	StatusExpired Status = "expired"
)

// PATInfo describes an issued PAT for inspection; it never holds the token value.
type PATInfo struct {
	AuthorizationID string
	Org             string
	OwnerObjectID   string
	OwnerUPN        string
	DisplayName     string
	Scope           string
	AllOrgs         bool
	ValidFrom       time.Time
	ValidTo         time.Time
	RevokedAt       time.Time // zero unless revoked
	Status          Status
}

// LogValue keeps inspection output small and safe in logs.
func (p PATInfo) LogValue() slog.Value {
	return slog.GroupValue(slog.String("authorizationId", p.AuthorizationID), slog.String("org", p.Org),
		slog.String("owner", p.OwnerUPN), slog.String("status", string(p.Status)))
}

type org struct {
	Organization
	users map[string]*User // by lower-case object id
}

type pat struct {
	id          string
	org         string // lower-case name of the organization it was created in
	orgID       string
	owner       string // object id
	displayName string
	scope       string
	allOrgs     bool
	validFrom   time.Time
	validTo     time.Time
	revokedAt   time.Time
	hash        [32]byte
	// unpropagated counts the connectionData calls still to refuse (DelayPATPropagation).
	unpropagated int
}

func (p *pat) status(now time.Time) Status {
	switch {
	case !p.revokedAt.IsZero():
		return StatusRevoked
	case !now.Before(p.validTo):
		return StatusExpired
	}
	return StatusActive
}

func (p *pat) targets() []string {
	if p.allOrgs {
		return nil
	}
	return []string{p.orgID}
}

// ErrUnknownOrganization and friends are returned by the inspection API.
var (
	ErrUnknownOrganization = errors.New("devops emulator: unknown organization")
	ErrUnknownUser         = errors.New("devops emulator: unknown user")
	ErrInvalidToken        = errors.New("devops emulator: PAT is not valid for this organization")
)

// AddOrganization adds or replaces an organization (its users are kept on replace).
func (s *Emulator) AddOrganization(o Organization) (Organization, error) {
	if !validOrgName(o.Name) {
		return Organization{}, fmt.Errorf("devops emulator: organization name %q: use 1-50 letters, digits or hyphens, not starting or ending with a hyphen", o.Name)
	}
	if o.ID == "" {
		o.ID = uuid.NewString()
	} else if _, err := uuid.Parse(o.ID); err != nil {
		return Organization{}, fmt.Errorf("devops emulator: organization %q id %q is not a GUID", o.Name, o.ID)
	}
	o.Policies.AllowList = append([]string(nil), o.Policies.AllowList...)
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(o.Name)
	if old, ok := s.orgs[key]; ok {
		old.Organization = o
		return o, nil
	}
	s.orgs[key] = &org{Organization: o, users: map[string]*User{}}
	return o, nil
}

// Organization returns an organization by name (case-insensitive).
func (s *Emulator) Organization(name string) (Organization, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orgs[strings.ToLower(name)]
	if !ok {
		return Organization{}, false
	}
	return o.Organization, true
}

// SetPolicies replaces an organization's PAT policies.
func (s *Emulator) SetPolicies(orgName string, p Policies) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orgs[strings.ToLower(orgName)]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownOrganization, orgName)
	}
	p.AllowList = append([]string(nil), p.AllowList...)
	o.Policies = p
	return nil
}

// AddUser adds or replaces a member of an organization.
func (s *Emulator) AddUser(orgName string, u User) (User, error) {
	if _, err := uuid.Parse(u.ObjectID); err != nil {
		return User{}, fmt.Errorf("devops emulator: user %q object id %q is not a GUID", u.UPN, u.ObjectID)
	}
	if u.UPN == "" {
		return User{}, fmt.Errorf("devops emulator: user %s has no UPN", u.ObjectID)
	}
	if u.DisplayName == "" {
		u.DisplayName = u.UPN
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orgs[strings.ToLower(orgName)]
	if !ok {
		return User{}, fmt.Errorf("%w %q", ErrUnknownOrganization, orgName)
	}
	if u.TenantID == "" {
		u.TenantID = o.TenantID
	}
	if old := o.users[strings.ToLower(u.ObjectID)]; old != nil && u.ID == "" {
		// Replacing a member keeps its Azure DevOps identity, as the service does.
		u.ID, u.StorageKey = old.ID, old.StorageKey
	}
	u.fillIdentity()
	o.users[strings.ToLower(u.ObjectID)] = &u
	return u, nil
}

// SetUserDisabled disables (or re-enables) a user in an organization; a disabled user's
// PATs fail connectionData at once.
func (s *Emulator) SetUserDisabled(orgName, upnOrObjectID string, disabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orgs[strings.ToLower(orgName)]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownOrganization, orgName)
	}
	u := o.findUser(upnOrObjectID)
	if u == nil {
		return fmt.Errorf("%w %q in %q", ErrUnknownUser, upnOrObjectID, orgName)
	}
	u.Disabled = disabled
	return nil
}

// DisableUser is SetUserDisabled(org, user, true).
func (s *Emulator) DisableUser(orgName, upnOrObjectID string) error {
	return s.SetUserDisabled(orgName, upnOrObjectID, true)
}

// fillIdentity gives a user the Azure DevOps identity fields it lacks: an id and a
// storage key of their own (never the Entra object id), and the subject descriptor that
// encodes the storage key.
func (u *User) fillIdentity() {
	if u.ID == "" {
		u.ID = newGUID()
	}
	if u.StorageKey == "" {
		u.StorageKey = newGUID()
	}
	if u.Descriptor == "" {
		u.Descriptor = "aad." + base64URL([]byte(strings.ToLower(u.StorageKey)))
	}
}

// identityDescriptor is connectionData's descriptor for an Entra user:
// "Microsoft.IdentityModel.Claims.ClaimsIdentity;<tenant>\<sign-in name>" (5.2).
func (u *User) identityDescriptor() string {
	return "Microsoft.IdentityModel.Claims.ClaimsIdentity;" + u.TenantID + `\` + u.UPN
}

func (o *org) findUser(key string) *User {
	if u, ok := o.users[strings.ToLower(key)]; ok {
		return u
	}
	for _, u := range o.users {
		if strings.EqualFold(u.UPN, key) {
			return u
		}
	}
	return nil
}

// IssuePAT creates a PAT for a member of an organization in process, as a create request
// from that member would (the organization's lifespan policy applies), but without a
// request, a rate-limit charge or a journal entry: seeding thousands of PATs for a
// benchmark must not cost thousands of round trips. It returns the PAT and its value.
func (s *Emulator) IssuePAT(orgName, upnOrObjectID, displayName, scope string, validTo time.Time) (PATInfo, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orgs[strings.ToLower(orgName)]
	if !ok {
		return PATInfo{}, "", fmt.Errorf("%w: %s", ErrUnknownOrganization, orgName)
	}
	u := o.findUser(upnOrObjectID)
	if u == nil {
		return PATInfo{}, "", fmt.Errorf("%w: %s in %s", ErrUnknownUser, upnOrObjectID, orgName)
	}
	now := s.clock.Now()
	if !validTo.After(now) {
		return PATInfo{}, "", fmt.Errorf("devops emulator: validTo %s is not in the future", validTo.Format(time.RFC3339))
	}
	value := newTokenValue()
	p := &pat{id: uuid.NewString(), org: o.key(), orgID: o.ID, owner: u.ObjectID, displayName: displayName,
		scope: strings.Join(strings.Fields(scope), " "), validFrom: now, validTo: clampValidTo(validTo, now, o.Policies),
		hash: sha256.Sum256([]byte(value))}
	s.pats[p.id] = p
	s.byHash[p.hash] = p.id
	return s.infoLocked(p), value, nil
}

// PATs lists every PAT created in an organization (all statuses), oldest first.
func (s *Emulator) PATs(orgName string) []PATInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.patInfosLocked(func(p *pat) bool { return p.org == strings.ToLower(orgName) })
}

// ActivePATs lists the active PATs a user (UPN or object id) holds in an organization.
func (s *Emulator) ActivePATs(orgName, upnOrObjectID string) []PATInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orgs[strings.ToLower(orgName)]
	if !ok {
		return nil
	}
	u := o.findUser(upnOrObjectID)
	if u == nil {
		return nil
	}
	now := s.clock.Now()
	return s.patInfosLocked(func(p *pat) bool {
		return p.org == o.key() && strings.EqualFold(p.owner, u.ObjectID) && p.status(now) == StatusActive
	})
}

// IsActive reports whether a PAT exists and is neither revoked nor expired.
func (s *Emulator) IsActive(authorizationID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pats[strings.ToLower(authorizationID)]
	return ok && p.status(s.clock.Now()) == StatusActive
}

// PAT returns one PAT by authorization id.
func (s *Emulator) PAT(authorizationID string) (PATInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pats[strings.ToLower(authorizationID)]
	if !ok {
		return PATInfo{}, false
	}
	return s.infoLocked(p), true
}

// ValidateToken answers what connectionData would: the user a PAT value authenticates
// in an organization, or an error when it would be refused.
func (s *Emulator) ValidateToken(orgName, value string) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, _, err := s.validateLocked(orgName, value)
	return u, err
}

func (s *Emulator) validateLocked(orgName, value string) (User, *pat, error) {
	o, ok := s.orgs[strings.ToLower(orgName)]
	if !ok {
		return User{}, nil, fmt.Errorf("%w %q", ErrUnknownOrganization, orgName)
	}
	id, ok := s.byHash[sha256.Sum256([]byte(value))]
	if !ok {
		return User{}, nil, ErrInvalidToken
	}
	p := s.pats[id]
	if p.status(s.clock.Now()) != StatusActive {
		return User{}, p, fmt.Errorf("%w: PAT %s is %s", ErrInvalidToken, p.id, p.status(s.clock.Now()))
	}
	if !p.allOrgs && p.orgID != o.ID {
		return User{}, p, fmt.Errorf("%w: PAT %s belongs to another organization", ErrInvalidToken, p.id)
	}
	u := o.users[strings.ToLower(p.owner)]
	if u == nil {
		return User{}, p, fmt.Errorf("%w: PAT %s owner is not a member", ErrInvalidToken, p.id)
	}
	if u.Disabled {
		return User{}, p, fmt.Errorf("%w: PAT %s owner is disabled", ErrInvalidToken, p.id)
	}
	return *u, p, nil
}

func (o *org) key() string { return strings.ToLower(o.Name) }

func (s *Emulator) patInfosLocked(keep func(*pat) bool) []PATInfo {
	var out []PATInfo
	for _, p := range s.pats {
		if keep(p) {
			out = append(out, s.infoLocked(p))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ValidFrom.Equal(out[j].ValidFrom) {
			return out[i].ValidFrom.Before(out[j].ValidFrom)
		}
		return out[i].AuthorizationID < out[j].AuthorizationID
	})
	return out
}

func (s *Emulator) infoLocked(p *pat) PATInfo {
	info := PATInfo{AuthorizationID: p.id, Org: p.org, OwnerObjectID: p.owner, DisplayName: p.displayName,
		Scope: p.scope, AllOrgs: p.allOrgs, ValidFrom: p.validFrom, ValidTo: p.validTo, RevokedAt: p.revokedAt,
		Status: p.status(s.clock.Now())}
	if o, ok := s.orgs[p.org]; ok {
		if u := o.users[strings.ToLower(p.owner)]; u != nil {
			info.OwnerUPN = u.UPN
		}
	}
	return info
}

// patAlphabet is what newer (84-character) PATs are made of.
const patAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newTokenValue makes an 84-character PAT in the style of the current format: random
// base62 with the "AZDO" signature secret scanners look for at positions 77-80.
func newTokenValue() string {
	b := make([]byte, 80)
	rand.Read(b) // never fails (crypto/rand panics internally on a broken source)
	out := make([]byte, 0, 84)
	for i, c := range b {
		if i == 76 {
			out = append(out, "AZDO"...)
		}
		out = append(out, patAlphabet[int(c)%len(patAlphabet)])
	}
	return string(out)
}

func validOrgName(name string) bool {
	if name == "" || len(name) > 50 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range name {
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
