package rotation

import (
	"strings"

	"github.com/patrol-dev/patrol/internal/contract"
)

// Operation ids have one home, the message contract (contract.NewOpID, DeriveOpID,
// ValidateOpID); the core names them here for its own callers.

// NewOpID returns a random operation id (contract.NewOpID).
func NewOpID() string { return contract.NewOpID() }

// DeriveOpID returns a deterministic operation id from parts (contract.DeriveOpID).
func DeriveOpID(parts ...string) string { return contract.DeriveOpID(parts...) }

// ValidateOpID accepts ids made by NewOpID/DeriveOpID and, for callers with their own
// ids, what the message contract allows (contract.ValidateOpID: the rule has one home).
func ValidateOpID(op string) error { return contract.ValidateOpID(op) }

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
