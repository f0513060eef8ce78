package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/rules"
)

// FieldError says which field of which document is wrong and why. Decoders of outside
// input return it (possibly wrapped) so callers can name the field to whoever sent it.
type FieldError struct {
	Doc     string // what was being decoded, e.g. "offboarding message"
	Field   string // dotted path, e.g. "person.upn"; empty when the document itself is unreadable
	Problem string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Doc + ": " + e.Problem
	}
	return e.Doc + ": " + e.Field + ": " + e.Problem
}

// ErrMalformed is matched (errors.Is) by every decoding error of outside input.
var ErrMalformed = errors.New("malformed input")

// Is lets errors.Is(err, ErrMalformed) recognise any FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrMalformed }

// Malformed returns a *FieldError; format describes the problem. Quote input only
// through Clip.
func Malformed(doc, field, format string, args ...any) error {
	return &FieldError{Doc: doc, Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Clip shortens a value quoted in an error, so an error never carries a whole document
// (nor much of a value that was put in the wrong field).
func Clip(s string) string { return ClipTo(s, 40) }

// ClipTo is Clip with another limit (in runes).
func ClipTo(s string, limit int) string {
	r := []rune(s)
	if len(r) <= limit {
		return s
	}
	return string(r[:limit]) + "…"
}

// JSONProblem shortens encoding/json errors to a phrase that names no input bytes
// beyond an offset, so a malformed message never copies its content into logs.
func JSONProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s where %s was expected", te.Value, te.Type)
	}
	return "invalid JSON"
}

// DecodeObject unmarshals body into dst, translating encoding/json errors into a
// FieldError naming the field, without quoting input bytes.
func DecodeObject(doc string, body []byte, dst any) error {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return Malformed(doc, "", "must be a JSON object")
	}
	if err := json.Unmarshal(b, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Malformed(doc, jsonPath(te.Field), "must be a JSON %s, not %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		return Malformed(doc, "", "%s", JSONProblem(err))
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

// ValidSecretName reports whether s can be a Key Vault secret name: 1-127 letters,
// digits and dashes. (Hand-written rather than a regexp: a bounded repetition compiles
// to a large program at start-up, and the handler's start-to-ready time counts.)
func ValidSecretName(s string) bool {
	if len(s) < 1 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// CheckSecretName is the error every decoder gives for a name Key Vault would refuse.
func CheckSecretName(doc, field, name string) error {
	if ValidSecretName(name) {
		return nil
	}
	return Malformed(doc, field, "%q is not a Key Vault secret name (1-127 letters, digits, dashes)", Clip(name))
}

// ValidVersion reports whether v is a Key Vault secret version in its canonical
// (lower-case) form: 32 lower-case hex digits.
func ValidVersion(v string) bool {
	if len(v) != 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidateOpID is the rule for operation ids: those internal/rotation makes
// (NewOpID/DeriveOpID) and, for callers with their own ids (an HTTP client's
// idempotency key), up to 36 characters of [a-z0-9-] (a lower-case UUID fits). The id
// ends up in a PAT's display name and a Service Bus MessageId, hence the small
// alphabet.
func ValidateOpID(op string) error {
	if op == "" {
		return errors.New("operation id is empty")
	}
	if len(op) > 36 {
		return errors.New("operation id is longer than 36 characters")
	}
	for _, c := range op {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return errors.New("operation id may hold only a-z, 0-9 and '-'")
		}
	}
	return nil
}

// CheckOpID is ValidateOpID as a FieldError: a bad id becomes a 400 or a dead-letter
// naming the field instead of a failure deep in the core.
func CheckOpID(doc, field, v string) error {
	if v == "" {
		return Malformed(doc, field, "missing")
	}
	if err := ValidateOpID(v); err != nil {
		return Malformed(doc, field, "%s", strings.TrimPrefix(err.Error(), "operation id "))
	}
	return nil
}

// CheckIdentifier checks ids patrol only stores and compares (event ids): 1-128
// printable characters without spaces.
func CheckIdentifier(doc, field, v string, required bool) error {
	if v == "" {
		if required {
			return Malformed(doc, field, "missing")
		}
		return nil
	}
	if len(v) > 128 {
		return Malformed(doc, field, "longer than 128 characters")
	}
	for _, r := range v {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return Malformed(doc, field, "must be printable characters without spaces")
		}
	}
	return nil
}

// checkSchemaVersion accepts the one version; optional says whether absence means it.
func checkSchemaVersion(doc, v string, optional bool) error {
	switch {
	case v == SchemaVersion:
		return nil
	case v == "" && optional:
		return nil
	case v == "":
		return Malformed(doc, "schemaVersion", "missing; must be %q", SchemaVersion)
	default:
		return Malformed(doc, "schemaVersion", "%q is not supported; must be %q", Clip(v), SchemaVersion)
	}
}

// checkAccount accepts what Key Vault tags record for an account: a UPN or an object id.
func checkAccount(doc, field, v string) error {
	if _, err := uuid.Parse(v); err == nil && len(v) == 36 {
		return nil
	}
	if checkUPN(doc, field, v) != nil {
		return Malformed(doc, field, "%q is neither a user principal name nor an object id", Clip(v))
	}
	return nil
}

// checkUPN applies the one UPN rule (internal/rules) that settings and tags use too.
func checkUPN(doc, field, v string) error {
	if !rules.IsUPN(v) {
		return Malformed(doc, field, "%q is not a user principal name (name@domain)", Clip(v))
	}
	return nil
}

// canonicalGUID parses the 36-character form only and returns it lower-cased.
func canonicalGUID(doc, field, v string) (string, error) {
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return "", Malformed(doc, field, "%q is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", Clip(v))
	}
	return id.String(), nil
}

func optionalTime(doc, field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err == nil && (t.UTC().Year() < 1 || t.UTC().Year() > 9999) {
		// An offset can carry year 0000 or 9999 out of range: accepted, it could not
		// be encoded again (nor signed and sent).
		err = errors.New("year out of range")
	}
	if err != nil {
		return time.Time{}, Malformed(doc, field, "%q is not an RFC 3339 date-time", Clip(v))
	}
	return t.UTC(), nil
}
