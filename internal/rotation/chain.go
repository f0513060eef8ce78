package rotation

import (
	"maps"
	"time"
)

// Facts are what the checks read: the gathered input and the trigger, with the tags of
// the current version parsed once, before any check runs. Checks are pure functions of
// Facts and never write to them, so any chain can reuse any check.
type Facts struct {
	Input   Input
	Trigger Trigger
	Now     time.Time
	// State is the current version's state tags; zero when StateErr is set or the
	// secret does not exist.
	State    State
	StateErr error
	// Policy is the current version's policy tags with Input.Defaults filling in
	// (for adopt: those tags overlaid with Trigger.Policy); zero when PolicyErr is set.
	Policy    Policy
	PolicyErr error
}

// NewFacts parses what the checks need from in and trig.
func NewFacts(in Input, trig Trigger, now time.Time) Facts {
	f := Facts{Input: in, Trigger: trig, Now: now}
	var tags map[string]string
	if in.Exists {
		tags = in.Current.Tags
	}
	f.State, f.StateErr = ParseState(tags)
	if trig.Kind == TriggerAdopt {
		merged := maps.Clone(tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, trig.Policy)
		tags = merged
	}
	f.Policy, f.PolicyErr = ParsePolicy(tags, in.Defaults)
	return f
}

// Check is one named rule of the decision, named after what it detects. It decides
// (ok true) or passes the facts on to the next check.
type Check struct {
	Name string
	Eval func(f Facts) (d Decision, ok bool)
	// validates is what the check vouches for once it passes: the decisions of the
	// checks after it carry that part of the facts.
	validates parsed
}

// parsed names the parts of Facts a check validates.
type parsed uint8

const (
	parsedState parsed = 1 << iota
	parsedPolicy
)

// Chain is an ordered list of checks; the first that decides wins.
type Chain []Check

// Evaluate runs the checks in order and returns the first decision (ok false when no
// check decided). The decision carries the state and policy that the checks before it
// validated, so an outcome never reports tags no check has vouched for.
func (c Chain) Evaluate(f Facts) (Decision, bool) {
	var known parsed
	for _, ch := range c {
		if d, ok := ch.Eval(f); ok {
			if known&parsedState != 0 {
				d.State = f.State
			}
			if known&parsedPolicy != 0 {
				d.Policy = f.Policy
			}
			return d, true
		}
		known |= ch.validates
	}
	return Decision{}, false
}

// Names lists the checks in order.
func (c Chain) Names() []string {
	names := make([]string, len(c))
	for i, ch := range c {
		names[i] = ch.Name
	}
	return names
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

func pass() (Decision, bool) { return Decision{}, false }
