package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// maxDepth bounds nesting so a hostile peer cannot exhaust the stack with nested lists.
const maxDepth = 64

// ErrShort reports input that ends in the middle of a value.
var ErrShort = errors.New("amqp: truncated value")

// Decode decodes one AMQP value from b and returns it with the bytes that follow it.
func Decode(b []byte) (v any, rest []byte, err error) {
	d := &decoder{b: b}
	v, err = d.value()
	if err != nil {
		return nil, nil, err
	}
	return v, d.b, nil
}

type decoder struct {
	b     []byte
	depth int
}

func (d *decoder) need(n int) ([]byte, error) {
	if n < 0 || len(d.b) < n {
		return nil, ErrShort
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out, nil
}

func (d *decoder) byte() (byte, error) {
	p, err := d.need(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (d *decoder) u32() (uint32, error) {
	p, err := d.need(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(p), nil
}

func (d *decoder) value() (any, error) {
	code, err := d.byte()
	if err != nil {
		return nil, err
	}
	if code == 0x00 {
		return d.described()
	}
	return d.primitive(code)
}

func (d *decoder) described() (any, error) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		return nil, fmt.Errorf("amqp: values nested deeper than %d", maxDepth)
	}
	desc, err := d.value()
	if err != nil {
		return nil, err
	}
	switch desc.(type) {
	case uint64, Symbol:
	default:
		return nil, fmt.Errorf("amqp: descriptor of type %T (want ulong or symbol)", desc)
	}
	val, err := d.value()
	if err != nil {
		return nil, err
	}
	return Described{Descriptor: desc, Value: val}, nil
}

// primitive decodes the value that follows constructor code.
func (d *decoder) primitive(code byte) (any, error) {
	switch code {
	case 0x40:
		return nil, nil
	case 0x41:
		return true, nil
	case 0x42:
		return false, nil
	case 0x56:
		c, err := d.byte()
		if err != nil {
			return nil, err
		}
		if c > 1 {
			return nil, fmt.Errorf("amqp: boolean byte %#x", c)
		}
		return c == 1, nil
	case 0x50:
		return d.byte()
	case 0x60:
		p, err := d.need(2)
		if err != nil {
			return nil, err
		}
		return binary.BigEndian.Uint16(p), nil
	case 0x70:
		return d.u32()
	case 0x52:
		c, err := d.byte()
		return uint32(c), err
	case 0x43:
		return uint32(0), nil
	case 0x80:
		p, err := d.need(8)
		if err != nil {
			return nil, err
		}
		return binary.BigEndian.Uint64(p), nil
	case 0x53:
		c, err := d.byte()
		return uint64(c), err
	case 0x44:
		return uint64(0), nil
	case 0x51:
		c, err := d.byte()
		return int8(c), err
	case 0x61:
		p, err := d.need(2)
		if err != nil {
			return nil, err
		}
		return int16(binary.BigEndian.Uint16(p)), nil
	case 0x71:
		x, err := d.u32()
		return int32(x), err
	case 0x54:
		c, err := d.byte()
		return int32(int8(c)), err
	case 0x81:
		p, err := d.need(8)
		if err != nil {
			return nil, err
		}
		return int64(binary.BigEndian.Uint64(p)), nil
	case 0x55:
		c, err := d.byte()
		return int64(int8(c)), err
	case 0x72:
		x, err := d.u32()
		return math.Float32frombits(x), err
	case 0x82:
		p, err := d.need(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(p)), nil
	case 0x73:
		x, err := d.u32()
		return Char(x), err
	case 0x74, 0x84, 0x94:
		n := map[byte]int{0x74: 4, 0x84: 8, 0x94: 16}[code]
		p, err := d.need(n)
		if err != nil {
			return nil, err
		}
		return Decimal{Code: code, Bytes: append([]byte(nil), p...)}, nil
	case 0x83:
		p, err := d.need(8)
		if err != nil {
			return nil, err
		}
		return timeFromMillis(int64(binary.BigEndian.Uint64(p))), nil
	case 0x98:
		p, err := d.need(16)
		if err != nil {
			return nil, err
		}
		var u UUID
		copy(u[:], p)
		return u, nil
	case 0xa0, 0xb0, 0xa1, 0xb1, 0xa3, 0xb3:
		var n int
		if code&0xf0 == 0xa0 {
			c, err := d.byte()
			if err != nil {
				return nil, err
			}
			n = int(c)
		} else {
			x, err := d.u32()
			if err != nil {
				return nil, err
			}
			if uint64(x) > uint64(len(d.b)) {
				return nil, ErrShort
			}
			n = int(x)
		}
		p, err := d.need(n)
		if err != nil {
			return nil, err
		}
		switch code & 0x0f {
		case 0x0:
			return append([]byte(nil), p...), nil
		case 0x1:
			if !utf8.Valid(p) {
				return nil, fmt.Errorf("amqp: string is not valid UTF-8")
			}
			return string(p), nil
		}
		return Symbol(p), nil
	case 0x45, 0xc0, 0xd0:
		return d.list(code)
	case 0xc1, 0xd1:
		return d.mapValue(code)
	case 0xe0, 0xf0:
		return d.array(code)
	}
	return nil, fmt.Errorf("amqp: unknown type constructor %#02x", code)
}

// compoundHeader reads the size and count of a list or map and returns its body bytes.
func (d *decoder) compoundHeader(code byte) (size, count uint32, body []byte, err error) {
	switch code {
	case 0x45:
		return 0, 0, nil, nil
	case 0xc0, 0xc1, 0xe0:
		s, err := d.byte()
		if err != nil {
			return 0, 0, nil, err
		}
		if s < 1 {
			return 0, 0, nil, fmt.Errorf("amqp: compound size %d too small", s)
		}
		p, err := d.need(int(s))
		if err != nil {
			return 0, 0, nil, err
		}
		return uint32(s), uint32(p[0]), p[1:], nil
	default:
		s, err := d.u32()
		if err != nil {
			return 0, 0, nil, err
		}
		if s < 4 {
			return 0, 0, nil, fmt.Errorf("amqp: compound size %d too small", s)
		}
		if uint64(s) > uint64(len(d.b)) {
			return 0, 0, nil, ErrShort
		}
		p, _ := d.need(int(s))
		return s, binary.BigEndian.Uint32(p), p[4:], nil
	}
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return fmt.Errorf("amqp: values nested deeper than %d", maxDepth)
	}
	return nil
}

func (d *decoder) list(code byte) (any, error) {
	_, count, body, err := d.compoundHeader(code)
	if err != nil {
		return nil, err
	}
	if uint64(count) > uint64(len(body)) {
		return nil, fmt.Errorf("amqp: list claims %d elements in %d bytes", count, len(body))
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	inner := &decoder{b: body, depth: d.depth}
	out := make([]any, 0, count)
	for range count {
		v, err := inner.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(inner.b) != 0 {
		return nil, fmt.Errorf("amqp: %d bytes left over in list", len(inner.b))
	}
	return out, nil
}

func (d *decoder) mapValue(code byte) (any, error) {
	_, count, body, err := d.compoundHeader(code)
	if err != nil {
		return nil, err
	}
	if count%2 != 0 {
		return nil, fmt.Errorf("amqp: map with odd element count %d", count)
	}
	if uint64(count) > uint64(len(body)) {
		return nil, fmt.Errorf("amqp: map claims %d elements in %d bytes", count, len(body))
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	inner := &decoder{b: body, depth: d.depth}
	out := make(Map, 0, count/2)
	for range count / 2 {
		k, err := inner.value()
		if err != nil {
			return nil, err
		}
		v, err := inner.value()
		if err != nil {
			return nil, err
		}
		out = append(out, MapEntry{Key: k, Value: v})
	}
	if len(inner.b) != 0 {
		return nil, fmt.Errorf("amqp: %d bytes left over in map", len(inner.b))
	}
	return out, nil
}

func (d *decoder) array(code byte) (any, error) {
	_, count, body, err := d.compoundHeader(code)
	if err != nil {
		return nil, err
	}
	// Zero-width elements (null, true, list0…) would let a few bytes claim billions of
	// items; no legitimate array has more elements than bytes.
	if uint64(count) > uint64(len(body))+1 {
		return nil, fmt.Errorf("amqp: array claims %d elements in %d bytes", count, len(body))
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	inner := &decoder{b: body, depth: d.depth}
	ctor, err := inner.byte()
	if err != nil {
		return nil, err
	}
	var desc any
	if ctor == 0x00 {
		if desc, err = inner.value(); err != nil {
			return nil, err
		}
		if ctor, err = inner.byte(); err != nil {
			return nil, err
		}
	}
	if ctor == 0x00 {
		return nil, fmt.Errorf("amqp: nested descriptor in array constructor")
	}
	items := make([]any, 0, count)
	for range count {
		v, err := inner.primitive(ctor)
		if err != nil {
			return nil, err
		}
		if desc != nil {
			v = Described{Descriptor: desc, Value: v}
		}
		items = append(items, v)
	}
	if len(inner.b) != 0 {
		return nil, fmt.Errorf("amqp: %d bytes left over in array", len(inner.b))
	}
	return Array{Items: items}, nil
}
