package rotation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/secret"
)

// Options configure a Rotator.
type Options struct {
	Defaults Defaults
	// Logger receives secret names, operation ids, steps and reasons; never values.
	// Nil discards.
	Logger *slog.Logger
	// Clock tells the time and waits between retries. Nil means SystemClock.
	Clock Clock
}

// Rotator runs the rotation protocol of docs/design.md for one secret at a time. The
// caller serialises commands per secret (Service Bus session = secret name); the
// protocol itself is idempotent per operation id and crash-safe:
//
//  1. gather the current version; Decide (a policy outside the operator's Bounds stops
//     here); check that the new version's tags will fit, so nothing is minted that
//     could not be stored.
//  2. get the service account's access token.
//  3. revoke PATs named for this operation (left by a crashed attempt).
//  4. create the PAT (repeating step 3 before each retry, so at most one PAT of the
//     operation is ever active).
//  5. verify it (and that it authenticates as the service account); revoke on failure.
//  6. write the new version (exp = returned validTo, state tags); revoke the new PAT
//     if the write certainly did not land.
//  7. schedule revocation of the previous PAT after the grace period (now with
//     RevokeNow).
//  8. schedule the next wake-up at the new PAT's renew-window start; publish.
//
// A command redelivered after step 6 finds patrol-op equal to its id (already done)
// and repeats steps 7–8, which are idempotent, so a crash between 6 and 8 converges.
type Rotator struct {
	store SecretStore
	pats  PATs
	ids   Identities
	fx    Effects
	d     Defaults
	log   *slog.Logger
	clock Clock
}

// NewRotator wires the core to its adapters.
func NewRotator(store SecretStore, pats PATs, ids Identities, fx Effects, o Options) *Rotator {
	r := &Rotator{store: store, pats: pats, ids: ids, fx: fx, d: o.Defaults, log: o.Logger, clock: o.Clock}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.clock == nil {
		r.clock = SystemClock
	}
	return r
}

// pendingPATID stands in for the PAT id when the new version's tags are checked before
// the PAT exists: an authorizationId has this length.
const pendingPATID = "00000000-0000-0000-0000-000000000000"

// Gather reads what Decide needs (step 1).
func (r *Rotator) Gather(ctx context.Context, secret string) (Input, error) {
	in := Input{Defaults: r.d}
	v, err := do(ctx, r, func() (Version, error) { return r.store.Current(ctx, secret) })
	switch {
	case errors.Is(err, ErrNotFound):
		return in, nil
	case err != nil:
		return in, err
	}
	in.Exists, in.Current = true, v
	return in, nil
}

// Run executes one command for one secret. The Outcome is always filled in (and
// published, except for an invalid trigger). The error is non-nil when the status
// is failed or needs-attention, or when the rotation succeeded but a later step (7–8)
// failed; IsPermanent(err) tells the caller whether a redelivery can help.
func (r *Rotator) Run(ctx context.Context, secret string, trig Trigger) (Outcome, error) {
	now := r.clock.Now().UTC()
	o := Outcome{Secret: secret, Op: trig.Op, Trigger: trig.Kind, RequestedBy: trig.RequestedBy, Time: now}
	if err := trig.Validate(); err != nil {
		o.Status, o.Message, o.Step = StatusFailed, err.Error(), StepGather
		return o, &StepError{Secret: secret, Step: StepGather, Err: permanentError{err}}
	}
	log := r.log.With("secret", secret, "op", trig.Op, "trigger", string(trig.Kind))

	in, err := r.Gather(ctx, secret)
	if err != nil {
		return r.failed(ctx, log, o, StepGather, err)
	}
	d := Decide(in, trig, now)
	log.InfoContext(ctx, "decided", "action", string(d.Action), "reason", string(d.Reason), "message", d.Message)
	o.Reason, o.Message, o.Org = d.Reason, d.Message, d.Policy.Org
	o.Owner, o.PATID = d.State.Owner, d.State.PATID

	switch d.Action {
	case ActionRotate:
		return r.rotate(ctx, log, secret, trig, in, d, o)
	case ActionAttention:
		return r.failed(ctx, log, o, StepGather, permanentError{d.Err})
	case ActionWait:
		o.Status, o.NextCheck = StatusSkipped, d.At
		w := NewWakeup(secret, in.Current.ID)
		if err := r.fx.ScheduleWakeup(ctx, w, d.At); err != nil {
			return r.failed(ctx, log, o, StepScheduleWakeup, err)
		}
		return r.publish(ctx, log, o)
	default:
		o.Status = StatusSkipped
		if d.Reason == ReasonAlreadyDone {
			// The version is ours; a crash may have cut steps 7–8 short.
			o.PreviousPATID, o.Version, o.Expires = d.State.PreviousPATID, in.Current.ID, in.Current.Expires
			pol, err := ParsePolicy(in.Current.Tags, r.d)
			if err != nil {
				return r.failed(ctx, log, o, StepGather, err)
			}
			// The previous PAT's owner was recorded only on the replaced version: the
			// revocation goes without it, and the function app takes it from the vault's
			// history (functionapp.OwnerOnRecord).
			prev := Revocation{Secret: secret, Org: pol.Org, PATID: d.State.PreviousPATID, Account: pol.ServiceAccount, Op: trig.Op}
			return r.finish(ctx, log, trig, in.Current, prev, pol, o)
		}
		return r.publish(ctx, log, o)
	}
}

func (r *Rotator) rotate(ctx context.Context, log *slog.Logger, secret string, trig Trigger, in Input, d Decision, o Outcome) (Outcome, error) {
	pol, old := d.Policy, d.State
	o.PreviousPATID, o.PATID, o.Owner = old.PATID, "", ""
	now := o.Time

	// The new version's tags must fit Key Vault's limits. Checked now, with a stand-in
	// PAT id of the real one's length, so that a secret whose tags cannot be written is
	// refused before anything is minted rather than minted for, refused and revoked.
	var base map[string]string
	if in.Exists {
		base = in.Current.Tags
	}
	st := State{Owner: strings.ToLower(pol.ServiceAccount), PATID: pendingPATID, PreviousPATID: old.PATID, Reason: d.Reason, Op: trig.Op}
	if _, err := VersionTags(base, trig.Policy, st); err != nil {
		return r.failed(ctx, log, o, StepGather, err)
	}

	// 2. Sign in.
	tok, err := do(ctx, r, r.accessToken(ctx, pol.ServiceAccount))
	if err != nil {
		return r.failed(ctx, log, o, StepSignIn, err)
	}

	// 3 + 4. Revoke leftovers of this operation, then create; on a transient create
	// failure the PAT may exist anyway (response lost), so clean up again first.
	display := DisplayName(secret, trig.Op)
	req := PATRequest{Org: pol.Org, DisplayName: display, Scopes: pol.Scopes, ValidTo: now.Add(pol.Lifetime).Truncate(time.Second)}
	step := StepCleanup
	pat, err := do(ctx, r, func() (NewPAT, error) {
		step = StepCleanup
		if err := r.revokeLeftovers(ctx, log, tok, pol.Org, display); err != nil {
			return NewPAT{}, err
		}
		step = StepCreate
		return r.pats.Create(ctx, tok, req)
	})
	if err != nil {
		return r.failed(ctx, log, o, step, err)
	}
	log.InfoContext(ctx, "created PAT", "patId", pat.ID, "validTo", pat.ValidTo)
	if pat.ID == "" || pat.Token.IsZero() || !pat.ValidTo.After(now) {
		err := permanent("Azure DevOps returned an unusable PAT (id %q, validTo %s)", pat.ID, pat.ValidTo.Format(time.RFC3339))
		return r.compensate(ctx, log, o, tok, pol.Org, pat.ID, StepCreate, err)
	}

	// 5. Verify as the PAT itself, and that it is the service account's.
	if err := r.verify(ctx, tok, pol, pat.Token); err != nil {
		return r.compensate(ctx, log, o, tok, pol.Org, pat.ID, StepVerify, err)
	}

	// 6. Store.
	st.PATID = pat.ID
	tags, err := VersionTags(base, trig.Policy, st)
	if err == nil {
		tags = AuditTags(tags, trig)
	}
	if err != nil {
		return r.compensate(ctx, log, o, tok, pol.Org, pat.ID, StepStore, err)
	}
	ver, err := do(ctx, r, func() (Version, error) {
		return r.store.SetVersion(ctx, secret, NewVersion{Value: pat.Token, Expires: pat.ValidTo, Tags: tags})
	})
	if err != nil {
		// The write may have landed with its answer lost. Revoking a PAT the secret
		// now holds would break every consumer, so look before revoking.
		cur, cerr := r.store.Current(ctx, secret)
		cst, _ := ParseState(cur.Tags)
		switch {
		case cerr != nil && !errors.Is(cerr, ErrNotFound):
			// Cannot tell: leave the PAT. A redelivery revokes it in step 3 (or
			// finds its work done); the sweep revokes patrol PATs nothing references.
			log.WarnContext(ctx, "store failed and the secret could not be re-read; leaving the new PAT for the retry", "patId", pat.ID, "error", cerr)
			return r.failed(ctx, log, o, StepStore, transient(err))
		case cerr == nil && cst.Op == trig.Op && cst.PATID == pat.ID:
			log.InfoContext(ctx, "store reported an error but the version landed", "version", cur.ID)
			ver = cur
		default:
			return r.compensate(ctx, log, o, tok, pol.Org, pat.ID, StepStore, err)
		}
	}
	log.InfoContext(ctx, "stored new version", "version", ver.ID, "patId", pat.ID, "expires", pat.ValidTo)
	if ver.Expires.IsZero() {
		ver.Expires = pat.ValidTo
	}
	if ver.Created.IsZero() {
		ver.Created = now
	}
	o.Status, o.PATID, o.Owner, o.Version, o.Expires = StatusRotated, pat.ID, st.Owner, ver.ID, pat.ValidTo

	prev := Revocation{Secret: secret, Org: pol.Org, PATID: old.PATID, Owner: old.Owner, Account: pol.ServiceAccount, Op: trig.Op}
	return r.finish(ctx, log, trig, ver, prev, pol, o)
}

// finish runs steps 7–8 for a stored version. Repeating it is harmless: the effects
// are keyed (Revocation.MessageID, Wakeup.Op) and times derive from the version.
func (r *Rotator) finish(ctx context.Context, log *slog.Logger, trig Trigger, ver Version, prev Revocation, pol Policy, o Outcome) (Outcome, error) {
	// 7. Retire the previous PAT after the grace period.
	if prev.PATID != "" && prev.PATID != o.PATID {
		created := ver.Created
		if created.IsZero() {
			created = o.Time
		}
		prev.GraceEnd = created.Add(pol.Grace)
		at := prev.GraceEnd
		if trig.RevokeNow {
			at = o.Time // before GraceEnd: the Effects sign it
		}
		if err := r.fx.ScheduleRevocation(ctx, prev, at); err != nil {
			return r.failedAfterStore(ctx, log, o, StepScheduleRevocation, err)
		}
		log.InfoContext(ctx, "scheduled revocation", "patId", prev.PATID, "at", at)
	}
	// 8. Wake up at the new PAT's renew window, then tell the world.
	next := RenewAt(ver.Expires, lifetimeOf(ver, pol.Lifetime), r.d.RenewBefore)
	wake := next.Add(WakeupLag)
	if err := r.fx.ScheduleWakeup(ctx, NewWakeup(o.Secret, ver.ID), wake); err != nil {
		return r.failedAfterStore(ctx, log, o, StepScheduleWakeup, err)
	}
	o.NextCheck = next
	return r.publish(ctx, log, o)
}

// revokeLeftovers revokes every active PAT named for this operation (step 3).
func (r *Rotator) revokeLeftovers(ctx context.Context, log *slog.Logger, tok secret.Value, org, display string) error {
	left, err := r.pats.FindByDisplayName(ctx, tok, org, display)
	if err != nil {
		return err
	}
	for _, p := range left {
		if err := r.pats.Revoke(ctx, tok, org, p.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		log.InfoContext(ctx, "revoked PAT left by an earlier attempt", "patId", p.ID)
	}
	return nil
}

// compensate revokes a new PAT that will not be stored, then reports the failure.
func (r *Rotator) compensate(ctx context.Context, log *slog.Logger, o Outcome, tok secret.Value, org, patID string, step Step, cause error) (Outcome, error) {
	if patID != "" {
		err := doErr(ctx, r, func() error { return r.pats.Revoke(ctx, tok, org, patID) })
		if err != nil && !errors.Is(err, ErrNotFound) {
			// Still named for this operation: a redelivery or the sweep revokes it.
			log.WarnContext(ctx, "could not revoke the unused new PAT", "patId", patID, "error", err)
		} else {
			log.InfoContext(ctx, "revoked the unused new PAT", "patId", patID)
		}
	}
	return r.failed(ctx, log, o, step, cause)
}

// failed reports a failure before anything was stored: the old PAT is untouched.
func (r *Rotator) failed(ctx context.Context, log *slog.Logger, o Outcome, step Step, err error) (Outcome, error) {
	se := &StepError{Secret: o.Secret, Step: step, Err: err}
	o.Status, o.Step, o.Message = StatusFailed, step, err.Error()
	// Permanent failures to sign in or to read the secret's policy, and missing
	// permissions, wait for an operator rather than for a code fix or an outage.
	if errors.Is(err, ErrNotPermitted) || errors.Is(err, ErrSignInRequired) || (step == StepSignIn || step == StepGather) && IsPermanent(err) {
		o.Status = StatusNeedsAttention
	}
	o.Retryable = !IsPermanent(se)
	if o.Retryable {
		log.WarnContext(ctx, "rotation failed; will be retried", "step", string(step), "error", err)
	} else {
		log.ErrorContext(ctx, "rotation failed", "step", string(step), "status", string(o.Status), "error", err)
	}
	if perr := r.fx.Publish(ctx, o); perr != nil {
		log.WarnContext(ctx, "could not publish outcome", "error", perr)
	}
	return o, se
}

// failedAfterStore: the new version is stored (the rotation happened) but a later
// step failed; the command must be redelivered to finish (it will find its work done).
func (r *Rotator) failedAfterStore(ctx context.Context, log *slog.Logger, o Outcome, step Step, err error) (Outcome, error) {
	o.Message, o.Step, o.Retryable = fmt.Sprintf("%s: %v", step, err), step, true
	log.WarnContext(ctx, "stored, but a later step failed; will be retried", "step", string(step), "error", err)
	return o, &StepError{Secret: o.Secret, Step: step, Err: transient(err)}
}

func (r *Rotator) publish(ctx context.Context, log *slog.Logger, o Outcome) (Outcome, error) {
	if err := r.fx.Publish(ctx, o); err != nil {
		return r.failedAfterStore(ctx, log, o, StepPublish, err)
	}
	log.InfoContext(ctx, "outcome", "status", string(o.Status), "reason", string(o.Reason), "patId", o.PATID,
		"previousPatId", o.PreviousPATID, "version", o.Version, "nextCheck", o.NextCheck)
	return o, nil
}

// Revoke performs a scheduled revocation (the Revoke function). Not-found is
// success. It refuses to revoke the PAT a secret currently holds, whatever the order
// in which messages arrive. A PAT owned by someone other than the service account is
// revoked through the token administration API where permitted, else reported as
// needs-attention.
func (r *Rotator) Revoke(ctx context.Context, rev Revocation) (Outcome, error) {
	now := r.clock.Now().UTC()
	o := Outcome{Secret: rev.Secret, Op: rev.Op, Trigger: TriggerRevoke, Org: rev.Org, Owner: rev.Owner, PreviousPATID: rev.PATID, Time: now}
	log := r.log.With("secret", rev.Secret, "op", rev.Op, "trigger", string(TriggerRevoke), "patId", rev.PATID)
	if rev.Secret == "" || rev.Org == "" || rev.PATID == "" || rev.Account == "" {
		err := permanent("revocation needs secret, org, patId and account")
		o.Status, o.Message, o.Step = StatusFailed, err.Error(), StepRevoke
		return o, &StepError{Secret: rev.Secret, Step: StepRevoke, Err: err}
	}
	in, err := r.Gather(ctx, rev.Secret)
	if err != nil {
		return r.failed(ctx, log, o, StepGather, err)
	}
	if in.Exists {
		if st, err := ParseState(in.Current.Tags); err == nil && st.PATID == rev.PATID {
			o.Status, o.Reason = StatusSkipped, ReasonStillCurrent
			o.Message = "the PAT is the secret's current one; not revoking it"
			return r.publish(ctx, log, o)
		}
	}
	tok, err := do(ctx, r, r.accessToken(ctx, rev.Account))
	if err != nil {
		return r.failed(ctx, log, o, StepSignIn, err)
	}
	admin := rev.Owner != "" && !strings.EqualFold(rev.Owner, rev.Account)
	err = doErr(ctx, r, func() error {
		if admin {
			return r.pats.RevokeAsAdmin(ctx, tok, rev.Org, rev.PATID)
		}
		return r.pats.Revoke(ctx, tok, rev.Org, rev.PATID)
	})
	switch {
	case errors.Is(err, ErrNotPermitted):
		err = permanentError{fmt.Errorf("PAT %s belongs to %s and %s may not revoke it (%w: %v): revoke it in the organization's settings or grant token administration", rev.PATID, rev.Owner, rev.Account, ErrNotPermitted, err)}
		return r.failed(ctx, log, o, StepRevoke, err)
	case err != nil && !errors.Is(err, ErrNotFound):
		return r.failed(ctx, log, o, StepRevoke, err)
	}
	o.Status, o.Reason = StatusRevoked, ReasonReplaced
	return r.publish(ctx, log, o)
}

// transientError marks an error as worth a redelivery whatever its own class.
type transientError struct{ error }

func (e transientError) Unwrap() error   { return e.error }
func (e transientError) Permanent() bool { return false }

func transient(err error) error { return transientError{err} }

// WakeupLag is how long after a new PAT's renew window opens patrol's own wake-up
// fires. With the default window the window opens exactly when Key Vault raises
// SecretNearExpiry (30 days before exp), and the event is the primary trigger: a
// wake-up at the same instant would always win the race (one hop against four) and
// leave the event to find its version already replaced. An hour later, the wake-up only
// backs up an event that was lost or never subscribed; after an event-driven rotation it
// names a version that is no longer current and is skipped as stale.
const WakeupLag = time.Hour
