package functionapp

// This file reschedules a throttled command instead of holding its invocation (and the
// message's session) while the throttle lasts.

import (
	"context"
	"fmt"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// Decision: a Retry-After longer than the core sits out (rotation.MaxRetryWait) is
// waited out by the broker, not by the invocation. The command is sent again as a
// message scheduled at now + Retry-After, with Attempt one higher and MessageId
// contract.ThrottledMessageID(its id, attempt) — duplicate detection has already seen
// the operation id, and two copies of one delivery rescheduled alike must still collapse
// — and the message being handled completes. The rescheduled command is the same
// operation (same operation id), so its run cleans up what this one left (step 3) or
// finds the work done (patrol-op). The core has published a retryable failed outcome,
// which ends nothing: whoever waits for the operation keeps waiting. After
// MaxReschedules, or when the Rescheduler is absent or fails, the error goes back to
// the trigger as before (redelivery, then dead-letter).

// MaxReschedules bounds how often one command is rescheduled after throttling. Azure
// DevOps throttles per identity over a sliding 5 minutes: 16 reschedules of at least
// rotation.MaxRetryWait each outlast any throttle that is not an outage.
const MaxReschedules = 16

// Rescheduler sends a rotation command again later under its own MessageId, on the
// secret's session (the Service Bus adapter). A revocation needs nothing of its own:
// Commands.SendRevocation already takes a MessageId and a time.
type Rescheduler interface {
	RescheduleRotation(ctx context.Context, cmd contract.RotationCommand, messageID string, at time.Time) error
}

// Reschedule is when a command that failed with err runs again, if it is to be
// rescheduled rather than redelivered: err is transient and carries a Retry-After —
// the core has already sat out what it would (up to rotation.MaxRetryWait), so a throttle
// that reaches here is rescheduled, never redelivered at once nor reported failed — and
// the command has reschedules left. signedAt, when
// not zero, is a signed command's requestedAt: a command that would run past its
// contract.MaxCommandAge is not rescheduled (its signature would be refused).
func Reschedule(err error, attempt int, signedAt, now time.Time) (time.Time, bool) {
	after := rotation.RetryAfter(err)
	if err == nil || rotation.IsPermanent(err) || after <= 0 || attempt >= MaxReschedules {
		return time.Time{}, false
	}
	at := now.Add(after)
	if !signedAt.IsZero() && at.After(signedAt.Add(contract.MaxCommandAge)) {
		return time.Time{}, false
	}
	return at, true
}

// rescheduleRotation reschedules a throttled rotation command; handled is false when
// err is not for rescheduling (Reschedule), and the caller goes on as before.
func (a *App) rescheduleRotation(ctx context.Context, cmd contract.RotationCommand, err error) (handled bool, _ error) {
	if a.o.Reschedule == nil {
		return false, nil
	}
	var signedAt time.Time
	if cmd.NeedsSignature() {
		signedAt = cmd.RequestedAt
	}
	at, ok := Reschedule(err, cmd.Attempt, signedAt, a.now())
	if !ok {
		return false, nil
	}
	next := cmd
	next.Attempt++
	id := contract.ThrottledMessageID(cmd.OperationID, next.Attempt)
	if serr := a.o.Reschedule.RescheduleRotation(ctx, next, id, at); serr != nil {
		return true, fmt.Errorf("functionapp: reschedule throttled rotation of %q: %w (after %w)", cmd.Secret, serr, err)
	}
	a.log.InfoContext(ctx, "throttled; rotation rescheduled", "secret", cmd.Secret, "operationId", cmd.OperationID,
		"attempt", next.Attempt, "at", at, "messageId", id, "error", err)
	return true, nil
}

// rescheduleRevocation is rescheduleRotation for a revocation.
func (a *App) rescheduleRevocation(ctx context.Context, cmd contract.RevocationCommand, err error) (handled bool, _ error) {
	if a.o.Reschedule == nil {
		return false, nil
	}
	var signedAt time.Time
	if cmd.Signature != nil {
		signedAt = cmd.RequestedAt
	}
	at, ok := Reschedule(err, cmd.Attempt, signedAt, a.now())
	if !ok {
		return false, nil
	}
	next := cmd
	next.Attempt++
	id := contract.ThrottledMessageID(RevocationOf(cmd).MessageID(), next.Attempt)
	// A revocation is sent as any other, under the throttled attempt's id.
	if serr := a.o.Commands.SendRevocation(ctx, next, id, at); serr != nil {
		return true, fmt.Errorf("functionapp: reschedule throttled revocation of PAT %s: %w (after %w)", cmd.PATID, serr, err)
	}
	a.log.InfoContext(ctx, "throttled; revocation rescheduled", "secret", cmd.Secret, "patId", cmd.PATID,
		"attempt", next.Attempt, "at", at, "messageId", id, "error", err)
	return true, nil
}
