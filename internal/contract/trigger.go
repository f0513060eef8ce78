package contract

// Trigger says why a rotation was asked for. The same word travels in a
// RotationCommand's `trigger`, in an Outcome's `trigger` (and its application
// property), and is what the core decides on: internal/rotation's TriggerKind is this
// type.
type Trigger string

// Triggers of rotation commands.
const (
	// TriggerNearExpiry: Key Vault's SecretNearExpiry event (30 days before exp) for Version.
	TriggerNearExpiry Trigger = "near-expiry"
	// TriggerExpired: Key Vault's SecretExpired event for Version.
	TriggerExpired Trigger = "expired"
	// TriggerOffboarding: a person left; rotate if the current PAT is theirs.
	TriggerOffboarding Trigger = "offboarding"
	// TriggerManual: an operator asked (CLI or RotateNow); always rotates.
	TriggerManual Trigger = "manual"
	// TriggerSweep: the timer sweep; rotates what is due.
	TriggerSweep Trigger = "sweep"
	// TriggerAdopt: start managing a secret with an operator's policy. Only the
	// operator's CLI runs it, in process; a RotationCommand carrying it is refused.
	TriggerAdopt Trigger = "adopt"
	// TriggerWakeup: patrol's own scheduled wake-up for Version.
	TriggerWakeup Trigger = "wake-up"
)

// TriggerRevoke labels outcomes of a scheduled revocation (RevocationCommand). It is
// not a rotation trigger: a RotationCommand carrying it is refused.
const TriggerRevoke Trigger = "revoke"

// commandTriggers are the triggers a RotationCommand may carry (not adopt: see
// TriggerAdopt).
var commandTriggers = map[Trigger]bool{
	TriggerNearExpiry: true, TriggerExpired: true, TriggerOffboarding: true, TriggerManual: true,
	TriggerSweep: true, TriggerWakeup: true,
}

// needsVersion: triggers raised for one version of the secret; when that version is no
// longer current the command is stale.
func (t Trigger) needsVersion() bool {
	return t == TriggerNearExpiry || t == TriggerExpired || t == TriggerWakeup
}
