package functionapp

// This file is the function app's side of the security boundary (docs/security.md):
// commands that do more than a sweep prove they come from patrol, revocations touch
// only PATs patrol has on record for the secret, manual rotations are rate-limited per
// secret, and internal secrets look absent from outside.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// CommandKeys reads the command-signing key (the Key Vault adapter's CommandKeys).
// VerifyingKey returns an error matching contract.ErrUnauthenticated when the version
// is not a usable key of patrol's (missing, disabled, not tagged as the command key).
type CommandKeys interface {
	SigningKey(ctx context.Context) (contract.CommandKey, error)
	VerifyingKey(ctx context.Context, version string) (contract.CommandKey, error)
}

// History lists every version of a secret, tags included (the Key Vault adapter).
type History interface {
	Versions(ctx context.Context, name string) ([]rotation.Version, error)
}

// DefaultManualCooldown is Options.ManualCooldown's default (config's
// PATROL_MANUAL_COOLDOWN default).
const DefaultManualCooldown = 10 * time.Minute

// ReasonNotOnRecord is the outcome reason of a refused revocation.
const ReasonNotOnRecord = "not-on-record"

// ReasonCooldown is the outcome reason of a manual rotation skipped inside the cooldown.
const ReasonCooldown = "manual-cooldown"

// errNoSuchSecret is the one answer for a name patrol does not manage, an internal
// secret and an absent one: the same status and body, so the HTTP functions are no
// oracle for what the vault holds.
func errNoSuchSecret(name string) error {
	return fmt.Errorf("no secret %q that patrol manages: %w", name, handlers.ErrNotFound)
}

// verify checks a command that must be signed (contract.RotationCommand.NeedsSignature).
func (a *App) verify(ctx context.Context, cmd contract.RotationCommand) error {
	if cmd.Signature == nil {
		return cmd.Verify(contract.CommandKey{}, a.now()) // the "missing" refusal
	}
	if a.o.CommandKeys == nil {
		return &contract.AuthError{Problem: "this app has no command key configured, so it cannot verify signed commands"}
	}
	key, err := a.o.CommandKeys.VerifyingKey(ctx, cmd.Signature.KeyVersion)
	if err != nil {
		if errors.Is(err, contract.ErrUnauthenticated) {
			return &contract.AuthError{Problem: "key version " + contract.Clip(cmd.Signature.KeyVersion) + " is not a usable command key"}
		}
		return fmt.Errorf("functionapp: read the command key: %w", err) // transient: retried
	}
	return cmd.Verify(key, a.now())
}

// sign signs a command RotateNow sends.
func (a *App) sign(ctx context.Context, cmd *contract.RotationCommand) error {
	if a.o.CommandKeys == nil {
		return fmt.Errorf("functionapp: no command key configured: %w", handlers.ErrPermanent)
	}
	if err := cmd.Validate(); err != nil {
		return err
	}
	key, err := a.o.CommandKeys.SigningKey(ctx)
	if err != nil {
		return fmt.Errorf("functionapp: read the command key: %w", err)
	}
	return cmd.Sign(key)
}

// CooldownLeft is how long a new manual rotation of the secret must wait: the rest of
// the cooldown since the current version, when a manual rotation wrote it. It reads
// only the vault's state, which every instance shares.
func CooldownLeft(in rotation.Input, cooldown time.Duration, now time.Time) time.Duration {
	if cooldown <= 0 || !in.Exists || in.Current.Created.IsZero() ||
		in.Current.Tags[rotation.TagReason] != string(rotation.ReasonManual) {
		return 0
	}
	left := in.Current.Created.Add(cooldown).Sub(now)
	if left <= 0 {
		return 0
	}
	return left
}

// TooManyRequests is RotateNow's refusal inside the cooldown: HTTP 429 with Retry-After.
type TooManyRequests struct {
	Secret string
	After  time.Duration
}

func (e *TooManyRequests) Error() string {
	return fmt.Sprintf("secret %q was rotated by hand less than the cooldown ago; retry after %s", e.Secret, e.After.Round(time.Second))
}

// Unwrap classifies the refusal (handlers.ErrTooManyRequests).
func (e *TooManyRequests) Unwrap() error { return handlers.ErrTooManyRequests }

// RetryAfter is the Retry-After the handler sends, in whole seconds rounded up.
func (e *TooManyRequests) RetryAfter() time.Duration {
	s := (e.After + time.Second - 1) / time.Second
	return s * time.Second
}

// OnRecord decides whether patrol may revoke the PAT a revocation names: it must be a
// PAT patrol has on record for that secret — the patrol-pat-id or patrol-previous-pat-id
// of one of its versions, in the revocation's organization — or an orphan, a PAT of the
// secret's service account in its organization whose display name is patrol's for
// that secret (`patrol <secret> <op>`). pats are the account's patrol PATs (nil when
// not looked up). The empty string means yes; otherwise the reason it is refused.
func OnRecord(cmd contract.RevocationCommand, in rotation.Input, versions []rotation.Version, pats []rotation.PATInfo, d rotation.Defaults) string {
	switch {
	case !in.Exists:
		return fmt.Sprintf("the secret %q does not exist", cmd.Secret)
	case rotation.IsInternalSecret(cmd.Secret, in.Current.Tags):
		return fmt.Sprintf("the secret %q is one of patrol's own", cmd.Secret)
	}
	for _, v := range versions {
		for _, tag := range []string{rotation.TagPATID, rotation.TagPreviousPATID} {
			if !strings.EqualFold(strings.TrimSpace(v.Tags[tag]), cmd.PATID) {
				continue
			}
			if org := strings.TrimSpace(v.Tags[rotation.TagOrg]); org != "" && !strings.EqualFold(org, cmd.Org) {
				return fmt.Sprintf("PAT %s is on record for %q in organization %s, not %s", cmd.PATID, cmd.Secret, org, cmd.Org)
			}
			return ""
		}
	}
	pol, err := rotation.ParsePolicy(in.Current.Tags, d)
	account := cmd.Account
	if account == "" {
		account = cmd.Owner
	}
	if err == nil && strings.EqualFold(pol.Org, cmd.Org) && strings.EqualFold(pol.ServiceAccount, account) {
		for _, p := range pats {
			if !strings.EqualFold(p.ID, cmd.PATID) {
				continue
			}
			if secret, _, ok := rotation.ParseDisplayName(p.DisplayName); ok && strings.EqualFold(secret, cmd.Secret) {
				return ""
			}
		}
	}
	return fmt.Sprintf("PAT %s is not on record for %q (no version holds or replaced it, and it is not an orphan named for it)", cmd.PATID, cmd.Secret)
}

// checkRevocation gathers what OnRecord needs and applies it; a refusal is published
// as a failed outcome and returned as a permanent error (the handler dead-letters the
// message with the reason). Errors reading the vault or Azure DevOps are transient.
func (a *App) checkRevocation(ctx context.Context, cmd contract.RevocationCommand) error {
	in, err := a.o.Rotator.Gather(ctx, cmd.Secret)
	if err != nil {
		return fmt.Errorf("functionapp: read secret %q: %w", cmd.Secret, err)
	}
	versions := []rotation.Version{}
	if in.Exists {
		versions = append(versions, in.Current)
		if a.o.History != nil {
			if versions, err = a.o.History.Versions(ctx, cmd.Secret); err != nil {
				return fmt.Errorf("functionapp: list versions of %q: %w", cmd.Secret, err)
			}
		}
	}
	why := OnRecord(cmd, in, versions, nil, a.o.Defaults)
	if why != "" && in.Exists && a.o.PATs != nil {
		// Not held by any version: an orphan is the only other way it is ours.
		rev := RevocationOf(cmd)
		pats, err := a.o.PATs.PatrolPATs(ctx, rev.Account, cmd.Org)
		if err != nil {
			return fmt.Errorf("functionapp: list patrol PATs of %s in %s: %w", rev.Account, cmd.Org, err)
		}
		why = OnRecord(cmd, in, versions, pats, a.o.Defaults)
	}
	if why == "" {
		return nil
	}
	// The message fails until Service Bus dead-letters it: record the refusal once, at
	// its first delivery, not at each of the redeliveries.
	if mi, ok := handlers.MessageFrom(ctx); !ok || mi.DeliveryCount <= 1 {
		o := rotation.Outcome{Status: rotation.StatusFailed, Secret: cmd.Secret, Op: cmd.OperationID, Trigger: rotation.TriggerRevoke,
			Reason: ReasonNotOnRecord, Org: cmd.Org, PreviousPATID: cmd.PATID, Message: "revocation refused: " + why, Time: a.now()}
		if err := a.o.Publisher.Publish(ctx, o); err != nil {
			return fmt.Errorf("functionapp: publish the refused revocation: %w", err)
		}
		a.log.WarnContext(ctx, "revocation refused", "secret", cmd.Secret, "patId", cmd.PATID, "operationId", cmd.OperationID, "reason", why)
	}
	return fmt.Errorf("revocation refused: %s: %w (%w)", why, handlers.ErrPermanent, handlers.ErrRecorded)
}
