package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Marshaler is implemented by composite types (performatives, termini, states) that know
// their own described-list form.
type Marshaler interface {
	// AppendAMQP appends the encoded value to b.
	AppendAMQP(b []byte) ([]byte, error)
}

// Append appends the AMQP encoding of v to b, choosing the smallest constructor.
func Append(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, 0x40), nil
	case Marshaler:
		return x.AppendAMQP(b)
	case bool:
		if x {
			return append(b, 0x41), nil
		}
		return append(b, 0x42), nil
	case uint8:
		return append(b, 0x50, x), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(b, 0x60), x), nil
	case uint32:
		return appendUint(b, x), nil
	case uint64:
		return appendUlong(b, x), nil
	case uint:
		return appendUlong(b, uint64(x)), nil
	case int8:
		return append(b, 0x51, byte(x)), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(b, 0x61), uint16(x)), nil
	case int32:
		if x >= math.MinInt8 && x <= math.MaxInt8 {
			return append(b, 0x54, byte(int8(x))), nil
		}
		return binary.BigEndian.AppendUint32(append(b, 0x71), uint32(x)), nil
	case int64:
		return appendLong(b, x), nil
	case int:
		return appendLong(b, int64(x)), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(b, 0x72), math.Float32bits(x)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 0x82), math.Float64bits(x)), nil
	case Char:
		return binary.BigEndian.AppendUint32(append(b, 0x73), uint32(x)), nil
	case Decimal:
		want := map[byte]int{0x74: 4, 0x84: 8, 0x94: 16}[x.Code]
		if want == 0 || len(x.Bytes) != want {
			return nil, fmt.Errorf("amqp: decimal with code %#x and %d bytes", x.Code, len(x.Bytes))
		}
		return append(append(b, x.Code), x.Bytes...), nil
	case time.Time:
		return binary.BigEndian.AppendUint64(append(b, 0x83), uint64(x.UnixMilli())), nil
	case UUID:
		return append(append(b, 0x98), x[:]...), nil
	case []byte:
		if len(x) <= math.MaxUint8 {
			return append(append(b, 0xa0, byte(len(x))), x...), nil
		}
		return append(binary.BigEndian.AppendUint32(append(b, 0xb0), uint32(len(x))), x...), nil
	case string:
		if !utf8.ValidString(x) {
			return nil, fmt.Errorf("amqp: string is not valid UTF-8")
		}
		return appendVariable(b, 0xa1, 0xb1, x), nil
	case Symbol:
		return appendVariable(b, 0xa3, 0xb3, string(x)), nil
	case Described:
		b = append(b, 0x00)
		b, err := Append(b, x.Descriptor)
		if err != nil {
			return nil, err
		}
		return Append(b, x.Value)
	case []any:
		return appendList(b, x)
	case Map:
		return appendMap(b, x)
	case map[string]any:
		m := make(Map, 0, len(x))
		for k, v := range x {
			m = append(m, MapEntry{Key: k, Value: v})
		}
		return appendMap(b, m)
	case map[Symbol]any:
		m := make(Map, 0, len(x))
		for k, v := range x {
			m = append(m, MapEntry{Key: k, Value: v})
		}
		return appendMap(b, m)
	case Array:
		return appendArray(b, x.Items)
	case []Symbol:
		items := make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
		return appendArray(b, items)
	case []string:
		items := make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
		return appendArray(b, items)
	case []int64:
		items := make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
		return appendArray(b, items)
	case []time.Time:
		items := make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
		return appendArray(b, items)
	case []UUID:
		items := make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
		return appendArray(b, items)
	}
	return nil, fmt.Errorf("amqp: cannot encode Go type %T", v)
}

// Encode returns the AMQP encoding of v.
func Encode(v any) ([]byte, error) { return Append(nil, v) }

func appendUint(b []byte, x uint32) []byte {
	switch {
	case x == 0:
		return append(b, 0x43)
	case x <= math.MaxUint8:
		return append(b, 0x52, byte(x))
	}
	return binary.BigEndian.AppendUint32(append(b, 0x70), x)
}

func appendUlong(b []byte, x uint64) []byte {
	switch {
	case x == 0:
		return append(b, 0x44)
	case x <= math.MaxUint8:
		return append(b, 0x53, byte(x))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x80), x)
}

func appendLong(b []byte, x int64) []byte {
	if x >= math.MinInt8 && x <= math.MaxInt8 {
		return append(b, 0x55, byte(int8(x)))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x81), uint64(x))
}

func appendVariable(b []byte, small, large byte, s string) []byte {
	if len(s) <= math.MaxUint8 {
		return append(append(b, small, byte(len(s))), s...)
	}
	return append(binary.BigEndian.AppendUint32(append(b, large), uint32(len(s))), s...)
}

// appendCompound writes a list or map: the 8-bit form when both size and count fit a byte.
func appendCompound(b []byte, code8, code32 byte, count int, body []byte) []byte {
	if count <= math.MaxUint8 && len(body)+1 <= math.MaxUint8 {
		return append(append(b, code8, byte(len(body)+1), byte(count)), body...)
	}
	b = append(b, code32)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)+4))
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	return append(b, body...)
}

func appendList(b []byte, items []any) ([]byte, error) {
	if len(items) == 0 {
		return append(b, 0x45), nil
	}
	var body []byte
	var err error
	for _, it := range items {
		if body, err = Append(body, it); err != nil {
			return nil, err
		}
	}
	return appendCompound(b, 0xc0, 0xd0, len(items), body), nil
}

func appendMap(b []byte, m Map) ([]byte, error) {
	var body []byte
	var err error
	for _, e := range m {
		if body, err = Append(body, e.Key); err != nil {
			return nil, err
		}
		if body, err = Append(body, e.Value); err != nil {
			return nil, err
		}
	}
	return appendCompound(b, 0xc1, 0xd1, 2*len(m), body), nil
}

// appendArray writes an array. Every element shares one constructor, so elements use a
// fixed-width form chosen from the first element's type.
func appendArray(b []byte, items []any) ([]byte, error) {
	var ctor byte
	var body []byte
	if len(items) == 0 {
		// An empty array still needs a constructor; symbol is what peers expect for capabilities.
		ctor = 0xa3
	} else {
		var err error
		ctor, err = arrayConstructor(items)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if body, err = appendArrayElem(body, ctor, it); err != nil {
				return nil, err
			}
		}
	}
	if len(items) <= math.MaxUint8 && len(body)+2 <= math.MaxUint8 {
		return append(append(b, 0xe0, byte(len(body)+2), byte(len(items)), ctor), body...), nil
	}
	b = append(b, 0xf0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)+5))
	b = binary.BigEndian.AppendUint32(b, uint32(len(items)))
	return append(append(b, ctor), body...), nil
}

func arrayConstructor(items []any) (byte, error) {
	maxLen := 0
	for _, it := range items {
		switch s := it.(type) {
		case string:
			maxLen = max(maxLen, len(s))
		case Symbol:
			maxLen = max(maxLen, len(s))
		case []byte:
			maxLen = max(maxLen, len(s))
		}
	}
	small := maxLen <= math.MaxUint8
	switch items[0].(type) {
	case bool:
		return 0x56, nil
	case uint8:
		return 0x50, nil
	case uint16:
		return 0x60, nil
	case uint32:
		return 0x70, nil
	case uint64, uint:
		return 0x80, nil
	case int8:
		return 0x51, nil
	case int16:
		return 0x61, nil
	case int32:
		return 0x71, nil
	case int64, int:
		return 0x81, nil
	case float32:
		return 0x72, nil
	case float64:
		return 0x82, nil
	case time.Time:
		return 0x83, nil
	case UUID:
		return 0x98, nil
	case string:
		if small {
			return 0xa1, nil
		}
		return 0xb1, nil
	case Symbol:
		if small {
			return 0xa3, nil
		}
		return 0xb3, nil
	case []byte:
		if small {
			return 0xa0, nil
		}
		return 0xb0, nil
	case []any:
		return 0xd0, nil
	case Map:
		return 0xd1, nil
	}
	return 0, fmt.Errorf("amqp: cannot encode an array of %T", items[0])
}

func appendArrayElem(b []byte, ctor byte, v any) ([]byte, error) {
	bad := func() ([]byte, error) {
		return nil, fmt.Errorf("amqp: array element %T does not match constructor %#x", v, ctor)
	}
	switch ctor {
	case 0x56:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		if x {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case 0x50:
		x, ok := v.(uint8)
		if !ok {
			return bad()
		}
		return append(b, x), nil
	case 0x60:
		x, ok := v.(uint16)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint16(b, x), nil
	case 0x70:
		x, ok := v.(uint32)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, x), nil
	case 0x80:
		switch x := v.(type) {
		case uint64:
			return binary.BigEndian.AppendUint64(b, x), nil
		case uint:
			return binary.BigEndian.AppendUint64(b, uint64(x)), nil
		}
		return bad()
	case 0x51:
		x, ok := v.(int8)
		if !ok {
			return bad()
		}
		return append(b, byte(x)), nil
	case 0x61:
		x, ok := v.(int16)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint16(b, uint16(x)), nil
	case 0x71:
		x, ok := v.(int32)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, uint32(x)), nil
	case 0x81:
		switch x := v.(type) {
		case int64:
			return binary.BigEndian.AppendUint64(b, uint64(x)), nil
		case int:
			return binary.BigEndian.AppendUint64(b, uint64(x)), nil
		}
		return bad()
	case 0x72:
		x, ok := v.(float32)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, math.Float32bits(x)), nil
	case 0x82:
		x, ok := v.(float64)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(x)), nil
	case 0x83:
		x, ok := v.(time.Time)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, uint64(x.UnixMilli())), nil
	case 0x98:
		x, ok := v.(UUID)
		if !ok {
			return bad()
		}
		return append(b, x[:]...), nil
	case 0xa0, 0xa1, 0xa3, 0xb0, 0xb1, 0xb3:
		var s string
		switch x := v.(type) {
		case string:
			if ctor != 0xa1 && ctor != 0xb1 {
				return bad()
			}
			s = x
		case Symbol:
			if ctor != 0xa3 && ctor != 0xb3 {
				return bad()
			}
			s = string(x)
		case []byte:
			if ctor != 0xa0 && ctor != 0xb0 {
				return bad()
			}
			s = string(x)
		default:
			return bad()
		}
		if ctor&0xf0 == 0xa0 {
			return append(append(b, byte(len(s))), s...), nil
		}
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...), nil
	case 0xd0, 0xd1:
		enc, err := Append(nil, v)
		if err != nil {
			return nil, err
		}
		// Re-emit in the 32-bit form without its constructor.
		d := &decoder{b: enc}
		code, _ := d.byte()
		size, count, body, err := d.compoundHeader(code)
		if err != nil {
			return nil, err
		}
		_ = size
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)+4))
		b = binary.BigEndian.AppendUint32(b, count)
		return append(b, body...), nil
	}
	return bad()
}
