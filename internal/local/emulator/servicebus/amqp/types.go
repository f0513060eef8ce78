// Package amqp is a hand-written AMQP 1.0 codec for the Service Bus emulator's broker side:
// the primitive and composite types of AMQP 1.0 part 1, the performatives of part 2, the
// SASL frames of part 5, the delivery states and termini, the frame reader/writer and the
// protocol headers.
//
// Why no library: github.com/Azure/go-amqp is a client; its type and frame codec lives in
// internal packages (internal/encoding, internal/frames, internal/buffer) that cannot be
// imported, has no decoder for the frames a server receives (sasl-init, sasl-response), and
// rejects the bare (non-described) session filter that rhea-based clients send. Copying it
// would bring another project's source into this repository, so this package is written
// from the AMQP 1.0 specification instead and shares no code with go-amqp. The broker
// still uses go-amqp's exported amqp.Message for message sections (bare messages), which is
// the one piece of go-amqp that is public API.
//
// Decoding maps AMQP types to Go values as follows: null → nil, boolean → bool, ubyte →
// uint8, ushort → uint16, uint → uint32, ulong → uint64, byte → int8, short → int16, int →
// int32, long → int64, float → float32, double → float64, char → Char, decimal* → Decimal,
// timestamp → time.Time (UTC), uuid → UUID, binary → []byte, string → string, symbol →
// Symbol, list → []any, map → Map (ordered), array → Array, described → Described.
// Encoding accepts the same types plus int (long), uint (ulong), []Symbol, []string,
// []int64, []time.Time and []UUID (arrays), and chooses the smallest encoding.
package amqp

import (
	"fmt"
	"time"
)

// Symbol is an AMQP symbol (ASCII string, distinct from string on the wire).
type Symbol string

// UUID is an AMQP uuid in RFC 4122 byte order.
type UUID [16]byte

// String formats the UUID in canonical form.
func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Char is an AMQP char (a UTF-32 code point).
type Char rune

// Decimal holds an IEEE 754 decimal32/64/128 value as raw bytes; the broker never
// computes with decimals, it only has to carry them through.
type Decimal struct {
	Code  byte // 0x74, 0x84 or 0x94
	Bytes []byte
}

// Described is a described type: a descriptor (usually a ulong code or a symbol) and a value.
type Described struct {
	Descriptor any
	Value      any
}

// MapEntry is one key/value pair of a Map.
type MapEntry struct {
	Key   any
	Value any
}

// Map is an AMQP map. It keeps wire order so that a value can be echoed in the form the
// peer sent it (the session filter), and allows non-string keys.
type Map []MapEntry

// Get returns the value for key (compared with ==) and whether it was present.
// Symbol and string keys match each other, since peers are inconsistent about which they use.
func (m Map) Get(key any) (any, bool) {
	for _, e := range m {
		if keyEqual(e.Key, key) {
			return e.Value, true
		}
	}
	return nil, false
}

// Set replaces the value of key or appends it.
func (m *Map) Set(key, value any) {
	for i, e := range *m {
		if keyEqual(e.Key, key) {
			(*m)[i].Value = value
			return
		}
	}
	*m = append(*m, MapEntry{Key: key, Value: value})
}

func keyEqual(a, b any) bool {
	as, aok := stringish(a)
	bs, bok := stringish(b)
	if aok && bok {
		return as == bs
	}
	defer func() { _ = recover() }() // uncomparable keys (slices) are never equal
	return a == b
}

func stringish(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case Symbol:
		return string(s), true
	}
	return "", false
}

// Array is an AMQP array: every element has the same constructor. Items hold decoded values.
type Array struct {
	Items []any
}

// Descriptor codes from the AMQP 1.0 specification.
const (
	CodeOpen                  uint64 = 0x10
	CodeBegin                 uint64 = 0x11
	CodeAttach                uint64 = 0x12
	CodeFlow                  uint64 = 0x13
	CodeTransfer              uint64 = 0x14
	CodeDisposition           uint64 = 0x15
	CodeDetach                uint64 = 0x16
	CodeEnd                   uint64 = 0x17
	CodeClose                 uint64 = 0x18
	CodeError                 uint64 = 0x1d
	CodeReceived              uint64 = 0x23
	CodeAccepted              uint64 = 0x24
	CodeRejected              uint64 = 0x25
	CodeReleased              uint64 = 0x26
	CodeModified              uint64 = 0x27
	CodeSource                uint64 = 0x28
	CodeTarget                uint64 = 0x29
	CodeDeleteOnClose         uint64 = 0x2b
	CodeSASLMechanisms        uint64 = 0x40
	CodeSASLInit              uint64 = 0x41
	CodeSASLChallenge         uint64 = 0x42
	CodeSASLResponse          uint64 = 0x43
	CodeSASLOutcome           uint64 = 0x44
	CodeHeader                uint64 = 0x70
	CodeDeliveryAnnotations   uint64 = 0x71
	CodeMessageAnnotations    uint64 = 0x72
	CodeProperties            uint64 = 0x73
	CodeApplicationProperties uint64 = 0x74
	CodeData                  uint64 = 0x75
	CodeAMQPSequence          uint64 = 0x76
	CodeAMQPValue             uint64 = 0x77
	CodeFooter                uint64 = 0x78
)

// symbolicDescriptors maps the symbolic descriptor names a peer may use instead of codes.
var symbolicDescriptors = map[Symbol]uint64{
	"amqp:open:list": CodeOpen, "amqp:begin:list": CodeBegin, "amqp:attach:list": CodeAttach,
	"amqp:flow:list": CodeFlow, "amqp:transfer:list": CodeTransfer, "amqp:disposition:list": CodeDisposition,
	"amqp:detach:list": CodeDetach, "amqp:end:list": CodeEnd, "amqp:close:list": CodeClose,
	"amqp:error:list": CodeError, "amqp:received:list": CodeReceived, "amqp:accepted:list": CodeAccepted,
	"amqp:rejected:list": CodeRejected, "amqp:released:list": CodeReleased, "amqp:modified:list": CodeModified,
	"amqp:source:list": CodeSource, "amqp:target:list": CodeTarget,
	"amqp:sasl-mechanisms:list": CodeSASLMechanisms, "amqp:sasl-init:list": CodeSASLInit,
	"amqp:sasl-challenge:list": CodeSASLChallenge, "amqp:sasl-response:list": CodeSASLResponse,
	"amqp:sasl-outcome:list": CodeSASLOutcome,
}

// DescriptorCode returns the numeric code of a descriptor given as a ulong or a known symbol.
func DescriptorCode(d any) (uint64, bool) {
	switch v := d.(type) {
	case uint64:
		return v, true
	case Symbol:
		c, ok := symbolicDescriptors[v]
		return c, ok
	}
	return 0, false
}

// Microsoft's session-filter descriptor (0x00000137:0x0000000C).
const CodeSessionFilter uint64 = 0x0000013700000000 | 0x0000000C

// timeFromMillis converts an AMQP timestamp.
func timeFromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
