package rotation

import (
	"log/slog"
	"time"
)

// Status is how a command ended.
type Status string

// Statuses published to the pat-events topic.
const (
	StatusRotated        Status = "rotated"
	StatusSkipped        Status = "skipped"
	StatusFailed         Status = "failed"
	StatusNeedsAttention Status = "needs-attention"
	StatusRevoked        Status = "revoked"
)

// TriggerRevoke labels outcomes of Rotator.Revoke (the scheduled revocation of a
// replaced PAT). It is not a rotation trigger: Trigger.Validate refuses it.
const TriggerRevoke TriggerKind = "revoke"

// Outcome is what happened to one secret for one command. It never holds a token
// value: only PAT ids, names and times.
type Outcome struct {
	Status  Status      `json:"status"`
	Secret  string      `json:"secret"`
	Op      string      `json:"operationId"`
	Trigger TriggerKind `json:"trigger"`
	Reason  Reason      `json:"reason,omitempty"`
	// Message explains the outcome (the error for failed and needs-attention).
	Message string `json:"message,omitempty"`
	// Step is where a failure happened.
	Step          Step   `json:"step,omitempty"`
	Org           string `json:"org,omitempty"`
	Owner         string `json:"owner,omitempty"`
	PATID         string `json:"patId,omitempty"`
	PreviousPATID string `json:"previousPatId,omitempty"`
	// Version is the version written (rotated).
	Version string    `json:"version,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// NextCheck is when patrol will look at the secret again.
	NextCheck time.Time `json:"nextCheck,omitzero"`
	// Retryable: a failure that a redelivery of the command may fix.
	Retryable bool      `json:"retryable,omitempty"`
	Time      time.Time `json:"time"`
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
