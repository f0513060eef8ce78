package functionapp

// This file is the function app's side of the security boundary (docs/security.md):
// commands that do more than a sweep prove they come from patrol, revocations touch
// only PATs patrol has on record for the secret and wait for the replaced PAT's grace
// end unless patrol signed them, manual rotations are rate-limited per
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

// ReasonRevocationDeferred is the outcome reason of an unsigned (or not validly signed)
// revocation that arrived before the replaced PAT's grace end: it is put off to then.
const ReasonRevocationDeferred = "revocation-deferred"

// DeferSlack is how long after the grace end a deferred revocation is delivered, so a
// clock a little behind the broker's still finds it due (were it deferred again to the
// same time, duplicate detection would drop it).
const DeferSlack = time.Minute

// errNoSuchSecret is the one answer for a name patrol does not manage, an internal
// secret and an absent one: the same status and body, so the HTTP functions are no
// oracle for what the vault holds.
func errNoSuchSecret(name string) error {
	return fmt.Errorf("no secret %q that patrol manages: %w", name, handlers.ErrNotFound)
}

// verify checks the signature of a command that must be signed: it reads the key
// version sig names and runs the command's own check with it (check reports a missing
// signature too). doc names the command in refusals.
func (a *App) verify(ctx context.Context, doc string, sig *contract.CommandSignature, check func(contract.CommandKey) error) error {
	if sig == nil {
		return check(contract.CommandKey{}) // the "missing" refusal
	}
	if a.o.CommandKeys == nil {
		return &contract.AuthError{Doc: doc, Problem: "this app has no command key configured, so it cannot verify signed commands"}
	}
	key, err := a.o.CommandKeys.VerifyingKey(ctx, sig.KeyVersion)
	if err != nil {
		if errors.Is(err, contract.ErrUnauthenticated) {
			return &contract.AuthError{Doc: doc, Problem: "key version " + contract.Clip(sig.KeyVersion) + " is not a usable command key"}
		}
		return fmt.Errorf("functionapp: read the command key: %w", err) // transient: retried
	}
	return check(key)
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

// GraceEnd is when the schedule revokes the PAT patID names: the creation of the
// version that replaced it plus the grace of that version's policy (its tags, else the
// defaults), as the rotator computed it when it scheduled the revocation. The version
// that replaced it is the first naming it patrol-previous-pat-id, else the first
// created after the newest version that held it. ok is false when no version replaced
// it: the secret's current PAT (the core refuses to revoke it) or an orphan no version
// names (the sweep revokes those at once). A version without a creation time (never
// from Key Vault) gives a grace end long past.
func GraceEnd(patID string, versions []rotation.Version, d rotation.Defaults) (time.Time, bool) {
	is := func(v rotation.Version, tag string) bool {
		return strings.EqualFold(strings.TrimSpace(v.Tags[tag]), patID)
	}
	var by *rotation.Version
	var held time.Time
	heldBy := false
	for i, v := range versions {
		if is(v, rotation.TagPreviousPATID) && (by == nil || v.Created.Before(by.Created)) {
			by = &versions[i]
		}
		if is(v, rotation.TagPATID) && (!heldBy || v.Created.After(held)) {
			held, heldBy = v.Created, true
		}
	}
	if by == nil && heldBy {
		for i, v := range versions {
			if v.Created.After(held) && (by == nil || v.Created.Before(by.Created)) {
				by = &versions[i]
			}
		}
	}
	if by == nil {
		return time.Time{}, false
	}
	grace := d.Grace
	if p, err := rotation.ParsePolicy(by.Tags, d); err == nil {
		grace = p.Grace
	}
	return by.Created.Add(grace), true
}

// checkRevocation gathers what OnRecord needs and applies it; a refusal is published
// as a failed outcome and returned as a permanent error (the handler dead-letters the
// message with the reason). Errors reading the vault or Azure DevOps are transient. It
// returns the secret's versions for GraceEnd.
func (a *App) checkRevocation(ctx context.Context, cmd contract.RevocationCommand) ([]rotation.Version, error) {
	in, err := a.o.Rotator.Gather(ctx, cmd.Secret)
	if err != nil {
		return nil, fmt.Errorf("functionapp: read secret %q: %w", cmd.Secret, err)
	}
	versions := []rotation.Version{}
	if in.Exists {
		versions = append(versions, in.Current)
		if a.o.History != nil {
			if versions, err = a.o.History.Versions(ctx, cmd.Secret); err != nil {
				return nil, fmt.Errorf("functionapp: list versions of %q: %w", cmd.Secret, err)
			}
		}
	}
	why := OnRecord(cmd, in, versions, nil, a.o.Defaults)
	if why != "" && in.Exists && a.o.PATs != nil {
		// Not held by any version: an orphan is the only other way it is ours.
		rev := RevocationOf(cmd)
		pats, err := a.o.PATs.PatrolPATs(ctx, rev.Account, cmd.Org)
		if err != nil {
			return nil, fmt.Errorf("functionapp: list patrol PATs of %s in %s: %w", rev.Account, cmd.Org, err)
		}
		why = OnRecord(cmd, in, versions, pats, a.o.Defaults)
	}
	if why == "" {
		return versions, nil
	}
	// The message fails until Service Bus dead-letters it: record the refusal once, at
	// its first delivery, not at each of the redeliveries.
	if mi, ok := handlers.MessageFrom(ctx); !ok || mi.DeliveryCount <= 1 {
		o := rotation.Outcome{Status: rotation.StatusFailed, Secret: cmd.Secret, Op: cmd.OperationID, Trigger: rotation.TriggerRevoke,
			Reason: ReasonNotOnRecord, Org: cmd.Org, PreviousPATID: cmd.PATID, Message: "revocation refused: " + why, Time: a.now()}
		if err := a.o.Publisher.Publish(ctx, o); err != nil {
			return nil, fmt.Errorf("functionapp: publish the refused revocation: %w", err)
		}
		a.log.WarnContext(ctx, "revocation refused", "secret", cmd.Secret, "patId", cmd.PATID, "operationId", cmd.OperationID, "reason", why)
	}
	return nil, fmt.Errorf("revocation refused: %s: %w (%w)", why, handlers.ErrPermanent, handlers.ErrRecorded)
}

// checkEarly lets a revocation through when it comes at or after the replaced PAT's
// grace end, or carries patrol's valid signature; otherwise it defers it (deferred is
// true) and the message is done. A key that cannot be read now is a transient error.
func (a *App) checkEarly(ctx context.Context, cmd contract.RevocationCommand, versions []rotation.Version) (deferred bool, err error) {
	end, ok := GraceEnd(cmd.PATID, versions, a.o.Defaults)
	if !ok || !a.now().Before(end) {
		return false, nil
	}
	err = a.verify(ctx, "revocation command", cmd.Signature, func(k contract.CommandKey) error { return cmd.Verify(k, a.now()) })
	switch {
	case err == nil:
		a.log.InfoContext(ctx, "signed revocation before the grace end", "secret", cmd.Secret, "patId", cmd.PATID,
			"operationId", cmd.OperationID, "graceEnd", end)
		return false, nil
	case errors.Is(err, contract.ErrUnauthenticated):
		return true, a.deferRevocation(ctx, cmd, end, err)
	default:
		return false, err
	}
}

// DeferredRevocationID is the MessageId of a revocation deferred to `at`: one per PAT
// and time, so a flood of early revocations for one PAT leaves one deferred message.
func DeferredRevocationID(patID string, at time.Time) string {
	return fmt.Sprintf("revoke-%s-at-%d", strings.ToLower(patID), at.Unix())
}

// deferRevocation puts an early revocation that could not prove it comes from patrol
// off to the replaced PAT's grace end (what the schedule does anyway) and reports it:
// a skipped outcome naming why and when, and a warning. Decision (docs/security.md,
// Queue sender): deferring rather than dead-lettering revokes nothing early either
// way, and a revocation of patrol's own whose signature no longer verifies (older
// than contract.MaxCommandAge after retries, its key withdrawn) still happens without
// an operator.
func (a *App) deferRevocation(ctx context.Context, cmd contract.RevocationCommand, graceEnd time.Time, why error) error {
	at := graceEnd.Add(DeferSlack)
	later := cmd
	later.Signature, later.RequestedAt = nil, time.Time{}
	if err := a.o.Commands.SendRevocation(ctx, later, DeferredRevocationID(cmd.PATID, at), at); err != nil {
		return fmt.Errorf("functionapp: defer the revocation of %s: %w", cmd.PATID, err)
	}
	o := rotation.Outcome{Status: rotation.StatusSkipped, Secret: cmd.Secret, Op: cmd.OperationID, Trigger: rotation.TriggerRevoke,
		Reason: ReasonRevocationDeferred, Org: cmd.Org, PreviousPATID: cmd.PATID, NextCheck: at, Time: a.now(),
		Message: fmt.Sprintf("revocation deferred to %s, the end of the replaced PAT's grace period: before then it must be signed by patrol (%v)",
			at.UTC().Format(time.RFC3339), why)}
	if err := a.o.Publisher.Publish(ctx, o); err != nil {
		return fmt.Errorf("functionapp: publish the deferred revocation: %w", err)
	}
	a.log.WarnContext(ctx, "revocation before the grace end without a valid signature; deferred", "secret", cmd.Secret,
		"patId", cmd.PATID, "operationId", cmd.OperationID, "until", at, "error", why)
	return nil
}
