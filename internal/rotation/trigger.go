package rotation

import (
	"fmt"
	"strings"

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
