package rotation

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
)

// Operation ids identify one command (one rotation intent). They are recorded in the
// new version's patrol-op tag (so a redelivered command finds its work done) and in
// the PAT's display name (so a rerun after a crash finds and revokes the PAT an
// earlier attempt created). They are 16 lower-case base32 characters: short enough
// for a display name and a Service Bus MessageId, 80 bits so collisions do not matter.
// Every id patrol makes comes from NewOpID or DeriveOpID, and every id anyone hands
// patrol is checked by ValidateOpID.

var opEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

const opLen = 16

// NewOpID returns a random operation id, for commands that start from a person at the
// command line (patrol rotate, patrol adopt).
func NewOpID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go ≥ 1.24).
	return strings.ToLower(opEncoding.EncodeToString(b[:]))
}

// DeriveOpID returns a deterministic operation id for commands that may be delivered
// more than once (Event Grid events, wake-ups, sweeps, offboarding fan-out): the same
// parts always give the same id, so duplicates collapse (Service Bus duplicate
// detection on MessageId, and Decide's "already done" check).
//
// Suggested parts: (trigger kind, secret, version) for events and wake-ups;
// (TriggerOffboarding, secret, HR event id) for offboarding; (TriggerManual, secret,
// invocation id) for a RotateNow call that names no operation id.
func DeriveOpID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return strings.ToLower(opEncoding.EncodeToString(h.Sum(nil)[:10]))
}

// ValidateOpID accepts ids made by NewOpID/DeriveOpID and, for callers with their own
// ids (an HTTP client's idempotency key), up to 36 characters of [a-z0-9-] (a
// lower-case UUID fits).
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

// DisplayNamePrefix starts the display name of every PAT patrol creates, so a sweep
// can tell patrol's PATs from anyone else's.
const DisplayNamePrefix = "patrol "

// DisplayName is the PAT display name for an operation: "patrol <secret> <op>".
func DisplayName(secret, op string) string { return DisplayNamePrefix + secret + " " + op }

// ParseDisplayName is the inverse of DisplayName; ok is false for PATs patrol did not
// name.
func ParseDisplayName(name string) (secret, op string, ok bool) {
	rest, ok := strings.CutPrefix(name, DisplayNamePrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, ' ')
	if i <= 0 || ValidateOpID(rest[i+1:]) != nil {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}
