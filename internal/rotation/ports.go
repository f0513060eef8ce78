package rotation

import (
	"context"
	"time"

	"github.com/patrol-dev/patrol/internal/secret"
)

// Version is the metadata of a secret's current version. Stores return it without
// the value: the core never needs to read a PAT back.
type Version struct {
	Name string
	// ID is the version id (32 hex characters in Key Vault).
	ID      string
	Enabled bool
	// Created, NotBefore and Expires are zero when unset.
	Created   time.Time
	NotBefore time.Time
	Expires   time.Time
	Tags      map[string]string
}

// NewVersion is what the core writes.
type NewVersion struct {
	Value secret.Value
	// Expires is the PAT's validTo as Azure DevOps returned it.
	Expires time.Time
	// Tags always include patrol-managed=true.
	Tags map[string]string
}

// SecretStore is the inventory (Key Vault).
type SecretStore interface {
	// Current returns the current version's metadata, or an error wrapping
	// ErrNotFound when the secret does not exist (or is deleted).
	Current(ctx context.Context, name string) (Version, error)
	// SetVersion writes a new version and returns its metadata. Implementations must
	// refuse (ErrUnmanaged) when v.Tags lacks patrol-managed=true: patrol writes only
	// the secrets it manages. (The core writes over an unmanaged secret only when
	// adopting it, with the adopt tags included.)
	SetVersion(ctx context.Context, name string, v NewVersion) (Version, error)
	// ListManaged returns the current version of every secret tagged
	// patrol-managed=true (the Key Vault list already carries tags, no value).
	ListManaged(ctx context.Context) ([]Version, error)
}

// PATRequest asks for a new organization-scoped PAT (allOrgs is always false: global
// PATs are retired).
type PATRequest struct {
	Org         string
	DisplayName string
	Scopes      []string
	ValidTo     time.Time
}

// NewPAT is a created PAT. Token is the only copy of its value.
type NewPAT struct {
	ID      string // authorizationId
	Token   secret.Value
	ValidTo time.Time // as returned (organizations may shorten it)
	Scopes  []string
}

// PATInfo describes an existing PAT (no value).
type PATInfo struct {
	ID          string
	DisplayName string
	ValidFrom   time.Time
	ValidTo     time.Time
}

// Identity is who a PAT or an access token authenticates as.
type Identity struct {
	// ID is Azure DevOps' id of the identity (connectionData's authenticatedUser.id),
	// which is not the Entra object id; the one thing two identities are compared by.
	ID string
}

// PATs is the Azure DevOps PAT lifecycle API. auth is an Entra access token of the
// service account whose PATs are managed. Errors should implement Permanent() (policy
// violations, any patTokenError other than none, 4xx) and RetryAfter() (429, 503).
type PATs interface {
	// Create issues a PAT. A response whose patTokenError is not "none" is an error.
	Create(ctx context.Context, auth secret.Value, req PATRequest) (NewPAT, error)
	// Revoke revokes one of the caller's own PATs; an unknown id is success (nil).
	Revoke(ctx context.Context, auth secret.Value, org, id string) error
	// RevokeAsAdmin revokes another user's PAT through the token administration API;
	// ErrNotPermitted when the caller lacks that right; an unknown id is success.
	RevokeAsAdmin(ctx context.Context, auth secret.Value, org, id string) error
	// FindByDisplayName lists the caller's active PATs with exactly this display name.
	FindByDisplayName(ctx context.Context, auth secret.Value, org, displayName string) ([]PATInfo, error)
	// Verify makes an authenticated call to the organization as the PAT and says whom
	// it authenticated as. A PAT the service refuses is a permanent error wrapping
	// ErrPATRefused (it may not have propagated yet).
	Verify(ctx context.Context, org string, token secret.Value) (Identity, error)
	// Whoami makes the same call with the access token auth: the identity the
	// account's PATs authenticate as.
	Whoami(ctx context.Context, auth secret.Value, org string) (Identity, error)
}

// Identities signs service accounts in.
type Identities interface {
	// AccessToken returns an Entra access token for Azure DevOps acting as account
	// (silently from the account's cache, or ROPC where allowed). When an operator
	// must act (not signed in, sign-in expired, MFA demanded, account disabled) the
	// error's Permanent() is true and its message names the account and the fix
	// (identity.SignInError: "run `patrol login --service-account X`"); the outcome
	// is then needs-attention.
	AccessToken(ctx context.Context, account string) (secret.Value, error)
}

// accessToken is Identities.AccessToken as a step for do. (The Rotator's methods name
// their secret-name parameter secret, which hides the package there.)
func (r *Rotator) accessToken(ctx context.Context, account string) func() (secret.Value, error) {
	return func() (secret.Value, error) { return r.ids.AccessToken(ctx, account) }
}

// Revocation asks for a replaced PAT to be revoked (later, after its grace period).
type Revocation struct {
	Secret string `json:"secret"`
	Org    string `json:"org"`
	PATID  string `json:"patId"`
	// Owner is the account the PAT belongs to; when it is not Account the revocation
	// needs the token administration API.
	Owner string `json:"owner,omitempty"`
	// Account is the service account whose sign-in performs the revocation.
	Account string `json:"account"`
	// Op is the operation that replaced the PAT.
	Op string `json:"op"`
	// GraceEnd is when the replaced PAT's grace period ends (the replacing version's
	// creation plus the policy's grace); zero when no grace applies (an orphan). A
	// revocation scheduled before it does more than the schedule, so the Effects must
	// prove it comes from patrol (the Service Bus adapter signs it). Not sent: the
	// function that carries the revocation out works the grace end out from the vault.
	GraceEnd time.Time `json:"-"`
}

// MessageID is a stable id for duplicate detection: one revocation per PAT.
func (r Revocation) MessageID() string { return "revoke-" + r.PATID }

// Wakeup asks for the secret to be looked at again at a time.
type Wakeup struct {
	Secret string `json:"secret"`
	// Version the wake-up is for: if the secret has moved on, the wake-up is stale.
	Version string `json:"version"`
	// Op is the operation id the wake-up command will run under.
	Op string `json:"op"`
}

// NewWakeup builds the wake-up for a version, with a derived operation id so that
// scheduling it twice yields one command.
func NewWakeup(secret, version string) Wakeup {
	return Wakeup{Secret: secret, Version: version, Op: DeriveOpID(string(TriggerWakeup), secret, version)}
}

// Effects are the side effects of steps 7–8 (Service Bus in production). Each must be
// idempotent under repetition with the same arguments (use MessageID/Op as the
// Service Bus MessageId): the core repeats them when a command is redelivered. The core
// calls each once per run and does not retry it: the adapter's client does (retry.go).
type Effects interface {
	ScheduleRevocation(ctx context.Context, r Revocation, at time.Time) error
	ScheduleWakeup(ctx context.Context, w Wakeup, at time.Time) error
	Publish(ctx context.Context, o Outcome) error
}
