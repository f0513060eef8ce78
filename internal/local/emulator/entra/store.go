package entra

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Directory is the emulated tenant. It is plain data so the local stack can load it from
// JSON; New validates it and fills in missing object ids.
type Directory struct {
	// TenantID is the tenant's GUID; the authority is https://localhost:PORT/<TenantID>.
	TenantID string `json:"tenantId"`
	// Domain is the tenant's verified domain (e.g. "contoso.localhost"). UserRealm answers
	// "Managed" for it and for the domain of every user's UPN; it is also accepted in
	// place of the tenant id in authority paths, as Entra accepts verified domains.
	Domain string `json:"domain,omitempty"`
	// AppRegistrations are the app registrations and managed identities.
	AppRegistrations []AppRegistration `json:"apps,omitempty"`
	// Users are the user accounts (the service accounts patrol signs in as).
	Users []User `json:"users,omitempty"`
	// SystemAssignedIdentity is the client id of the managed identity the MSI endpoint
	// serves when a request names no identity (the Function app's system-assigned one).
	SystemAssignedIdentity string `json:"systemAssignedIdentity,omitempty"`
}

// AppRegistration is an app registration (with its service principal) or a managed identity.
type AppRegistration struct {
	ClientID string `json:"clientId"`
	// Secret is the client secret; empty for public clients and managed identities.
	Secret string `json:"secret,omitempty"`
	// PublicClient allows the public-client flows (ROPC, device code) without a secret,
	// like "Allow public client flows" in the portal.
	PublicClient bool `json:"publicClient,omitempty"`
	// ObjectID is the service principal's object id: the oid of app-only tokens.
	ObjectID    string `json:"objectId,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	// ManagedIdentity marks a managed identity: tokens only from the MSI endpoint.
	ManagedIdentity bool `json:"managedIdentity,omitempty"`
	// ResourceID is a user-assigned identity's ARM id, matched against mi_res_id.
	ResourceID string `json:"resourceId,omitempty"`
	// Roles are app roles put in the roles claim of app-only tokens.
	Roles []string `json:"roles,omitempty"`
	// RedirectURIs are the registered redirect URIs of the authorization-code flow, e.g.
	// "http://localhost" (the "Mobile and desktop applications" platform): for localhost
	// and 127.0.0.1 any port matches, as in Entra.
	RedirectURIs []string `json:"redirectUris,omitempty"`
}

// User is a user account and the sign-in conditions the emulator enforces for it.
type User struct {
	UPN         string `json:"upn"`
	Password    string `json:"password,omitempty"`
	ObjectID    string `json:"objectId,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	// Disabled makes every sign-in and refresh fail with AADSTS50057.
	Disabled bool `json:"disabled,omitempty"`
	// RequiresMFA makes ROPC, and refreshing a token not obtained interactively, fail with
	// AADSTS50076; device-code and browser sign-ins (a person at a browser) satisfy it.
	RequiresMFA bool `json:"requiresMfa,omitempty"`
}

// normalize validates d and fills object ids and display names. It returns a copy.
func (d Directory) normalize() (Directory, error) {
	if _, err := uuid.Parse(d.TenantID); err != nil {
		return Directory{}, fmt.Errorf("entra: directory: tenant id %q is not a GUID", d.TenantID)
	}
	out := Directory{TenantID: strings.ToLower(d.TenantID), Domain: strings.ToLower(d.Domain), SystemAssignedIdentity: d.SystemAssignedIdentity}
	for i, a := range d.AppRegistrations {
		a, err := a.normalize()
		if err != nil {
			return Directory{}, fmt.Errorf("entra: directory: app %d: %w", i, err)
		}
		if out.app(a.ClientID) != nil {
			return Directory{}, fmt.Errorf("entra: directory: app %d: client id %s appears twice", i, a.ClientID)
		}
		out.AppRegistrations = append(out.AppRegistrations, a)
	}
	for i, u := range d.Users {
		u, err := u.normalize()
		if err != nil {
			return Directory{}, fmt.Errorf("entra: directory: user %d: %w", i, err)
		}
		if out.user(u.UPN) != nil {
			return Directory{}, fmt.Errorf("entra: directory: user %d: UPN %s appears twice", i, u.UPN)
		}
		out.Users = append(out.Users, u)
	}
	if id := out.SystemAssignedIdentity; id != "" {
		if a := out.app(id); a == nil || !a.ManagedIdentity {
			return Directory{}, fmt.Errorf("entra: directory: system-assigned identity %q is not an app marked managedIdentity", id)
		}
	}
	return out, nil
}

func (a AppRegistration) normalize() (AppRegistration, error) {
	if _, err := uuid.Parse(a.ClientID); err != nil {
		return AppRegistration{}, fmt.Errorf("client id %q is not a GUID", a.ClientID)
	}
	a.ClientID = strings.ToLower(a.ClientID)
	if a.ObjectID == "" {
		a.ObjectID = uuid.NewString()
	} else if _, err := uuid.Parse(a.ObjectID); err != nil {
		return AppRegistration{}, fmt.Errorf("object id %q is not a GUID", a.ObjectID)
	}
	if a.ManagedIdentity && (a.Secret != "" || a.PublicClient) {
		return AppRegistration{}, fmt.Errorf("managed identity %s cannot have a secret or be a public client", a.ClientID)
	}
	if a.PublicClient && a.Secret != "" {
		return AppRegistration{}, fmt.Errorf("public client %s cannot have a secret", a.ClientID)
	}
	if a.DisplayName == "" {
		a.DisplayName = a.ClientID
	}
	a.Roles = append([]string(nil), a.Roles...)
	for _, u := range a.RedirectURIs {
		if !validRedirectURI(u) {
			return AppRegistration{}, fmt.Errorf("redirect URI %q of %s: want https, or http on localhost or 127.0.0.1", u, a.ClientID)
		}
	}
	a.RedirectURIs = append([]string(nil), a.RedirectURIs...)
	return a, nil
}

func (u User) normalize() (User, error) {
	local, domain, ok := strings.Cut(u.UPN, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(u.UPN, " \t\r\n/") {
		return User{}, fmt.Errorf("UPN %q is not of the form name@domain", u.UPN)
	}
	if u.ObjectID == "" {
		u.ObjectID = uuid.NewString()
	} else if _, err := uuid.Parse(u.ObjectID); err != nil {
		return User{}, fmt.Errorf("object id %q of %s is not a GUID", u.ObjectID, u.UPN)
	}
	if u.DisplayName == "" {
		u.DisplayName = local
	}
	return u, nil
}

func (d *Directory) app(clientID string) *AppRegistration {
	for i := range d.AppRegistrations {
		if strings.EqualFold(d.AppRegistrations[i].ClientID, clientID) {
			return &d.AppRegistrations[i]
		}
	}
	return nil
}

// user finds a user by UPN; UPNs compare case-insensitively as in Entra.
func (d *Directory) user(upn string) *User {
	for i := range d.Users {
		if strings.EqualFold(d.Users[i].UPN, upn) {
			return &d.Users[i]
		}
	}
	return nil
}

func (d *Directory) userByOID(oid string) *User {
	for i := range d.Users {
		if d.Users[i].ObjectID == oid {
			return &d.Users[i]
		}
	}
	return nil
}

// managedIdentity finds a managed identity by one of the ids the MSI endpoint accepts.
func (d *Directory) managedIdentity(sel miSelector) *AppRegistration {
	for i := range d.AppRegistrations {
		a := &d.AppRegistrations[i]
		if !a.ManagedIdentity {
			continue
		}
		switch {
		case sel.ClientID != "" && strings.EqualFold(a.ClientID, sel.ClientID),
			sel.ObjectID != "" && strings.EqualFold(a.ObjectID, sel.ObjectID),
			sel.ResourceID != "" && a.ResourceID != "" && strings.EqualFold(a.ResourceID, sel.ResourceID):
			return a
		}
	}
	return nil
}

// knowsTenant reports whether tenant (from an authority path) names this directory.
// common and organizations are Entra's multi-tenant aliases; a single-tenant emulator
// resolves them to its own tenant.
func (d *Directory) knowsTenant(tenant string) bool {
	t := strings.ToLower(tenant)
	return t == d.TenantID || (d.Domain != "" && t == d.Domain) || t == "common" || t == "organizations"
}

// managedDomain reports whether UserRealm should call domain Managed.
func (d *Directory) managedDomain(domain string) bool {
	domain = strings.ToLower(domain)
	if domain == "" {
		return false
	}
	if domain == d.Domain {
		return true
	}
	for _, u := range d.Users {
		if _, ud, _ := strings.Cut(u.UPN, "@"); strings.EqualFold(ud, domain) {
			return true
		}
	}
	return false
}

// AddUser adds a user at runtime and returns it with its object id filled in.
func (e *Emulator) AddUser(u User) (User, error) {
	u, err := u.normalize()
	if err != nil {
		return User{}, fmt.Errorf("entra: add user: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dir.user(u.UPN) != nil {
		return User{}, fmt.Errorf("entra: add user: %s already exists", u.UPN)
	}
	e.dir.Users = append(e.dir.Users, u)
	return u, nil
}

// AddAppRegistration adds an app registration or managed identity at runtime and returns it with its
// object id filled in.
func (e *Emulator) AddAppRegistration(a AppRegistration) (AppRegistration, error) {
	a, err := a.normalize()
	if err != nil {
		return AppRegistration{}, fmt.Errorf("entra: add app: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dir.app(a.ClientID) != nil {
		return AppRegistration{}, fmt.Errorf("entra: add app: client id %s already exists", a.ClientID)
	}
	e.dir.AppRegistrations = append(e.dir.AppRegistrations, a)
	return a, nil
}

// User returns the user with this UPN (case-insensitive).
func (e *Emulator) User(upn string) (User, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u := e.dir.user(upn); u != nil {
		return *u, true
	}
	return User{}, false
}

// Directory returns a copy of the directory as it stands (secrets and passwords
// included: it is the emulator's configuration, for tests and the local stack).
func (e *Emulator) Directory() Directory {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.dir
	d.AppRegistrations = slices.Clone(d.AppRegistrations)
	d.Users = slices.Clone(d.Users)
	return d
}

// DisableUser blocks the account: sign-ins and refreshes then fail with AADSTS50057.
func (e *Emulator) DisableUser(upn string) error {
	return e.updateUser("disable user", upn, func(u *User) { u.Disabled = true })
}

// EnableUser lifts DisableUser.
func (e *Emulator) EnableUser(upn string) error {
	return e.updateUser("enable user", upn, func(u *User) { u.Disabled = false })
}

// RequireMFA sets whether the account needs MFA (AADSTS50076 on ROPC, and on refreshing
// tokens from non-interactive sign-ins).
func (e *Emulator) RequireMFA(upn string, required bool) error {
	return e.updateUser("require MFA", upn, func(u *User) { u.RequiresMFA = required })
}

// SetPassword changes the password and, as a password reset in Entra does, revokes the
// user's refresh tokens (AADSTS50173).
func (e *Emulator) SetPassword(upn, password string) error {
	return e.updateUser("set password", upn, func(u *User) {
		u.Password = password
		e.markRefreshLocked(u.ObjectID, func(r *refreshRecord) { r.Revoked = true })
	})
}

// ExpireRefreshTokens makes every refresh token the user holds fail with AADSTS700082, as
// if unused past the inactivity window. New sign-ins get working tokens again.
func (e *Emulator) ExpireRefreshTokens(upn string) error {
	return e.updateUser("expire refresh tokens", upn, func(u *User) {
		e.markRefreshLocked(u.ObjectID, func(r *refreshRecord) { r.Expired = true })
	})
}

// RevokeRefreshTokens revokes every refresh token the user holds (AADSTS50173), like
// "Revoke sessions" in the portal.
func (e *Emulator) RevokeRefreshTokens(upn string) error {
	return e.updateUser("revoke refresh tokens", upn, func(u *User) {
		e.markRefreshLocked(u.ObjectID, func(r *refreshRecord) { r.Revoked = true })
	})
}

// RefreshTokenCount reports how many refresh tokens the user holds that would still be
// accepted now (for tests and the inspection API; the values themselves are not kept).
func (e *Emulator) RefreshTokenCount(upn string) int {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.dir.user(upn)
	if u == nil {
		return 0
	}
	n := 0
	for _, r := range e.refresh {
		if r.UserOID == u.ObjectID && !r.Expired && !r.Revoked && now.Before(r.Expires) {
			n++
		}
	}
	return n
}

func (e *Emulator) updateUser(what, upn string, f func(*User)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.dir.user(upn)
	if u == nil {
		return fmt.Errorf("entra: %s: %w: %q", what, ErrUnknownUser, upn)
	}
	f(u)
	return nil
}

func (e *Emulator) markRefreshLocked(oid string, f func(*refreshRecord)) {
	for _, r := range e.refresh {
		if r.UserOID == oid {
			f(r)
		}
	}
}
