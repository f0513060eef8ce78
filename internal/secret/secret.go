// Package secret holds Value, the one type patrol carries token values in (PATs,
// access tokens, Key Vault secret values). It is a leaf so that the rotation core and
// every adapter share it and no value changes type (and redaction rules) on its way
// from Azure DevOps to Key Vault.
package secret

import (
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what a Value prints as, everywhere.
const Redacted = "[REDACTED]"

// Value holds a token value. Printing, logging or encoding it yields Redacted; only
// Reveal returns the value, for the adapter that must put it on the wire. Storing a
// token is a deliberate act, never a side effect of printing or marshalling a struct
// that happens to hold one.
//
// The value sits behind a pointer. fmt cannot call the methods of an unexported field
// (it reads such fields by reflection), so a struct holding a Value in an unexported
// field would otherwise print the bytes under %+v; behind a pointer it prints an
// address. It is a struct rather than a named string so that no conversion (string(v))
// and no reflection-based encoder (encoding/json writes string-kinded map keys
// verbatim) reaches the value by accident.
//
// Embedding a Value promotes its methods: the embedding struct then prints and
// marshals as Redacted as a whole. Prefer a named field.
type Value struct{ p *string }

// New wraps a token value.
func New(v string) Value { return Value{p: &v} }

// Reveal returns the token. Call it only at the point of use (an HTTP header, a Key
// Vault write); never pass the result to a logger or an error.
func (v Value) Reveal() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// IsZero reports whether v holds no token.
func (v Value) IsZero() bool { return v.p == nil || *v.p == "" }

// String implements fmt.Stringer.
func (Value) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (Value) GoString() string { return "secret.Value{" + Redacted + "}" }

// Format implements fmt.Formatter so that no verb (%x, %q, %d …) reaches the value.
func (v Value) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, v.GoString())
		return
	}
	_, _ = io.WriteString(f, Redacted)
}

// LogValue implements slog.LogValuer.
func (Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON keeps the value out of JSON (events, status output, logs); use Reveal
// to store it.
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText keeps the value out of text encodings (and JSON map keys).
func (Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
