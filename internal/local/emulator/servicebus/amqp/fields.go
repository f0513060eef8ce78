package amqp

import (
	"fmt"
	"time"
)

// fields reads the positional fields of a composite (described list) with type checks.
// Missing trailing fields and nulls read as "absent".
type fields struct {
	name string
	v    []any
}

func (f fields) get(i int) any {
	if i < len(f.v) {
		return f.v[i]
	}
	return nil
}

func (f fields) err(i int, want string) error {
	return fmt.Errorf("amqp: %s field %d is %T, want %s", f.name, i, f.get(i), want)
}

func (f fields) str(i int) (string, error) {
	switch v := f.get(i).(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case Symbol:
		return string(v), nil
	}
	return "", f.err(i, "string")
}

func (f fields) sym(i int) (Symbol, error) {
	switch v := f.get(i).(type) {
	case nil:
		return "", nil
	case Symbol:
		return v, nil
	case string:
		return Symbol(v), nil
	}
	return "", f.err(i, "symbol")
}

func (f fields) boolean(i int) (bool, error) {
	switch v := f.get(i).(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	}
	return false, f.err(i, "boolean")
}

func (f fields) optBool(i int) (*bool, error) {
	if f.get(i) == nil {
		return nil, nil
	}
	b, err := f.boolean(i)
	return &b, err
}

func (f fields) u64(i int) (uint64, bool, error) {
	switch v := f.get(i).(type) {
	case nil:
		return 0, false, nil
	case uint8:
		return uint64(v), true, nil
	case uint16:
		return uint64(v), true, nil
	case uint32:
		return uint64(v), true, nil
	case uint64:
		return v, true, nil
	}
	return 0, false, f.err(i, "unsigned integer")
}

func (f fields) u32(i int, def uint32) (uint32, error) {
	v, ok, err := f.u64(i)
	if err != nil || !ok {
		return def, err
	}
	if v > 0xffffffff {
		return 0, f.err(i, "uint")
	}
	return uint32(v), nil
}

func (f fields) optU32(i int) (*uint32, error) {
	if f.get(i) == nil {
		return nil, nil
	}
	v, err := f.u32(i, 0)
	return &v, err
}

func (f fields) u16(i int, def uint16) (uint16, error) {
	v, ok, err := f.u64(i)
	if err != nil || !ok {
		return def, err
	}
	if v > 0xffff {
		return 0, f.err(i, "ushort")
	}
	return uint16(v), nil
}

func (f fields) optU8(i int) (*uint8, error) {
	v, ok, err := f.u64(i)
	if err != nil || !ok {
		return nil, err
	}
	if v > 0xff {
		return nil, f.err(i, "ubyte")
	}
	b := uint8(v)
	return &b, nil
}

func (f fields) binary(i int) ([]byte, error) {
	switch v := f.get(i).(type) {
	case nil:
		return nil, nil
	case []byte:
		return v, nil
	}
	return nil, f.err(i, "binary")
}

func (f fields) mapping(i int) (Map, error) {
	switch v := f.get(i).(type) {
	case nil:
		return nil, nil
	case Map:
		return v, nil
	}
	return nil, f.err(i, "map")
}

// symbols reads a "multiple" symbol field: one symbol or an array of them.
func (f fields) symbols(i int) ([]Symbol, error) {
	switch v := f.get(i).(type) {
	case nil:
		return nil, nil
	case Symbol:
		return []Symbol{v}, nil
	case Array:
		out := make([]Symbol, 0, len(v.Items))
		for _, it := range v.Items {
			s, ok := it.(Symbol)
			if !ok {
				return nil, f.err(i, "array of symbol")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, f.err(i, "symbol or array of symbol")
}

func (f fields) millis(i int) (time.Duration, error) {
	v, err := f.u32(i, 0)
	return time.Duration(v) * time.Millisecond, err
}

// composite checks that v is a described list with the wanted descriptor code.
func composite(v any, code uint64, name string) (fields, error) {
	d, ok := v.(Described)
	if !ok {
		return fields{}, fmt.Errorf("amqp: %s is %T, want a described list", name, v)
	}
	c, ok := DescriptorCode(d.Descriptor)
	if !ok || c != code {
		return fields{}, fmt.Errorf("amqp: %s has descriptor %v, want %#x", name, d.Descriptor, code)
	}
	switch l := d.Value.(type) {
	case []any:
		return fields{name: name, v: l}, nil
	case nil:
		return fields{name: name}, nil
	}
	return fields{}, fmt.Errorf("amqp: %s body is %T, want list", name, d.Value)
}

// describedList encodes fields as a described list, dropping trailing nulls as the
// specification allows (and as peers expect for short performatives).
func describedList(b []byte, code uint64, items ...any) ([]byte, error) {
	n := len(items)
	for n > 0 && isNull(items[n-1]) {
		n--
	}
	b = append(b, 0x00)
	b = appendUlong(b, code)
	return appendList(b, items[:n])
}

// isNull reports typed-nil pointers and nil interfaces, which encode as AMQP null.
func isNull(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case *uint32:
		return x == nil
	case *uint8:
		return x == nil
	case *bool:
		return x == nil
	case *Error:
		return x == nil
	case *Source:
		return x == nil
	case *Target:
		return x == nil
	case Map:
		return x == nil
	case []Symbol:
		return x == nil
	case []byte:
		return x == nil
	}
	return false
}

// opt converts the optional pointers used in the structs to values Append understands.
func opt(v any) any {
	switch x := v.(type) {
	case *uint32:
		if x == nil {
			return nil
		}
		return *x
	case *uint8:
		if x == nil {
			return nil
		}
		return *x
	case *bool:
		if x == nil {
			return nil
		}
		return *x
	case *Error:
		if x == nil {
			return nil
		}
		return x
	case *Source:
		if x == nil {
			return nil
		}
		return x
	case *Target:
		if x == nil {
			return nil
		}
		return x
	case Map:
		if x == nil {
			return nil
		}
		return x
	case []Symbol:
		if x == nil {
			return nil
		}
		return x
	case []byte:
		if x == nil {
			return nil
		}
		return x
	case string:
		if x == "" {
			return nil
		}
		return x
	case Symbol:
		if x == "" {
			return nil
		}
		return x
	}
	return v
}

func opts(vs ...any) []any {
	for i, v := range vs {
		vs[i] = opt(v)
	}
	return vs
}

// U32 returns a pointer to v, for optional fields.
func U32(v uint32) *uint32 { return &v }

// U8 returns a pointer to v, for optional fields.
func U8(v uint8) *uint8 { return &v }

// Bool returns a pointer to v, for optional fields.
func Bool(v bool) *bool { return &v }
