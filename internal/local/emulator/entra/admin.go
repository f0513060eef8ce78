package entra

import (
	"fmt"
	"slices"
)

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
