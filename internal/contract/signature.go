package contract

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Decision: a command that does more than the next sweep would do anyway (a manual
// rotation, a revokeNow, and the revocation a revokeNow schedules before the replaced
// PAT's grace period ends) is signed with an HMAC-SHA256 key that only the function app's
// identity can read (the Key Vault secret CommandKeySecret). Service Bus rights are
// coarse — whoever may send to pat-rotations may send anything — so the queue alone
// cannot tell RotateNow from any other sender; the signature can. An HMAC over a
// canonical form of the fields (not over the JSON bytes) survives re-encoding, and the
// key's version travels with the signature so a newer key version does not invalidate
// commands already queued.

// CommandKeySecret is the Key Vault secret holding the command-signing key; it is
// tagged patrol-kind=command-key and created by the app on first use.
const CommandKeySecret = "patrol-command-key"

// KindCommandKey is the patrol-kind tag value of CommandKeySecret.
const KindCommandKey = "command-key"

// CommandKeySize is the key length in bytes (HMAC-SHA256's block-size sweet spot).
const CommandKeySize = 32

// MaxCommandAge bounds how old a signed command may be when it is run: a copy of a
// signed command replayed later than that is refused (duplicate detection and the
// core's patrol-op check cover the window before).
const MaxCommandAge = time.Hour

// maxClockSkew is how far in the future a signed command's requestedAt may be.
const maxClockSkew = 5 * time.Minute

// CommandSignature is a RotationCommand's `signature`.
type CommandSignature struct {
	// KeyVersion is the Key Vault version of CommandKeySecret that signed.
	KeyVersion string `json:"keyVersion"`
	// MAC is base64url (unpadded) HMAC-SHA256 of the command's canonical form.
	MAC string `json:"mac"`
}

// CommandKey is one version of the command-signing key. It prints, logs and encodes
// as Redacted: the bytes leave it only through Sign and Verify.
type CommandKey struct {
	Version string
	k       *[]byte
}

// Redacted is what a CommandKey prints as.
const Redacted = "[REDACTED]"

// NewCommandKey wraps a key version's bytes.
func NewCommandKey(version string, key []byte) CommandKey {
	b := append([]byte(nil), key...)
	return CommandKey{Version: version, k: &b}
}

// Usable reports whether the key has a version and CommandKeySize bytes or more.
func (k CommandKey) Usable() bool {
	return k.k != nil && len(*k.k) >= CommandKeySize && ValidVersion(k.Version)
}

func (k CommandKey) String() string               { return "CommandKey{" + k.Version + " " + Redacted + "}" }
func (k CommandKey) GoString() string             { return k.String() }
func (k CommandKey) Format(f fmt.State, _ rune)   { fmt.Fprint(f, k.String()) }
func (k CommandKey) LogValue() slog.Value         { return slog.StringValue(k.String()) }
func (k CommandKey) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }
func (k CommandKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k CommandKey) mac(canonical []byte) []byte {
	m := hmac.New(sha256.New, *k.k)
	m.Write(canonical)
	return m.Sum(nil)
}

// ErrUnauthenticated is matched (errors.Is) by every refusal of a command that had to
// be signed and was not, or not validly.
var ErrUnauthenticated = errors.New("unauthenticated command")

// AuthError is a refused signature; Problem says why without quoting the MAC.
type AuthError struct {
	// Doc names the signed document ("revocation command"); empty is "rotation command".
	Doc     string
	Problem string
}

func (e *AuthError) Error() string {
	doc := e.Doc
	if doc == "" {
		doc = "rotation command"
	}
	return doc + ": signature: " + e.Problem
}
func (e *AuthError) Is(target error) bool { return target == ErrUnauthenticated }

// Permanent: a redelivery carries the same signature.
func (e *AuthError) Permanent() bool { return true }

// NeedsSignature reports whether the command does more than the next sweep would do
// anyway, so it must prove it comes from patrol: a manual rotation (always rotates) or
// a revokeNow (revokes the replaced PAT without its grace period).
func (c RotationCommand) NeedsSignature() bool {
	return c.Trigger == TriggerManual || c.RevokeNow
}

// Canonical is the byte string a signature covers: a JSON array of every field that
// changes what the command does or what it records, in a fixed order, with a domain
// label so a MAC made for anything else never verifies here.
func (c RotationCommand) Canonical() []byte {
	return canonical(c.RequestedAt, c.Person, "patrol-rotation-command/1", c.SchemaVersion, c.Secret, c.OperationID,
		string(c.Trigger), c.Version, strconv.FormatBool(c.RevokeNow), c.RequestedBy, c.Reason)
}

// Sign sets c.Signature with key. The command should be validated first (Validate
// fills in the schema version, which the signature covers).
func (c *RotationCommand) Sign(key CommandKey) error {
	if c.SchemaVersion == "" {
		c.SchemaVersion = SchemaVersion
	}
	sig, err := sign(key, c.Canonical())
	if err != nil {
		return err
	}
	c.Signature = sig
	return nil
}

// Verify checks c's signature with key (the version c.Signature names) at time now:
// the MAC in constant time, then the command's age. Errors match ErrUnauthenticated.
func (c RotationCommand) Verify(key CommandKey, now time.Time) error {
	return verify(c.Signature, key, c.Canonical(), c.RequestedAt, now,
		"", "missing; a manual or revokeNow command must be signed by patrol (RotateNow or the CLI)")
}

// Canonical is the byte string a revocation's signature covers, as for a rotation
// command: every field, in a fixed order, under a label of its own so that a MAC made
// for a rotation command never verifies as a revocation, nor the reverse.
func (c RevocationCommand) Canonical() []byte {
	return canonical(c.RequestedAt, c.Person, "patrol-revocation-command/1", c.SchemaVersion, string(c.Kind), c.Secret,
		c.Org, c.PATID, c.Owner, c.Account, c.OperationID, c.EventID)
}

// canonical is the JSON array a signature covers: the label and fields of a command,
// then its requestedAt (RFC 3339, UTC; empty when unset) and its person's UPN and
// object id (empty when none), always in that order.
func canonical(requestedAt time.Time, p *Person, labelAndFields ...string) []byte {
	var at, upn, oid string
	if !requestedAt.IsZero() {
		at = requestedAt.UTC().Format(time.RFC3339Nano)
	}
	if p != nil {
		upn, oid = p.UPN, p.ObjectID
	}
	b, _ := json.Marshal(append(labelAndFields, at, upn, oid))
	return b
}

// Sign sets c.Signature with key; validate c first (Validate canonicalises the PAT id,
// which the signature covers) and set RequestedAt.
func (c *RevocationCommand) Sign(key CommandKey) error {
	if c.SchemaVersion == "" {
		c.SchemaVersion = SchemaVersion
	}
	sig, err := sign(key, c.Canonical())
	if err != nil {
		return err
	}
	c.Signature = sig
	return nil
}

// Verify checks a revocation's signature as RotationCommand.Verify does (MAC, then
// age: a signed revocation is delivered at once, so MaxCommandAge bounds it too).
func (c RevocationCommand) Verify(key CommandKey, now time.Time) error {
	return verify(c.Signature, key, c.Canonical(), c.RequestedAt, now,
		revocationDoc, "missing; a revocation before the replaced PAT's grace period ends, or of an unmanaged PAT (RevokeUnmanaged), must be signed by patrol")
}

const revocationDoc = "revocation command"

// sign is the HMAC every signed command shares.
func sign(key CommandKey, canonical []byte) (*CommandSignature, error) {
	if !key.Usable() {
		return nil, errors.New("contract: the command key is unusable (no version, or shorter than 32 bytes)")
	}
	return &CommandSignature{KeyVersion: key.Version, MAC: base64.RawURLEncoding.EncodeToString(key.mac(canonical))}, nil
}

// verify checks sig over canonical with key, in constant time, then the age of
// requestedAt at now. missing is the Problem when there is no signature.
func verify(sig *CommandSignature, key CommandKey, canonical []byte, requestedAt, now time.Time, doc, missing string) error {
	if sig == nil {
		return &AuthError{Doc: doc, Problem: missing}
	}
	if !key.Usable() || key.Version != sig.KeyVersion {
		return &AuthError{Doc: doc, Problem: "no usable key of version " + Clip(sig.KeyVersion)}
	}
	got, err := base64.RawURLEncoding.DecodeString(sig.MAC)
	if err != nil || !hmac.Equal(got, key.mac(canonical)) {
		return &AuthError{Doc: doc, Problem: "does not match the command (altered, or signed with another key)"}
	}
	switch {
	case requestedAt.IsZero():
		return &AuthError{Doc: doc, Problem: "the command has no requestedAt"}
	case now.Sub(requestedAt) > MaxCommandAge:
		return &AuthError{Doc: doc, Problem: fmt.Sprintf("the command was signed at %s, more than %s ago (a replay?)", requestedAt.UTC().Format(time.RFC3339), MaxCommandAge)}
	case requestedAt.Sub(now) > maxClockSkew:
		return &AuthError{Doc: doc, Problem: "the command's requestedAt is in the future"}
	}
	return nil
}

// checkSignature validates the shape of a signature (not the MAC).
func checkSignature(doc string, s *CommandSignature) error {
	if s == nil {
		return nil
	}
	if !ValidVersion(s.KeyVersion) {
		return Malformed(doc, "signature.keyVersion", "%q is not a Key Vault version (32 lower-case hex digits)", Clip(s.KeyVersion))
	}
	if b, err := base64.RawURLEncoding.DecodeString(s.MAC); err != nil || len(b) != sha256.Size {
		return Malformed(doc, "signature.mac", "want %d bytes of unpadded base64url", sha256.Size)
	}
	return nil
}
