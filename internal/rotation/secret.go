package rotation

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints as, everywhere.
const Redacted = "[REDACTED]"

// Secret holds a token value (a PAT or an access token). Printing, logging or
// encoding it yields Redacted; only Reveal returns the value, for the adapter that
// must put it on the wire. The value sits behind a pointer so that even reflection
// based printing of a struct holding a Secret in an unexported field (fmt's %+v)
// shows an address, not the bytes.
type Secret struct{ p *string }

// NewSecret wraps a token value.
func NewSecret(v string) Secret { return Secret{p: &v} }

// Reveal returns the value. Call it only at the point of use (an HTTP header, a Key
// Vault write); never pass the result to a logger or an error.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the Secret holds no value.
func (s Secret) IsZero() bool { return s.p == nil || *s.p == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return "rotation.Secret{" + Redacted + "}" }

// Format implements fmt.Formatter so every verb (%s %v %q %x %d …) redacts.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, Redacted)
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (used by other encoders and as JSON
// map keys).
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
