package rotation

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Input is the gathered state of one secret.
type Input struct {
	// Exists is false when the secret does not exist (or is deleted).
	Exists bool
	// Current is the current version (when Exists).
	Current Version
	// Defaults fill in absent policy tags.
	Defaults Defaults
	// OwnerOffboarded is set by a gatherer that knows the current PAT's owner has left
	// (e.g. from a directory lookup); offboarding triggers are matched by Decide itself.
	OwnerOffboarded bool
}

// Action is what to do.
type Action string

// Actions.
const (
	ActionRotate Action = "rotate"
	ActionSkip   Action = "skip"
	// ActionWait: nothing now; look again at Decision.At.
	ActionWait Action = "wait"
	// ActionAttention: cannot proceed until an operator fixes something (Decision.Err).
	ActionAttention Action = "needs-attention"
)

// Reason names the check that decided. Values are kebab-case: they are written to
// the patrol-reason tag and published in outcomes.
type Reason string

// Reasons, in the order of the checks that produce them.
const (
	// ReasonAdopt: adopting an unmanaged (or absent) secret.
	ReasonAdopt Reason = "adopt"
	// ReasonAlreadyManaged: adopt of a secret that is already managed.
	ReasonAlreadyManaged Reason = "already-managed"
	// ReasonSecretMissing: the secret does not exist.
	ReasonSecretMissing Reason = "secret-missing"
	// ReasonNotManaged: the secret lacks patrol-managed=true.
	ReasonNotManaged Reason = "not-managed"
	// ReasonDisabled: the current version is disabled; an operator disabled it on
	// purpose (Key Vault still raises events for disabled secrets).
	ReasonDisabled Reason = "disabled"
	// ReasonBadState: a state tag of the current version is malformed.
	ReasonBadState Reason = "bad-state"
	// ReasonAlreadyDone: the current version was written by this operation.
	ReasonAlreadyDone Reason = "already-done"
	// ReasonStaleVersion: the event or wake-up names a version that is no longer current.
	ReasonStaleVersion Reason = "stale-version"
	// ReasonBadPolicy: a policy tag is missing or malformed (Decision.Err names it).
	ReasonBadPolicy Reason = "bad-policy"
	// ReasonFullScopeRefused: full access asked for without patrol-allow-full-scope=true.
	ReasonFullScopeRefused Reason = "full-scope-refused"
	// ReasonManual: an operator asked.
	ReasonManual Reason = "manual"
	// ReasonServiceAccountOffboarded: the person leaving is the secret's service
	// account; re-issuing under it would not help.
	ReasonServiceAccountOffboarded Reason = "service-account-offboarded"
	// ReasonOwnerOffboarded: the current PAT belongs to a person who left.
	ReasonOwnerOffboarded Reason = "owner-offboarded"
	// ReasonNotOwner: the person leaving does not own the current PAT.
	ReasonNotOwner Reason = "not-owner"
	// ReasonNotIssued: the secret is managed but holds no PAT patrol issued.
	ReasonNotIssued Reason = "not-issued-by-patrol"
	// ReasonExpired: the current PAT has expired.
	ReasonExpired Reason = "expired"
	// ReasonOwnerNotServiceAccount: the current PAT belongs to someone other than the
	// service account (e.g. the patrol-service-account tag changed).
	ReasonOwnerNotServiceAccount Reason = "owner-not-service-account"
	// ReasonNoExpiry: the current version has no exp, so nobody knows when it stops working.
	ReasonNoExpiry Reason = "no-expiry"
	// ReasonRenewWindow: inside the renew window.
	ReasonRenewWindow Reason = "renew-window"
	// ReasonNotDue: before the renew window; Decision.At is its start.
	ReasonNotDue Reason = "not-due"

	// Reasons of Rotator.Revoke outcomes.

	// ReasonReplaced: a replaced PAT was revoked after its grace period.
	ReasonReplaced Reason = "replaced"
	// ReasonStillCurrent: a revocation named the PAT the secret currently holds.
	ReasonStillCurrent Reason = "still-current"
)

// Decision is Decide's answer.
type Decision struct {
	Action Action
	Reason Reason
	// Message explains the decision for people (logs, outcomes, patrol plan).
	Message string
	// At is when to look again (ActionWait).
	At time.Time
	// Err is what an operator must fix (ActionAttention).
	Err error
	// Policy and State are the parsed tags that the checks before the deciding one
	// validated (Chain.Evaluate); zero otherwise. The Rotator acts on them.
	Policy Policy
	State  State
}

// decision is the chain Decide runs; the first check that decides wins. Order matters
// (TestChainOrder): patrol's own secrets are never touched, not even by adopt; adopt
// has its own rules; then admission (identity before idempotency); then the policy;
// then the reasons to rotate, operators first; then the PAT's dates.
var decision = slices.Concat(
	Chain{internal},                          // patrol's own secrets: never (boundary.go)
	Chain{{Name: "Adopt", Eval: checkAdopt}}, // adopt has its own rules
	admission(),
	Chain{
		{Name: "BadPolicy", Eval: checkPolicy, validates: parsedPolicy}, // the checks below act on the policy
		{Name: "Manual", Eval: checkManual},                             // operators always win
		{Name: "Offboarding", Eval: checkOffboarding},                   // is the leaver the owner?
		{Name: "OwnerOffboarded", Eval: checkOwnerOffboarded},           // gatherer knows the owner left
		{Name: "NotIssued", Eval: checkNotIssued},                       // managed by hand-tagging, no PAT of ours yet
		{Name: "Expired", Eval: checkExpired},                           // past exp
		{Name: "OwnerNotServiceAccount", Eval: checkOwnerIsNotServiceAccount},
		{Name: "NoExpiry", Eval: checkNoExpiry},
		{Name: "RenewWindow", Eval: checkRenewWindow}, // always decides: rotate or wait
	},
)

// Decide says whether to rotate a secret now, and why. It is pure: everything it
// needs is in its arguments, so the Event Grid handler, the Rotate worker, the sweep
// and `patrol plan` all get the same answer for the same state and time. The tags are
// parsed once (NewFacts); the checks only read them.
func Decide(in Input, trig Trigger, now time.Time) Decision {
	f := NewFacts(in, trig, now)
	if d, ok := decision.Evaluate(f); ok {
		return d
	}
	// Unreachable: checkRenewWindow always decides.
	return Decision{Action: ActionSkip, Reason: ReasonNotDue, Policy: f.Policy, State: f.State}
}

// checkAdopt answers every adopt: an adopt of a managed secret is done or refused, any
// other is judged by the policy it would write. It fills in the state or policy it
// relied on itself, since it runs before the checks that validate them.
func checkAdopt(f Facts) (Decision, bool) {
	if f.Trigger.Kind != TriggerAdopt {
		return pass()
	}
	if f.Input.Exists && IsManaged(f.Input.Current.Tags) {
		if f.StateErr == nil && f.State.Op != "" && f.State.Op == f.Trigger.Op {
			d, ok := skip(ReasonAlreadyDone, "this adopt already ran")
			d.State = f.State
			return d, ok
		}
		return skip(ReasonAlreadyManaged, "the secret is already managed; use rotate")
	}
	if d, ok := checkPolicy(f); ok {
		return d, ok
	}
	d, ok := rotate(ReasonAdopt, "adopting the secret")
	d.Policy = f.Policy
	return d, ok
}

func checkPolicy(f Facts) (Decision, bool) {
	switch {
	case f.PolicyErr == nil:
		return pass()
	case errors.Is(f.PolicyErr, ErrFullScopeRefused):
		return attention(ReasonFullScopeRefused, f.PolicyErr)
	default:
		return attention(ReasonBadPolicy, f.PolicyErr)
	}
}

func checkManual(f Facts) (Decision, bool) {
	if f.Trigger.Kind != TriggerManual {
		return pass()
	}
	return rotate(ReasonManual, "an operator asked for a rotation")
}

func checkOffboarding(f Facts) (Decision, bool) {
	if f.Trigger.Kind != TriggerOffboarding {
		return pass()
	}
	switch p := f.Trigger.Person; {
	case p.Is(f.Policy.ServiceAccount):
		return attention(ReasonServiceAccountOffboarded, fmt.Errorf(
			"the person leaving is the secret's service account %s: set %s to a non-personal account", f.Policy.ServiceAccount, TagServiceAccount))
	case p.Is(f.State.Owner):
		return rotate(ReasonOwnerOffboarded, "the current PAT belongs to "+f.State.Owner+", who is leaving")
	default:
		return skip(ReasonNotOwner, "the current PAT does not belong to the person leaving")
	}
}

func checkOwnerOffboarded(f Facts) (Decision, bool) {
	if !f.Input.OwnerOffboarded {
		return pass()
	}
	return rotate(ReasonOwnerOffboarded, "the current PAT's owner "+f.State.Owner+" has left")
}

func checkNotIssued(f Facts) (Decision, bool) {
	if f.State.PATID != "" {
		return pass()
	}
	return rotate(ReasonNotIssued, "the secret holds no PAT that patrol issued")
}

func checkOwnerIsNotServiceAccount(f Facts) (Decision, bool) {
	if f.State.Owner == "" || strings.EqualFold(f.State.Owner, f.Policy.ServiceAccount) {
		return pass()
	}
	return rotate(ReasonOwnerNotServiceAccount, "the PAT belongs to "+f.State.Owner+", not the service account "+f.Policy.ServiceAccount)
}
