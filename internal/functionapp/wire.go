package functionapp

// This file converts between the message contract's shapes (what arrives on the
// queues, what the HTTP functions answer) and the core's.

import (
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// TriggerOf maps a queued command to the core's trigger (whose kinds are the
// contract's trigger words).
func TriggerOf(cmd contract.RotationCommand) rotation.Trigger {
	// Policy is never taken from a queued command (the decoder refuses it).
	t := rotation.Trigger{Kind: cmd.Trigger, Op: cmd.OperationID, Version: cmd.Version,
		RevokeNow: cmd.RevokeNow, RequestedBy: cmd.RequestedBy, Reason: cmd.Reason}
	if cmd.Person != nil {
		t.Person = rotation.Person{UPN: cmd.Person.UPN, ObjectID: cmd.Person.ObjectID}
	}
	return t
}

// RevocationOf maps a queued revocation to the core's. A command without an account is
// revoked by the PAT's owner itself.
func RevocationOf(cmd contract.RevocationCommand) rotation.Revocation {
	account := cmd.Account
	if account == "" {
		account = cmd.Owner
	}
	return rotation.Revocation{Secret: cmd.Secret, Org: cmd.Org, PATID: cmd.PATID, Owner: cmd.Owner, Account: account, Op: cmd.OperationID}
}

// OutcomeOf is the core's outcome as the HTTP functions report it: what happened,
// not the details pat-events carries.
func OutcomeOf(o rotation.Outcome) contract.Outcome {
	return contract.Outcome{Status: o.Status, Secret: o.Secret, OperationID: o.Op, Reason: string(o.Reason),
		Message: o.Message, Version: o.Version, RequestedBy: o.RequestedBy, Time: o.Time}
}

// Finished reports whether an outcome ends its operation: anything but a failure that
// a redelivery will retry.
func Finished(o contract.Outcome, retryable bool) bool {
	o.Retryable = retryable
	return o.Ends()
}

// OperationOf reads an operation's outcome from the secret's current version: the
// version an operation wrote carries its id in patrol-op. ok is false when the current
// version is not that operation's.
func OperationOf(secret, op string, in rotation.Input) (contract.Outcome, bool) {
	if !in.Exists || op == "" || in.Current.Tags[rotation.TagOp] != op {
		return contract.Outcome{}, false
	}
	return contract.Outcome{Status: contract.StatusRotated, Secret: secret, OperationID: op,
		Reason: in.Current.Tags[rotation.TagReason], Version: in.Current.ID, RequestedBy: in.Current.Tags[rotation.TagRequestedBy],
		Time: in.Current.Created}, true
}

// StatusOf describes one secret; row is its plan row (nil for an unmanaged secret).
func StatusOf(v rotation.Version, row *rotation.PlanRow) contract.SecretStatus {
	return rotation.StatusOf(v, row)
}
