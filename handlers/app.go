package handlers

import (
	"context"
	"errors"
	"time"
)

// App is the business logic behind the functions, one method per function, each taking
// a decoded, validated input. The wiring (internal/cli) adapts the rotation core to it.
//
// Return nil when the input was handled (including "nothing to do"). Otherwise the error
// is classified (see Classify) to decide between retry, dead-letter and HTTP status.
type App interface {
	// KeyVaultEvent handles a near-expiry/expired event (KeyVaultEvents).
	KeyVaultEvent(ctx context.Context, ev KeyVaultEvent) error
	// Offboard fans an HR offboarding message out into rotation commands (Offboarding).
	Offboard(ctx context.Context, msg OffboardingMessage) error
	// Rotate runs the rotation protocol for one secret (Rotate, session = secret).
	Rotate(ctx context.Context, cmd RotationCommand) error
	// Revoke revokes a replaced PAT; an already revoked or unknown PAT is success (Revoke).
	Revoke(ctx context.Context, cmd RevocationCommand) error
	// RotateNow enqueues an emergency rotation and, if req.Wait > 0, waits up to that
	// long for its outcome (RotateNow).
	RotateNow(ctx context.Context, req RotateNowRequest) (RotateNowResult, error)
	// Status reports one secret or all managed secrets (SecretStatus).
	Status(ctx context.Context, req StatusRequest) (StatusResult, error)
	// Sweep enqueues what policy says is due and cleans up orphaned PATs (Sweep).
	Sweep(ctx context.Context, tick SweepTick) error
}

// Outcome kinds, as published on the pat-events topic.
const (
	OutcomeRotated        = "rotated"
	OutcomeSkipped        = "skipped"
	OutcomeFailed         = "failed"
	OutcomeNeedsAttention = "needs-attention"
)

// Outcome is the result of one operation on one secret.
type Outcome struct {
	Kind        string    `json:"status"` // one of the Outcome* constants (the same word as on pat-events)
	Secret      string    `json:"secret"`
	OperationID string    `json:"operationId"`
	Reason      string    `json:"reason,omitempty"`  // machine-readable reason, e.g. "not-in-renew-window"
	Message     string    `json:"message,omitempty"` // for people; never a token value
	Version     string    `json:"version,omitempty"` // the new current version when rotated
	At          time.Time `json:"time,omitzero"`
}

// RotateNowResult is what RotateNow reports: the operation id always, the outcome when it
// finished within the request's Wait.
type RotateNowResult struct {
	OperationID string
	Outcome     *Outcome // nil: still running → 202
}

// SecretStatus is what patrol knows about one secret.
type SecretStatus struct {
	Name           string    `json:"name"`
	Managed        bool      `json:"managed"`
	Org            string    `json:"org,omitempty"`
	ServiceAccount string    `json:"serviceAccount,omitempty"`
	Owner          string    `json:"owner,omitempty"` // account the current PAT belongs to
	PATID          string    `json:"patId,omitempty"`
	Version        string    `json:"version,omitempty"`
	Expires        time.Time `json:"expires,omitzero"`
	RenewAt        time.Time `json:"renewAt,omitzero"`
	LastOperation  string    `json:"lastOperation,omitempty"`
	LastReason     string    `json:"lastReason,omitempty"`
	NeedsAttention string    `json:"needsAttention,omitempty"` // why a person must act, if one must
}

// StatusResult answers a StatusRequest: Secrets for a secret or the list, Operation when
// the request named an operation.
type StatusResult struct {
	Secrets   []SecretStatus `json:"secrets"`
	Operation *Outcome       `json:"operation,omitempty"`
}

// DeadLetterer moves a Service Bus message to its entity's dead-letter queue, by lock
// token (the host holds the message; the adapter settles it through the management
// link). Owned here; internal/servicebus implements it with azservicebus.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, queue, lockToken, reason, description string) error
}

// Failure is a message patrol gave up on without dead-lettering it (session queues,
// where a plain receiver cannot attach to settle by lock token).
type Failure struct {
	Function    string
	Queue       string
	MessageID   string
	SessionID   string
	Secret      string // when the body named one
	OperationID string // when the body named one
	Reason      string // a DeadLetter* reason
	Description string
}

// FailureReporter publishes a `failed` outcome for a message that cannot be
// dead-lettered; the message is then completed. Owned here; the outcome publisher
// implements it.
type FailureReporter interface {
	ReportFailure(ctx context.Context, f Failure) error
}

// Dead-letter reasons patrol sets (DeadLetterReason on the message, `reason` on a
// failed outcome).
const (
	DeadLetterMalformed = "patrol.MalformedMessage" // the body or metadata cannot be understood
	DeadLetterRejected  = "patrol.Rejected"         // understood, but can never succeed
)

// Deps is what the handler needs beyond the protocol. It is built lazily, on the first
// invocation, so the handler answers the readiness probe before any Azure client exists.
type Deps struct {
	App          App
	DeadLetterer DeadLetterer
	Failures     FailureReporter
}

// Class is how an error from App (or decoding) is treated.
type Class int

// Error classes.
const (
	Transient  Class = iota // retry: non-2xx to the host; HTTP 503
	Permanent               // never succeeds: dead-letter then 2xx; HTTP 422
	BadRequest              // the input is invalid: dead-letter then 2xx; HTTP 400
	NotFound                // HTTP 404; for messages like Permanent
	Conflict                // HTTP 409; for messages like Transient (another operation holds the secret)
)

func (c Class) String() string {
	return [...]string{"transient", "permanent", "bad-request", "not-found", "conflict"}[c]
}

// Sentinel errors App implementations (or the wiring's Classify) can wrap to classify
// an error without a custom classifier.
var (
	ErrPermanent  = errors.New("permanent failure")
	ErrBadRequest = errors.New("bad request")
	ErrNotFound   = errors.New("not found")
	ErrConflict   = errors.New("conflict")
)

// Classify is the default classifier: the sentinels above, ErrMalformed (decoding),
// and any error in the chain with a `Permanent() bool` method returning true; everything
// else (deadline exceeded included) is transient.
func Classify(err error) Class {
	var perm interface{ Permanent() bool }
	switch {
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrBadRequest):
		return BadRequest
	case errors.Is(err, ErrNotFound):
		return NotFound
	case errors.Is(err, ErrConflict):
		return Conflict
	case errors.Is(err, ErrPermanent):
		return Permanent
	case errors.As(err, &perm) && perm.Permanent():
		return Permanent
	default:
		return Transient
	}
}
