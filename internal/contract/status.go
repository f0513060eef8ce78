package contract

import "time"

// SecretStatus is what patrol knows about one secret, at one moment: a row of
// `patrol status` (table and --output json) and `patrol plan`, and an entry of the
// SecretStatus function's answer. One shape, so a script reads the CLI and the API
// alike.
type SecretStatus struct {
	Secret         string `json:"secret"`
	Managed        bool   `json:"managed"`
	Org            string `json:"org,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Owner is the account the current PAT belongs to.
	Owner string `json:"owner,omitempty"`
	PATID string `json:"patId,omitempty"`
	// PreviousPATID is the PAT the current one replaced, active until its scheduled
	// revocation (after the grace period) runs.
	PreviousPATID string `json:"previousPatId,omitempty"`
	// Scopes are the space-separated scopes the policy asks for (patrol-scopes); in
	// the one-secret detail of `patrol status SECRET` only.
	Scopes  string    `json:"scopes,omitempty"`
	Version string    `json:"version,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// DaysLeft is whole days until Expires, negative once expired; absent without
	// Expires.
	DaysLeft *int `json:"daysLeft,omitempty"`
	// Action and Reason are what a sweep would do now (the core's decision: rotate,
	// wait, skip or needs-attention) and the check that decided it.
	Action string `json:"action,omitempty"`
	Reason string `json:"reason,omitempty"`
	// RenewAt is when patrol replaces the PAT: now when it is due, the renew window's
	// start while waiting, zero otherwise.
	RenewAt time.Time `json:"renewAt,omitzero"`
	// Message explains the action for people.
	Message string `json:"message,omitempty"`
	// LastOperation and LastReason are the operation that wrote the current version and
	// why it ran (the patrol-op and patrol-reason tags).
	LastOperation string `json:"lastOperation,omitempty"`
	LastReason    string `json:"lastReason,omitempty"`
	// RequestedBy and RequestReason are who asked for that operation and why, when a
	// person did (the patrol-requested-by and patrol-request-reason tags).
	RequestedBy   string `json:"requestedBy,omitempty"`
	RequestReason string `json:"requestReason,omitempty"`
	// NeedsAttention is why a person must act, when one must (action needs-attention).
	NeedsAttention string `json:"needsAttention,omitempty"`
}

// StatusResult is a status answer: Secrets (one, or every managed secret, soonest
// action first) and, when one operation was asked about, its outcome.
type StatusResult struct {
	Secrets   []SecretStatus `json:"secrets"`
	Operation *Outcome       `json:"operation,omitempty"`
}
