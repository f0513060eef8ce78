package contract

import (
	"strings"
	"time"
	"unicode"

	"github.com/patrol-dev/patrol/internal/rules"
)

// RotationCommand is a message on the session-enabled `pat-rotations` queue; its session
// id is the secret name, so commands for one secret are handled one at a time, and its
// MessageId is the operation id, so a repeated command is dropped by duplicate
// detection.
type RotationCommand struct {
	SchemaVersion string  `json:"schemaVersion"`
	Secret        string  `json:"secret"`
	OperationID   string  `json:"operationId"`
	Trigger       Trigger `json:"trigger"`
	// Version is the secret version the trigger saw (Key Vault events); when it is no
	// longer current the command is stale. Empty: whatever is current.
	Version   string `json:"version,omitempty"`
	RevokeNow bool   `json:"revokeNow,omitempty"` // revoke the replaced PAT at once (after a leak)
	// RequestedBy is who asked: for RotateNow the caller's authenticated identity (Entra
	// principal or function key name), never a name the caller typed.
	RequestedBy string `json:"requestedBy,omitempty"`
	// Reason is the caller's free-text reason (RotateNow's `reason`), recorded on the
	// new version and the outcome.
	Reason string  `json:"reason,omitempty"`
	Person *Person `json:"person,omitempty"` // the departing person (trigger offboarding only)
	// Policy is never accepted on the queue (adoption runs in process, `patrol adopt`);
	// the field exists so a command carrying one is refused naming it rather than
	// having it silently dropped.
	Policy      map[string]string `json:"policy,omitempty"`
	RequestedAt time.Time         `json:"requestedAt,omitzero"`
	// Attempt counts how often the command was rescheduled after throttling (0: never);
	// it keys the rescheduled message's MessageId (ThrottledMessageID) and bounds the
	// reschedules. Not signed: it changes neither what the command does nor what it records.
	Attempt int `json:"attempt,omitempty"`
	// Signature proves the command comes from patrol (see NeedsSignature).
	Signature *CommandSignature `json:"signature,omitempty"`
}

// RevocationCommand is a (usually scheduled) message on `pat-revocations`: revoke one
// PAT that a rotation replaced, once its grace period is over. `op` is accepted as
// another name for `operationId` so that internal/rotation's Revocation, marshalled as
// it is, decodes too.
type RevocationCommand struct {
	SchemaVersion string `json:"schemaVersion"`
	Secret        string `json:"secret"`
	Org           string `json:"org"`
	PATID         string `json:"patId"` // the PAT's authorizationId
	// Owner is the account the PAT belongs to (UPN or object id); when it is not
	// Account, revoking needs the token administration API.
	Owner string `json:"owner,omitempty"`
	// Account is the service account whose sign-in performs the revocation.
	Account     string `json:"account,omitempty"`
	OperationID string `json:"operationId"` // the operation that replaced the PAT
	// Kind is empty for a PAT a rotation replaced (Secret names its secret), or
	// RevokeUnmanaged for a PAT of a person who left that no secret holds
	// (docs/offboarding.md, PATROL_OFFBOARDING_UNMANAGED): then Secret is empty, Person
	// and EventID say whose PAT and which HR event, and the command must be signed.
	Kind    RevocationKind `json:"kind,omitempty"`
	EventID string         `json:"eventId,omitempty"`
	Person  *Person        `json:"person,omitempty"`
	// RequestedAt is when patrol signed the revocation, or when a scheduled one is meant
	// to run (signed revocations only).
	RequestedAt time.Time `json:"requestedAt,omitzero"`
	// Signature proves the revocation comes from patrol: a revocation carried out before
	// the replaced PAT's grace period ends (an emergency, revokeNow) and every
	// RevokeUnmanaged need one.
	Signature *CommandSignature `json:"signature,omitempty"`
	// Attempt: as RotationCommand.Attempt.
	Attempt int `json:"attempt,omitempty"`
}

// RevocationKind is what a revocation command revokes.
type RevocationKind string

// RevokeUnmanaged: a PAT of a person who left that no managed secret holds.
const RevokeUnmanaged RevocationKind = "offboarding-unmanaged"

// Validate checks a rotation command (also used before sending one).
func (c *RotationCommand) Validate() error {
	const doc = "rotation command"
	if err := checkSchemaVersion(doc, c.SchemaVersion, true); err != nil {
		return err
	}
	c.SchemaVersion = SchemaVersion
	if c.Secret == "" {
		return Malformed(doc, "secret", "missing")
	}
	if err := CheckSecretName(doc, "secret", c.Secret); err != nil {
		return err
	}
	if err := CheckOpID(doc, "operationId", c.OperationID); err != nil {
		return err
	}
	if c.Trigger == "" {
		return Malformed(doc, "trigger", "missing")
	}
	if c.Trigger == TriggerAdopt {
		return Malformed(doc, "trigger", "adopt is not accepted on the queue: adoption runs in process, from the operator's `patrol adopt`")
	}
	if !commandTriggers[c.Trigger] {
		return Malformed(doc, "trigger", "%q is not one of near-expiry, expired, offboarding, manual, sweep, wake-up", Clip(string(c.Trigger)))
	}
	if c.Version != "" {
		v := strings.ToLower(c.Version)
		if !ValidVersion(v) {
			return Malformed(doc, "version", "%q is not a Key Vault version (32 hex digits)", Clip(c.Version))
		}
		c.Version = v
	}
	if len(c.Policy) == 0 {
		c.Policy = nil
	}
	switch {
	case c.Version == "" && c.Trigger.needsVersion():
		return Malformed(doc, "version", "missing; required when trigger is %s", c.Trigger)
	case c.Trigger == TriggerOffboarding && c.Person == nil:
		return Malformed(doc, "person", "missing; required when trigger is offboarding")
	case len(c.Policy) > 0:
		return Malformed(doc, "policy", "not accepted on the queue: policy is set by the operator (`patrol adopt`, or the secret's tags)")
	}
	if c.Person != nil {
		if err := checkPerson(doc, "person", c.Person); err != nil {
			return err
		}
	}
	if c.RequestedBy != "" && (len(c.RequestedBy) > 256 || strings.ContainsFunc(c.RequestedBy, unicode.IsControl)) {
		return Malformed(doc, "requestedBy", "must be at most 256 printable characters")
	}
	if c.Reason != "" && (len(c.Reason) > 256 || strings.ContainsFunc(c.Reason, unicode.IsControl)) {
		return Malformed(doc, "reason", "must be at most 256 printable characters")
	}
	if err := checkAttempt(doc, c.Attempt); err != nil {
		return err
	}
	return checkSignature(doc, c.Signature)
}

// DecodeRotationCommand parses and validates a `pat-rotations` message body.
func DecodeRotationCommand(body []byte) (RotationCommand, error) {
	const doc = "rotation command"
	var w struct {
		RotationCommand
		RequestedAt string `json:"requestedAt"`
	}
	if err := DecodeObject(doc, body, &w); err != nil {
		return RotationCommand{}, err
	}
	c := w.RotationCommand
	var err error
	if c.RequestedAt, err = optionalTime(doc, "requestedAt", strings.TrimSpace(w.RequestedAt)); err != nil {
		return RotationCommand{}, err
	}
	if err := c.Validate(); err != nil {
		return RotationCommand{}, err
	}
	return c, nil
}

// Validate checks a revocation command (also used before sending one).
func (c *RevocationCommand) Validate() error {
	const doc = "revocation command"
	if err := checkSchemaVersion(doc, c.SchemaVersion, true); err != nil {
		return err
	}
	c.SchemaVersion = SchemaVersion
	switch c.Kind {
	case "":
		if c.Secret == "" {
			return Malformed(doc, "secret", "missing")
		}
		if err := CheckSecretName(doc, "secret", c.Secret); err != nil {
			return err
		}
	case RevokeUnmanaged:
		if err := c.validateUnmanaged(doc); err != nil {
			return err
		}
	default:
		return Malformed(doc, "kind", "%q is not %s (or absent)", Clip(string(c.Kind)), RevokeUnmanaged)
	}
	if c.Org == "" {
		return Malformed(doc, "org", "missing")
	}
	if !rules.IsOrgName(c.Org) {
		return Malformed(doc, "org", "%q is not an Azure DevOps organization name", Clip(c.Org))
	}
	if c.PATID == "" {
		return Malformed(doc, "patId", "missing")
	}
	id, err := canonicalGUID(doc, "patId", c.PATID)
	if err != nil {
		return err
	}
	c.PATID = id
	if c.Owner == "" && c.Account == "" {
		return Malformed(doc, "owner", "missing (and no account)")
	}
	for _, f := range []struct{ name, v string }{{"owner", c.Owner}, {"account", c.Account}} {
		if f.v != "" {
			if err := checkAccount(doc, f.name, f.v); err != nil {
				return err
			}
		}
	}
	if err := CheckOpID(doc, "operationId", c.OperationID); err != nil {
		return err
	}
	if err := checkAttempt(doc, c.Attempt); err != nil {
		return err
	}
	return checkSignature(doc, c.Signature)
}

// validateUnmanaged checks what a RevokeUnmanaged command adds: no secret, the person
// and the HR event, the account that lists and revokes, and a signature's shape.
func (c *RevocationCommand) validateUnmanaged(doc string) error {
	switch {
	case c.Secret != "":
		return Malformed(doc, "secret", "must be empty when kind is %s: no secret holds the PAT", RevokeUnmanaged)
	case c.Person == nil:
		return Malformed(doc, "person", "missing; required when kind is %s", RevokeUnmanaged)
	case c.Account == "":
		return Malformed(doc, "account", "missing; required when kind is %s", RevokeUnmanaged)
	}
	if err := checkPerson(doc, "person", c.Person); err != nil {
		return err
	}
	if err := CheckIdentifier(doc, "eventId", c.EventID, true); err != nil {
		return err
	}
	return checkSignature(doc, c.Signature)
}

// DecodeRevocationCommand parses and validates a `pat-revocations` message body.
func DecodeRevocationCommand(body []byte) (RevocationCommand, error) {
	const doc = "revocation command"
	var w struct {
		RevocationCommand
		Op          string `json:"op"`
		RequestedAt string `json:"requestedAt"`
	}
	if err := DecodeObject(doc, body, &w); err != nil {
		return RevocationCommand{}, err
	}
	c := w.RevocationCommand
	var err error
	if c.RequestedAt, err = optionalTime(doc, "requestedAt", strings.TrimSpace(w.RequestedAt)); err != nil {
		return RevocationCommand{}, err
	}
	switch {
	case c.OperationID == "":
		c.OperationID = w.Op
	case w.Op != "" && w.Op != c.OperationID:
		return RevocationCommand{}, Malformed(doc, "op", "differs from operationId")
	}
	if err := c.Validate(); err != nil {
		return RevocationCommand{}, err
	}
	return c, nil
}
