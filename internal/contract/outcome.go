package contract

import (
	"fmt"
	"time"
)

// Status is how an operation on one secret ended: an Outcome's `status`, the Subject of
// its pat-events message, and the `status` application property.
type Status string

// Statuses published on pat-events.
const (
	StatusRotated        Status = "rotated"
	StatusSkipped        Status = "skipped"
	StatusFailed         Status = "failed"
	StatusNeedsAttention Status = "needs-attention"
	StatusRevoked        Status = "revoked"
	// StatusOffboardingReport is the account of a person who left (Outcome.Account),
	// published once the Offboarding function has queued its re-issues. It names no
	// secret.
	StatusOffboardingReport Status = "offboarding-report"
)

// StatusPending is what SecretStatus reports for an operation without an outcome yet
// (queued, running, or finished on an instance that did not report it). It is never
// published.
const StatusPending Status = "pending"

// Outcome is what happened to one secret for one operation: the body of a pat-events
// message, and the outcome RotateNow and SecretStatus report. It never holds a token
// value: only PAT ids, names and times.
type Outcome struct {
	Status      Status  `json:"status"`
	Secret      string  `json:"secret"`
	OperationID string  `json:"operationId"`
	Trigger     Trigger `json:"trigger,omitempty"`
	// Reason is machine-readable: a check of the core (e.g. "renew-window") or, for a
	// message patrol gave up on, a DeadLetter* reason.
	Reason string `json:"reason,omitempty"`
	// Message explains the outcome for people (the error for failed and needs-attention).
	Message string `json:"message,omitempty"`
	// Step is the protocol step where a failure happened.
	Step          string `json:"step,omitempty"`
	Org           string `json:"org,omitempty"`
	Owner         string `json:"owner,omitempty"`
	PATID         string `json:"patId,omitempty"`
	PreviousPATID string `json:"previousPatId,omitempty"`
	// Version is the secret version written (rotated).
	Version string    `json:"version,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// NextCheck is when patrol will look at the secret again.
	NextCheck time.Time `json:"nextCheck,omitzero"`
	// RequestedBy is who asked for the operation (RotateNow: the caller's identity).
	RequestedBy string `json:"requestedBy,omitempty"`
	// Retryable: a failure that a redelivery of the command may fix.
	Retryable bool      `json:"retryable,omitempty"`
	Time      time.Time `json:"time,omitzero"`
	// Account is the account of the person who left (offboarding-report only).
	Account *PersonAccount `json:"account,omitempty"`
}

// Ends reports whether the outcome ends its operation: anything but a failure that a
// redelivery of the command will retry.
func (o Outcome) Ends() bool {
	return o.Status != "" && o.Status != StatusPending && !(o.Status == StatusFailed && o.Retryable)
}

// Replies reports whether the outcome goes to QueueReplies: it ends a rotation
// operation (a revocation's outcome carries the id of the rotation that replaced the
// PAT, and that rotation's outcome is the operation's).
func (o Outcome) Replies() bool {
	return o.OperationID != "" && o.Trigger != TriggerRevoke && o.Ends()
}

// Subject is the Subject of the outcome's pat-events message: its status, so a
// subscription can filter on it with a correlation filter.
func (o Outcome) Subject() string { return string(o.Status) }

// Application properties of a pat-events message, for subscription filters.
const (
	PropSecret      = "secret"
	PropStatus      = "status"
	PropTrigger     = "trigger"
	PropReason      = "reason"
	PropOperationID = "operationId"
)

// Properties are the application properties of the outcome's pat-events message.
// Every key is present (empty when unknown), so a SQL filter never meets a missing one.
func (o Outcome) Properties() map[string]any {
	return map[string]any{
		PropSecret: o.Secret, PropStatus: string(o.Status), PropTrigger: string(o.Trigger),
		PropReason: o.Reason, PropOperationID: o.OperationID,
	}
}

// Reasons patrol gives up on a message for: the DeadLetterReason of a dead-lettered
// message, and the `reason` of the failed outcome published instead where a message
// cannot be dead-lettered (session queues).
const (
	DeadLetterMalformed = "patrol.MalformedMessage" // the body or metadata cannot be understood
	DeadLetterRejected  = "patrol.Rejected"         // understood, but can never succeed
	// DeadLetterUnauthenticated: a command that must be signed was not, or not validly.
	DeadLetterUnauthenticated = "patrol.Unauthenticated"
)

// Failure is a message patrol gave up on without dead-lettering it (session queues,
// where a plain receiver cannot attach to settle by lock token). It is reported as a
// failed Outcome.
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

// Outcome is the failed outcome that reports f, at time now.
func (f Failure) Outcome(now time.Time) Outcome {
	msg := f.Description
	if f.MessageID != "" {
		msg = fmt.Sprintf("%s (message %s on %s)", msg, f.MessageID, f.Queue)
	}
	o := Outcome{Status: StatusFailed, Secret: f.Secret, OperationID: f.OperationID, Reason: f.Reason, Message: msg, Time: now}
	if f.Queue == QueueRevocations {
		o.Trigger = TriggerRevoke // a revocation command carries its rotation's operation id
	}
	return o
}
