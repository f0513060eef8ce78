package handlers

import (
	"context"
	"errors"

	"github.com/patrol-dev/patrol/internal/contract"
)

// App is the business logic behind the functions, one method per function, each taking
// a decoded, validated input: the message contract's types (internal/contract) for
// Service Bus messages, this package's for what only the host delivers (Key Vault
// events, HTTP requests, timer ticks). The wiring (internal/cli) builds it. The
// Service Bus delivery a message arrived in is on ctx (MessageFrom).
//
// Return nil when the input was handled (including "nothing to do"). Otherwise the error
// is classified (see Classify) to decide between retry, dead-letter and HTTP status.
type App interface {
	// KeyVaultEvent handles a near-expiry/expired event (KeyVaultEvents).
	KeyVaultEvent(ctx context.Context, ev KeyVaultEvent) error
	// Offboard fans an HR offboarding message out into rotation commands (Offboarding).
	Offboard(ctx context.Context, msg contract.OffboardingMessage) error
	// Rotate runs the rotation protocol for one secret (Rotate, session = secret).
	Rotate(ctx context.Context, cmd contract.RotationCommand) error
	// Revoke revokes a replaced PAT; an already revoked or unknown PAT is success (Revoke).
	Revoke(ctx context.Context, cmd contract.RevocationCommand) error
	// RotateNow enqueues an emergency rotation and, if req.Wait > 0, waits up to that
	// long for its outcome (RotateNow).
	RotateNow(ctx context.Context, req RotateNowRequest) (RotateNowResult, error)
	// Status reports one secret or all managed secrets (SecretStatus).
	Status(ctx context.Context, req StatusRequest) (contract.StatusResult, error)
	// Sweep enqueues what policy says is due and cleans up orphaned PATs (Sweep).
	Sweep(ctx context.Context, tick SweepTick) error
	// Account answers the account of a person, live (OffboardingReport).
	Account(ctx context.Context, person contract.Person) (contract.PersonAccount, error)
}

// RotateNowResult is what RotateNow reports: the operation id always, the outcome when it
// finished within the request's Wait.
type RotateNowResult struct {
	OperationID string
	Outcome     *contract.Outcome // nil: still running → 202
}

// FailureReporter publishes a `failed` outcome for a message patrol gives up on (once,
// at its first delivery); the host then abandons it until Service Bus dead-letters it.
// Owned here; the outcome publisher implements it.
type FailureReporter interface {
	ReportFailure(ctx context.Context, f contract.Failure) error
}

// Deps is what the handler needs beyond the protocol. It is built lazily, on the first
// invocation, so the handler answers the readiness probe before any Azure client exists.
type Deps struct {
	App      App
	Failures FailureReporter
}

// Class is how an error from App (or decoding) is treated.
type Class int

// Error classes.
const (
	Transient       Class = iota // retry: non-2xx to the host; HTTP 503
	Permanent                    // never succeeds: reported once, failed until dead-lettered; HTTP 422
	BadRequest                   // the input is invalid: like Permanent; HTTP 400
	NotFound                     // HTTP 404; for messages like Permanent
	Conflict                     // HTTP 409; for messages like Transient (another operation holds the secret)
	TooManyRequests              // HTTP 429 with Retry-After (the error's RetryAfter); for messages like Transient
)

func (c Class) String() string {
	return [...]string{"transient", "permanent", "bad-request", "not-found", "conflict", "too-many-requests"}[c]
}

// Sentinel errors App implementations (or the wiring's Classify) can wrap to classify
// an error without a custom classifier.
var (
	ErrPermanent  = errors.New("permanent failure")
	ErrBadRequest = errors.New("bad request")
	ErrNotFound   = errors.New("not found")
	ErrConflict   = errors.New("conflict")
	// ErrRecorded marks a message failure the App has already recorded itself (a failed
	// outcome naming the reason, published at the message's first delivery): the
	// handler then publishes no second one and only logs.
	ErrRecorded = errors.New("failure already recorded")
	// ErrTooManyRequests: refused for now (RotateNow's cooldown); an error in the chain
	// with a `RetryAfter() time.Duration` method gives the Retry-After.
	ErrTooManyRequests = errors.New("too many requests")
)

// Classify is the default classifier: the sentinels above, contract.ErrMalformed (decoding),
// contract.ErrUnauthenticated (permanent: a redelivery carries the same signature),
// and any error in the chain with a `Permanent() bool` method returning true; everything
// else (deadline exceeded included) is transient.
func Classify(err error) Class {
	var perm interface{ Permanent() bool }
	switch {
	case errors.Is(err, contract.ErrMalformed), errors.Is(err, ErrBadRequest):
		return BadRequest
	case errors.Is(err, ErrNotFound):
		return NotFound
	case errors.Is(err, ErrConflict):
		return Conflict
	case errors.Is(err, ErrTooManyRequests):
		return TooManyRequests
	case errors.Is(err, ErrPermanent), errors.Is(err, contract.ErrUnauthenticated):
		return Permanent
	case errors.As(err, &perm) && perm.Permanent():
		return Permanent
	default:
		return Transient
	}
}
