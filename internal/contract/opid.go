package contract

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
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
