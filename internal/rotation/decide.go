package rotation

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// TriggerKind says what asked for a rotation: the message contract's word, so a
// command's trigger reaches Decide unchanged.
type TriggerKind = contract.Trigger

// Trigger kinds (documented in internal/contract).
const (
	TriggerNearExpiry  = contract.TriggerNearExpiry
	TriggerExpired     = contract.TriggerExpired
	TriggerOffboarding = contract.TriggerOffboarding
	TriggerManual      = contract.TriggerManual
	TriggerSweep       = contract.TriggerSweep
	TriggerAdopt       = contract.TriggerAdopt
	TriggerWakeup      = contract.TriggerWakeup
)

// Person identifies someone leaving (HR offboarding message).
type Person struct {
	UPN      string `json:"upn,omitempty"`
	ObjectID string `json:"objectId,omitempty"`
}

// Is reports whether account (a UPN or an object id, as tags record it) is this person.
func (p Person) Is(account string) bool {
	account = strings.TrimSpace(account)
	if account == "" {
		return false
	}
	return p.UPN != "" && strings.EqualFold(account, p.UPN) || p.ObjectID != "" && strings.EqualFold(account, p.ObjectID)
}

// Trigger is one command for one secret.
type Trigger struct {
	Kind TriggerKind `json:"kind"`
	// Op is the command's operation id (NewOpID or DeriveOpID).
	Op string `json:"op"`
	// Version is the version an event or wake-up was raised for (empty otherwise).
	Version string `json:"version,omitempty"`
	// Person is who is leaving (offboarding).
	Person Person `json:"person,omitzero"`
	// RevokeNow revokes the replaced PAT at once instead of after the grace period
	// (manual, e.g. after a leak).
	RevokeNow bool `json:"revokeNow,omitempty"`
	// Policy holds the policy tags to apply (adopt), e.g. Policy.Tags().
	Policy map[string]string `json:"policy,omitempty"`
	// RequestedBy and Reason are who asked and why (manual); recorded in the new
	// version's audit tags and the outcome (boundary.go).
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// Validate checks a trigger received from outside (a queue message, an HTTP call).
func (t Trigger) Validate() error {
	switch t.Kind {
	case TriggerNearExpiry, TriggerExpired, TriggerWakeup:
		if t.Version == "" {
			return fmt.Errorf("trigger %s: version is required", t.Kind)
		}
	case TriggerOffboarding:
		if t.Person.UPN == "" && t.Person.ObjectID == "" {
			return fmt.Errorf("trigger %s: person UPN or object id is required", t.Kind)
		}
	case TriggerAdopt:
		if !IsManaged(t.Policy) {
			return fmt.Errorf("trigger %s: policy must include %s=true", t.Kind, TagManaged)
		}
	case TriggerManual, TriggerSweep:
	default:
		return fmt.Errorf("trigger kind %q is unknown", t.Kind)
	}
	if err := ValidateOpID(t.Op); err != nil {
		return fmt.Errorf("trigger %s: %w", t.Kind, err)
	}
	return nil
}

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
	// Policy and State are parsed from the tags when the chain got that far; the
	// Rotator acts on them.
	Policy Policy
	State  State
}

// RenewWindow is how long before expiry a PAT is replaced: renewBefore, capped at a
// third of the PAT's lifetime so that a PAT shorter than Key Vault's 30-day
// SecretNearExpiry lead is not replaced the moment it is written (the event fires at
// once, finds it outside the window, and schedules a wake-up instead of looping).
func RenewWindow(lifetime, renewBefore time.Duration) time.Duration {
	if lifetime > 0 && lifetime/3 < renewBefore {
		return lifetime / 3
	}
	return renewBefore
}

// RenewAt is when a PAT expiring at exp with the given lifetime should be replaced,
// truncated to the second so repeated evaluations agree.
func RenewAt(exp time.Time, lifetime, renewBefore time.Duration) time.Time {
	return exp.Add(-RenewWindow(lifetime, renewBefore)).Truncate(time.Second)
}

// lifetimeOf is the issued PAT's actual lifetime (organizations may shorten what was
// asked), falling back to the policy's.
func lifetimeOf(v Version, policy time.Duration) time.Duration {
	issued := v.NotBefore
	if issued.IsZero() {
		issued = v.Created
	}
	if !issued.IsZero() && !v.Expires.IsZero() && v.Expires.After(issued) {
		return v.Expires.Sub(issued)
	}
	return policy
}

// evaluation carries what earlier checks parsed to later ones.
type evaluation struct {
	in     Input
	trig   Trigger
	now    time.Time
	state  State
	policy Policy
}

type check struct {
	name string
	eval func(e *evaluation) (Decision, bool)
}

// chain is the ordered list of checks; the first that decides wins. Order matters:
// identity checks (exists, managed, enabled) come before idempotency (already done,
// stale), which come before policy, which comes before the reasons to rotate.
var chain = []check{
	{"Internal", checkInternal},               // patrol's own secrets: never (boundary.go)
	{"Adopt", checkAdopt},                     // adopt has its own rules
	{"SecretMissing", checkSecretMissing},     // nothing to rotate
	{"NotManaged", checkNotManaged},           // never touch what is not ours
	{"Disabled", checkDisabled},               // an operator switched it off
	{"BadState", checkState},                  // parse state tags (needed for idempotency)
	{"AlreadyDone", checkAlreadyDone},         // redelivered command
	{"StaleVersion", checkStaleVersion},       // event for a replaced version
	{"BadPolicy", checkPolicy},                // parse policy tags
	{"Manual", checkManual},                   // operators always win
	{"Offboarding", checkOffboarding},         // is the leaver the owner?
	{"OwnerOffboarded", checkOwnerOffboarded}, // gatherer knows the owner left
	{"NotIssued", checkNotIssued},             // managed by hand-tagging, no PAT of ours yet
	{"Expired", checkExpired},                 // past exp
	{"OwnerNotServiceAccount", checkOwnerIsNotServiceAccount},
	{"NoExpiry", checkNoExpiry},
	{"RenewWindow", checkRenewWindow}, // always decides: rotate or wait
}

// Decide says whether to rotate a secret now, and why. It is pure: everything it
// needs is in its arguments, so the Event Grid handler, the Rotate worker, the sweep
// and `patrol plan` all get the same answer for the same state and time.
func Decide(in Input, trig Trigger, now time.Time) Decision {
	e := &evaluation{in: in, trig: trig, now: now}
	for _, c := range chain {
		if d, ok := c.eval(e); ok {
			d.Policy, d.State = e.policy, e.state
			return d
		}
	}
	// Unreachable: checkRenewWindow always decides.
	return Decision{Action: ActionSkip, Reason: ReasonNotDue, Policy: e.policy, State: e.state}
}

func skip(r Reason, msg string) (Decision, bool) {
	return Decision{Action: ActionSkip, Reason: r, Message: msg}, true
}

func rotate(r Reason, msg string) (Decision, bool) {
	return Decision{Action: ActionRotate, Reason: r, Message: msg}, true
}

func attention(r Reason, err error) (Decision, bool) {
	return Decision{Action: ActionAttention, Reason: r, Message: err.Error(), Err: err}, true
}

func checkAdopt(e *evaluation) (Decision, bool) {
	if e.trig.Kind != TriggerAdopt {
		return Decision{}, false
	}
	var base map[string]string
	if e.in.Exists {
		base = e.in.Current.Tags
		if IsManaged(base) {
			if st, err := ParseState(base); err == nil && st.Op != "" && st.Op == e.trig.Op {
				e.state = st
				return skip(ReasonAlreadyDone, "this adopt already ran")
			}
			return skip(ReasonAlreadyManaged, "the secret is already managed; use rotate")
		}
	}
	merged := maps.Clone(base)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, e.trig.Policy)
	if d, ok := e.parsePolicy(merged); ok {
		return d, true
	}
	return rotate(ReasonAdopt, "adopting the secret")
}

func checkSecretMissing(e *evaluation) (Decision, bool) {
	if e.in.Exists {
		return Decision{}, false
	}
	return skip(ReasonSecretMissing, "the secret does not exist")
}

func checkNotManaged(e *evaluation) (Decision, bool) {
	if IsManaged(e.in.Current.Tags) {
		return Decision{}, false
	}
	return skip(ReasonNotManaged, "the secret is not tagged "+TagManaged+"=true")
}

func checkDisabled(e *evaluation) (Decision, bool) {
	if e.in.Current.Enabled {
		return Decision{}, false
	}
	return skip(ReasonDisabled, "the current version is disabled")
}

func checkState(e *evaluation) (Decision, bool) {
	st, err := ParseState(e.in.Current.Tags)
	if err != nil {
		return attention(ReasonBadState, err)
	}
	e.state = st
	return Decision{}, false
}

func checkAlreadyDone(e *evaluation) (Decision, bool) {
	if e.trig.Op == "" || e.state.Op != e.trig.Op {
		return Decision{}, false
	}
	return skip(ReasonAlreadyDone, "the current version was written by this operation")
}

func checkStaleVersion(e *evaluation) (Decision, bool) {
	if e.trig.Version == "" || e.trig.Version == e.in.Current.ID {
		return Decision{}, false
	}
	return skip(ReasonStaleVersion, fmt.Sprintf("version %s is no longer current (current is %s)", e.trig.Version, e.in.Current.ID))
}

func checkPolicy(e *evaluation) (Decision, bool) { return e.parsePolicy(e.in.Current.Tags) }

func (e *evaluation) parsePolicy(tags map[string]string) (Decision, bool) {
	p, err := ParsePolicy(tags, e.in.Defaults)
	if errors.Is(err, ErrFullScopeRefused) {
		return attention(ReasonFullScopeRefused, err)
	}
	if err != nil {
		return attention(ReasonBadPolicy, err)
	}
	e.policy = p
	return Decision{}, false
}

func checkManual(e *evaluation) (Decision, bool) {
	if e.trig.Kind != TriggerManual {
		return Decision{}, false
	}
	return rotate(ReasonManual, "an operator asked for a rotation")
}

func checkOffboarding(e *evaluation) (Decision, bool) {
	if e.trig.Kind != TriggerOffboarding {
		return Decision{}, false
	}
	switch p := e.trig.Person; {
	case p.Is(e.policy.ServiceAccount):
		return attention(ReasonServiceAccountOffboarded, fmt.Errorf(
			"the person leaving is the secret's service account %s: set %s to a non-personal account", e.policy.ServiceAccount, TagServiceAccount))
	case p.Is(e.state.Owner):
		return rotate(ReasonOwnerOffboarded, "the current PAT belongs to "+e.state.Owner+", who is leaving")
	default:
		return skip(ReasonNotOwner, "the current PAT does not belong to the person leaving")
	}
}

func checkOwnerOffboarded(e *evaluation) (Decision, bool) {
	if !e.in.OwnerOffboarded {
		return Decision{}, false
	}
	return rotate(ReasonOwnerOffboarded, "the current PAT's owner "+e.state.Owner+" has left")
}

func checkNotIssued(e *evaluation) (Decision, bool) {
	if e.state.PATID != "" {
		return Decision{}, false
	}
	return rotate(ReasonNotIssued, "the secret holds no PAT that patrol issued")
}

func checkExpired(e *evaluation) (Decision, bool) {
	exp := e.in.Current.Expires
	if exp.IsZero() || e.now.Before(exp) {
		return Decision{}, false
	}
	return rotate(ReasonExpired, "the PAT expired at "+exp.UTC().Format(time.RFC3339))
}

func checkOwnerIsNotServiceAccount(e *evaluation) (Decision, bool) {
	if e.state.Owner == "" || strings.EqualFold(e.state.Owner, e.policy.ServiceAccount) {
		return Decision{}, false
	}
	return rotate(ReasonOwnerNotServiceAccount, "the PAT belongs to "+e.state.Owner+", not the service account "+e.policy.ServiceAccount)
}

func checkNoExpiry(e *evaluation) (Decision, bool) {
	if !e.in.Current.Expires.IsZero() {
		return Decision{}, false
	}
	return rotate(ReasonNoExpiry, "the current version has no expiry date")
}

func checkRenewWindow(e *evaluation) (Decision, bool) {
	v := e.in.Current
	at := RenewAt(v.Expires, lifetimeOf(v, e.policy.Lifetime), e.in.Defaults.RenewBefore)
	if !e.now.Before(at) {
		return rotate(ReasonRenewWindow, "inside the renew window that began "+at.UTC().Format(time.RFC3339))
	}
	return Decision{Action: ActionWait, Reason: ReasonNotDue, At: at,
		Message: "the renew window starts " + at.UTC().Format(time.RFC3339)}, true
}
