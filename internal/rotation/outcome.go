package rotation

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// Status is how a command ended: the message contract's outcome status.
type Status = contract.Status

// Statuses published to the pat-events topic (documented in internal/contract).
const (
	StatusRotated        = contract.StatusRotated
	StatusSkipped        = contract.StatusSkipped
	StatusFailed         = contract.StatusFailed
	StatusNeedsAttention = contract.StatusNeedsAttention
	StatusRevoked        = contract.StatusRevoked
)

// TriggerRevoke labels outcomes of Rotator.Revoke (the scheduled revocation of a
// replaced PAT). It is not a rotation trigger: Trigger.Validate refuses it.
const TriggerRevoke = contract.TriggerRevoke

// Outcome is what happened to one secret for one command. It never holds a token
// value: only PAT ids, names and times. Its wire form (the pat-events body) is
// contract.Outcome; see Contract.
type Outcome struct {
	Status  Status
	Secret  string
	Op      string
	Trigger TriggerKind
	Reason  Reason
	// Message explains the outcome (the error for failed and needs-attention).
	Message string
	// Step is where a failure happened.
	Step          Step
	Org           string
	Owner         string
	PATID         string
	PreviousPATID string
	// Version is the version written (rotated).
	Version string
	Expires time.Time
	// NextCheck is when patrol will look at the secret again.
	NextCheck time.Time
	// RequestedBy is who asked (manual rotations).
	RequestedBy string
	// Retryable: a failure that a redelivery of the command may fix.
	Retryable bool
	Time      time.Time
	// Account is the account of a person who left (contract.StatusOffboardingReport).
	Account *contract.PersonAccount
}

// MarshalJSON writes the outcome in its wire form, so the pat-events body has one
// definition (contract.Outcome).
func (o Outcome) MarshalJSON() ([]byte, error) { return json.Marshal(o.Contract()) }

// UnmarshalJSON reads a pat-events body.
func (o *Outcome) UnmarshalJSON(b []byte) error {
	var c contract.Outcome
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	*o = OutcomeOf(c)
	return nil
}

// OutcomeOf is the inverse of Contract.
func OutcomeOf(c contract.Outcome) Outcome {
	return Outcome{
		Status: c.Status, Secret: c.Secret, Op: c.OperationID, Trigger: c.Trigger, Reason: Reason(c.Reason),
		Message: c.Message, Step: Step(c.Step), Org: c.Org, Owner: c.Owner, PATID: c.PATID,
		PreviousPATID: c.PreviousPATID, Version: c.Version, Expires: c.Expires, NextCheck: c.NextCheck,
		RequestedBy: c.RequestedBy, Retryable: c.Retryable, Time: c.Time, Account: c.Account,
	}
}

// Contract returns the outcome as the message contract carries it.
func (o Outcome) Contract() contract.Outcome {
	return contract.Outcome{
		Status: o.Status, Secret: o.Secret, OperationID: o.Op, Trigger: o.Trigger, Reason: string(o.Reason),
		Message: o.Message, Step: string(o.Step), Org: o.Org, Owner: o.Owner, PATID: o.PATID,
		PreviousPATID: o.PreviousPATID, Version: o.Version, Expires: o.Expires, NextCheck: o.NextCheck,
		RequestedBy: o.RequestedBy, Retryable: o.Retryable, Time: o.Time, Account: o.Account,
	}
}

// Action is the decision behind a skipped outcome: ActionWait when NextCheck is set.
func (o Outcome) Action() Action {
	switch o.Status {
	case StatusRotated:
		return ActionRotate
	case StatusNeedsAttention:
		return ActionAttention
	case StatusSkipped:
		if o.Reason == ReasonNotDue {
			return ActionWait
		}
	}
	return ActionSkip
}

// LogValue keeps log lines short and value-free.
func (o Outcome) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("status", string(o.Status)), slog.String("secret", o.Secret),
		slog.String("op", o.Op), slog.String("trigger", string(o.Trigger)),
	}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("reason", string(o.Reason))
	add("step", string(o.Step))
	add("message", o.Message)
	add("patId", o.PATID)
	add("previousPatId", o.PreviousPATID)
	add("version", o.Version)
	if !o.Expires.IsZero() {
		attrs = append(attrs, slog.Time("expires", o.Expires))
	}
	if !o.NextCheck.IsZero() {
		attrs = append(attrs, slog.Time("nextCheck", o.NextCheck))
	}
	return slog.GroupValue(attrs...)
}
