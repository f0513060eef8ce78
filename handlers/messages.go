package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/rules"
)

// SchemaVersion is the only version of patrol's message formats so far. Decoders refuse
// other versions rather than guess at their meaning.
const SchemaVersion = "1"

// Person identifies someone in Entra ID. At least one field is set; both is better
// (the UPN can be renamed, the object id cannot).
type Person struct {
	UPN      string `json:"upn,omitempty"`
	ObjectID string `json:"objectId,omitempty"`
}

// OffboardingMessage is what HR publishes on the `hr-offboarding` queue when a person
// leaves. Its JSON Schema is handlers/schema/offboarding.schema.json; docs/offboarding.md
// explains it.
type OffboardingMessage struct {
	SchemaVersion string    `json:"schemaVersion"`
	EventID       string    `json:"eventId"` // HR's id for the event; repeated deliveries carry the same one
	Person        Person    `json:"person"`
	EffectiveAt   time.Time `json:"effectiveAt,omitzero"` // when the account is disabled; zero = now
	Reason        string    `json:"reason,omitempty"`
	// Message is the Service Bus delivery this arrived in (not part of the body).
	Message MessageInfo `json:"-"`
}

// Trigger says why a rotation command was issued: the core's trigger kinds, so a
// command's trigger reaches rotation.Decide unchanged.
type Trigger = rotation.TriggerKind

// Triggers of rotation commands.
const (
	TriggerNearExpiry  = rotation.TriggerNearExpiry  // Key Vault SecretNearExpiry for Version
	TriggerExpired     = rotation.TriggerExpired     // Key Vault SecretExpired for Version
	TriggerOffboarding = rotation.TriggerOffboarding // Person is leaving; rotate if the current PAT is theirs
	TriggerManual      = rotation.TriggerManual      // an operator asked (RotateNow, `patrol rotate`): always rotates
	TriggerSweep       = rotation.TriggerSweep       // the timer sweep found it due
	TriggerAdopt       = rotation.TriggerAdopt       // start managing the secret with Policy
	TriggerWakeUp      = rotation.TriggerWakeup      // patrol's own scheduled wake-up for Version
)

var triggers = map[Trigger]bool{
	TriggerNearExpiry: true, TriggerExpired: true, TriggerOffboarding: true, TriggerManual: true,
	TriggerSweep: true, TriggerAdopt: true, TriggerWakeUp: true,
}

// RotationCommand is a message on the session-enabled `pat-rotations` queue; its session
// id is the secret name, so commands for one secret are handled one at a time.
type RotationCommand struct {
	SchemaVersion string  `json:"schemaVersion"`
	Secret        string  `json:"secret"`
	OperationID   string  `json:"operationId"`
	Trigger       Trigger `json:"trigger"`
	// Version is the secret version the trigger saw (Key Vault events); when it is no
	// longer current the command is stale. Empty: whatever is current.
	Version     string  `json:"version,omitempty"`
	RevokeNow   bool    `json:"revokeNow,omitempty"` // revoke the replaced PAT at once (after a leak)
	RequestedBy string  `json:"requestedBy,omitempty"`
	Person      *Person `json:"person,omitempty"` // the departing person (trigger offboarding only)
	// Policy is the policy tags to apply (trigger adopt only), e.g. patrol-org.
	Policy      map[string]string `json:"policy,omitempty"`
	RequestedAt time.Time         `json:"requestedAt,omitzero"`
	Message     MessageInfo       `json:"-"`
}

// RevocationCommand is a (usually scheduled) message on `pat-revocations`: revoke one
// PAT that a rotation replaced, once its grace period is over. The JSON is
// internal/rotation's Revocation plus schemaVersion; `op` is accepted as another name
// for `operationId` so that the core's type can be sent as it is.
type RevocationCommand struct {
	SchemaVersion string `json:"schemaVersion"`
	Secret        string `json:"secret"`
	Org           string `json:"org"`
	PATID         string `json:"patId"` // the PAT's authorizationId
	// Owner is the account the PAT belongs to (UPN or object id); when it is not
	// Account, revoking needs the token administration API.
	Owner string `json:"owner,omitempty"`
	// Account is the service account whose sign-in performs the revocation.
	Account     string      `json:"account,omitempty"`
	OperationID string      `json:"operationId"` // the operation that replaced the PAT
	Message     MessageInfo `json:"-"`
}

var (
	// Key Vault object names: 1-127 alphanumerics and dashes.
	secretNameRE = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	versionRE    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	// Key Vault names are 3-24 in Azure; the local stack's vault names are the same
	// shape, so this only rejects what cannot be a DNS label.
	vaultRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z-]{0,62}$`)
)

// ValidSecretName reports whether s can be a Key Vault secret name.
func ValidSecretName(s string) bool { return secretNameRE.MatchString(s) }

// checkSecretName is the error every decoder gives for a name Key Vault would refuse.
func checkSecretName(doc, field, name string) error {
	if ValidSecretName(name) {
		return nil
	}
	return fieldErr(doc, field, "%q is not a Key Vault secret name (1-127 letters, digits, dashes)", clip(name))
}

// decodeJSONObject unmarshals body into dst, translating encoding/json errors into a
// FieldError naming the field, without quoting input bytes.
func decodeJSONObject(doc string, body []byte, dst any) error {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return fieldErr(doc, "", "must be a JSON object")
	}
	if err := json.Unmarshal(b, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fieldErr(doc, jsonPath(te.Field), "must be a JSON %s, not %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		return fieldErr(doc, "", "%s", jsonProblem(err))
	}
	return nil
}

// jsonPath drops the Go names of embedded structs from encoding/json's field path
// ("RotationCommand.revokeNow" → "revokeNow"): patrol's JSON names all start lower-case.
func jsonPath(p string) string {
	parts := strings.Split(p, ".")
	keep := parts[:0]
	for _, s := range parts {
		if s != "" && unicode.IsUpper([]rune(s)[0]) {
			continue
		}
		keep = append(keep, s)
	}
	return strings.Join(keep, ".")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map", "ptr":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return "number"
	}
}

// checkSchemaVersion accepts the one version; optional says whether absence means it.
func checkSchemaVersion(doc, v string, optional bool) error {
	switch {
	case v == SchemaVersion:
		return nil
	case v == "" && optional:
		return nil
	case v == "":
		return fieldErr(doc, "schemaVersion", "missing; must be %q", SchemaVersion)
	default:
		return fieldErr(doc, "schemaVersion", "%q is not supported; must be %q", clip(v), SchemaVersion)
	}
}

// identifier checks ids we only store and compare (event and operation ids): 1-128
// printable characters without spaces.
func identifier(doc, field, v string, required bool) error {
	if v == "" {
		if required {
			return fieldErr(doc, field, "missing")
		}
		return nil
	}
	if len(v) > 128 {
		return fieldErr(doc, field, "longer than 128 characters")
	}
	for _, r := range v {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fieldErr(doc, field, "must be printable characters without spaces")
		}
	}
	return nil
}

// checkOpID mirrors internal/rotation.ValidateOpID (ids from NewOpID/DeriveOpID, or a
// client's lower-case UUID): up to 36 characters of a-z, 0-9 and '-'. Checking here
// turns a bad id into a 400 or a dead-letter naming the field instead of a failure deep
// in the core.
func checkOpID(doc, field, v string) error {
	if v == "" {
		return fieldErr(doc, field, "missing")
	}
	// The core owns the rule: the id ends up in the PAT's display name.
	if err := rotation.ValidateOpID(v); err != nil {
		return fieldErr(doc, field, "%s", strings.TrimPrefix(err.Error(), "operation id "))
	}
	return nil
}

// checkAccount accepts what Key Vault tags record for an account: a UPN or an object id.
func checkAccount(doc, field, v string) error {
	if _, err := uuid.Parse(v); err == nil && len(v) == 36 {
		return nil
	}
	if checkUPN(doc, field, v) != nil {
		return fieldErr(doc, field, "%q is neither a user principal name nor an object id", clip(v))
	}
	return nil
}

// checkUPN applies the one UPN rule (internal/rules) that settings and tags use too.
func checkUPN(doc, field, v string) error {
	if !rules.IsUPN(v) {
		return fieldErr(doc, field, "%q is not a user principal name (name@domain)", clip(v))
	}
	return nil
}

// canonicalGUID parses the 36-character form only and returns it lower-cased.
func canonicalGUID(doc, field, v string) (string, error) {
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return "", fieldErr(doc, field, "%q is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", clip(v))
	}
	return id.String(), nil
}

func checkPerson(doc, field string, p *Person) error {
	p.UPN = strings.TrimSpace(p.UPN)
	p.ObjectID = strings.TrimSpace(p.ObjectID)
	if p.UPN == "" && p.ObjectID == "" {
		return fieldErr(doc, field, "needs upn or objectId (or both)")
	}
	if p.UPN != "" {
		if err := checkUPN(doc, field+".upn", p.UPN); err != nil {
			return err
		}
	}
	if p.ObjectID != "" {
		id, err := canonicalGUID(doc, field+".objectId", p.ObjectID)
		if err != nil {
			return err
		}
		p.ObjectID = id
	}
	return nil
}

func optionalTime(doc, field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fieldErr(doc, field, "%q is not an RFC 3339 date-time", clip(v))
	}
	return t.UTC(), nil
}

// DecodeOffboardingMessage parses and validates an HR offboarding message (the message
// body, already unwrapped from the host's encoding).
func DecodeOffboardingMessage(body []byte) (OffboardingMessage, error) {
	const doc = "offboarding message"
	var w struct {
		SchemaVersion string  `json:"schemaVersion"`
		EventID       string  `json:"eventId"`
		Person        *Person `json:"person"`
		EffectiveAt   string  `json:"effectiveAt"`
		Reason        string  `json:"reason"`
	}
	if err := decodeJSONObject(doc, body, &w); err != nil {
		return OffboardingMessage{}, err
	}
	m := OffboardingMessage{SchemaVersion: w.SchemaVersion, EventID: strings.TrimSpace(w.EventID), Reason: strings.TrimSpace(w.Reason)}
	if err := checkSchemaVersion(doc, m.SchemaVersion, false); err != nil {
		return OffboardingMessage{}, err
	}
	if err := identifier(doc, "eventId", m.EventID, true); err != nil {
		return OffboardingMessage{}, err
	}
	if w.Person == nil {
		return OffboardingMessage{}, fieldErr(doc, "person", "missing")
	}
	m.Person = *w.Person
	if err := checkPerson(doc, "person", &m.Person); err != nil {
		return OffboardingMessage{}, err
	}
	var err error
	if m.EffectiveAt, err = optionalTime(doc, "effectiveAt", strings.TrimSpace(w.EffectiveAt)); err != nil {
		return OffboardingMessage{}, err
	}
	if len([]rune(m.Reason)) > 256 {
		return OffboardingMessage{}, fieldErr(doc, "reason", "longer than 256 characters")
	}
	return m, nil
}

// Validate checks a rotation command (also used before sending one).
func (c *RotationCommand) Validate() error {
	const doc = "rotation command"
	if err := checkSchemaVersion(doc, c.SchemaVersion, true); err != nil {
		return err
	}
	c.SchemaVersion = SchemaVersion
	if c.Secret == "" {
		return fieldErr(doc, "secret", "missing")
	}
	if err := checkSecretName(doc, "secret", c.Secret); err != nil {
		return err
	}
	if err := checkOpID(doc, "operationId", c.OperationID); err != nil {
		return err
	}
	if c.Trigger == "" {
		return fieldErr(doc, "trigger", "missing")
	}
	if !triggers[c.Trigger] {
		return fieldErr(doc, "trigger", "%q is not one of near-expiry, expired, offboarding, manual, sweep, adopt, wake-up", clip(string(c.Trigger)))
	}
	if c.Version != "" {
		v := strings.ToLower(c.Version)
		if !versionRE.MatchString(v) {
			return fieldErr(doc, "version", "%q is not a Key Vault version (32 hex digits)", clip(c.Version))
		}
		c.Version = v
	}
	if len(c.Policy) == 0 {
		c.Policy = nil
	}
	switch {
	case c.Version == "" && (c.Trigger == TriggerNearExpiry || c.Trigger == TriggerExpired || c.Trigger == TriggerWakeUp):
		return fieldErr(doc, "version", "missing; required when trigger is %s", c.Trigger)
	case c.Trigger == TriggerOffboarding && c.Person == nil:
		return fieldErr(doc, "person", "missing; required when trigger is offboarding")
	case c.Trigger == TriggerAdopt && len(c.Policy) == 0:
		return fieldErr(doc, "policy", "missing; required when trigger is adopt")
	case c.Trigger != TriggerAdopt && len(c.Policy) > 0:
		return fieldErr(doc, "policy", "allowed only when trigger is adopt")
	}
	for k, v := range c.Policy {
		if !strings.HasPrefix(k, "patrol-") || len(k) > 256 || len(v) > 256 {
			return fieldErr(doc, "policy", "tag %q: names must start with patrol- and names and values fit Key Vault's 256 characters", clip(k))
		}
	}
	if c.Person != nil {
		if err := checkPerson(doc, "person", c.Person); err != nil {
			return err
		}
	}
	if c.RequestedBy != "" && (len(c.RequestedBy) > 256 || strings.ContainsFunc(c.RequestedBy, unicode.IsControl)) {
		return fieldErr(doc, "requestedBy", "must be at most 256 printable characters")
	}
	return nil
}

// DecodeRotationCommand parses and validates a `pat-rotations` message body.
func DecodeRotationCommand(body []byte) (RotationCommand, error) {
	const doc = "rotation command"
	var w struct {
		RotationCommand
		RequestedAt string `json:"requestedAt"`
	}
	if err := decodeJSONObject(doc, body, &w); err != nil {
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
	if c.Secret == "" {
		return fieldErr(doc, "secret", "missing")
	}
	if err := checkSecretName(doc, "secret", c.Secret); err != nil {
		return err
	}
	if c.Org == "" {
		return fieldErr(doc, "org", "missing")
	}
	if !rules.IsOrgName(c.Org) {
		return fieldErr(doc, "org", "%q is not an Azure DevOps organization name", clip(c.Org))
	}
	if c.PATID == "" {
		return fieldErr(doc, "patId", "missing")
	}
	id, err := canonicalGUID(doc, "patId", c.PATID)
	if err != nil {
		return err
	}
	c.PATID = id
	if c.Owner == "" && c.Account == "" {
		return fieldErr(doc, "owner", "missing (and no account)")
	}
	for _, f := range []struct{ name, v string }{{"owner", c.Owner}, {"account", c.Account}} {
		if f.v != "" {
			if err := checkAccount(doc, f.name, f.v); err != nil {
				return err
			}
		}
	}
	return checkOpID(doc, "operationId", c.OperationID)
}

// DecodeRevocationCommand parses and validates a `pat-revocations` message body.
func DecodeRevocationCommand(body []byte) (RevocationCommand, error) {
	const doc = "revocation command"
	var w struct {
		RevocationCommand
		Op string `json:"op"`
	}
	if err := decodeJSONObject(doc, body, &w); err != nil {
		return RevocationCommand{}, err
	}
	c := w.RevocationCommand
	switch {
	case c.OperationID == "":
		c.OperationID = w.Op
	case w.Op != "" && w.Op != c.OperationID:
		return RevocationCommand{}, fieldErr(doc, "op", "differs from operationId")
	}
	if err := c.Validate(); err != nil {
		return RevocationCommand{}, err
	}
	return c, nil
}
