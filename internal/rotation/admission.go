package rotation

import (
	"fmt"
	"slices"
	"strings"
)

// Admission is the sub-chain that decides whether a command may go on to the policy at
// all: is there a current version patrol may act on, and is the command still about
// it? It answers skip (secret missing, not managed, disabled, already done, stale
// version) or needs-attention (unreadable state tags).
//
// Decide runs it after adopt's own rules. The Event Grid handler, the offboarding
// fan-out and RotateNow run it before they enqueue anything, so they turn away exactly
// what the Rotate worker's Decide would; they let needs-attention through, for the
// worker to publish as an outcome.
//
// Order matters: patrol's own secrets first (never rotated, whatever their tags say);
// identity (exists, managed, enabled) before the state tags, which the idempotency
// checks (already done, then stale) read.
func Admission() Chain { return slices.Concat(Chain{internal}, admission()) }

// internal is the first check of every chain: patrol's own secrets (token caches,
// passwords, the command key) are never rotated or adopted (boundary.go).
var internal = Check{Name: "Internal", Eval: checkInternal}

// admission is Admission after its first check: Decide runs adopt's own rules in
// between.
func admission() Chain {
	return Chain{
		{Name: "SecretMissing", Eval: checkSecretMissing},            // nothing to rotate
		{Name: "NotManaged", Eval: checkNotManaged},                  // never touch what is not ours
		{Name: "Disabled", Eval: checkDisabled},                      // an operator switched it off
		{Name: "BadState", Eval: checkState, validates: parsedState}, // the idempotency checks read the state
		{Name: "AlreadyDone", Eval: checkAlreadyDone},                // a redelivered command: its work is the current version
		{Name: "StaleVersion", Eval: checkStaleVersion},              // an event or wake-up for a replaced version
	}
}

func checkSecretMissing(f Facts) (Decision, bool) {
	if f.Input.Exists {
		return pass()
	}
	return skip(ReasonSecretMissing, "the secret does not exist")
}

func checkNotManaged(f Facts) (Decision, bool) {
	if IsManaged(f.Input.Current.Tags) {
		return pass()
	}
	return skip(ReasonNotManaged, "the secret is not tagged "+TagManaged+"=true")
}

func checkDisabled(f Facts) (Decision, bool) {
	if f.Input.Current.Enabled {
		return pass()
	}
	return skip(ReasonDisabled, "the current version is disabled")
}

func checkState(f Facts) (Decision, bool) {
	if f.StateErr == nil {
		return pass()
	}
	return attention(ReasonBadState, f.StateErr)
}

func checkAlreadyDone(f Facts) (Decision, bool) {
	if f.Trigger.Op == "" || f.State.Op != f.Trigger.Op {
		return pass()
	}
	return skip(ReasonAlreadyDone, "the current version was written by this operation")
}

// checkStaleVersion compares version ids without regard to case: Key Vault identifiers
// are case-insensitive, so an event may spell the version otherwise than the store.
func checkStaleVersion(f Facts) (Decision, bool) {
	v, cur := f.Trigger.Version, f.Input.Current.ID
	if v == "" || strings.EqualFold(v, cur) {
		return pass()
	}
	return skip(ReasonStaleVersion, fmt.Sprintf("version %s is no longer current (current is %s)", v, cur))
}
