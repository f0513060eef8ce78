package amqp

import (
	"bytes"
	"reflect"
	"testing"
)

func seedFrames(f *testing.F) {
	for _, p := range []any{
		&Open{ContainerID: "c", MaxFrameSize: 65536},
		&Attach{Name: "l", Role: RoleReceiver, Source: &Source{Address: "q", Filter: Map{{Symbol("com.microsoft:session-filter"), "s"}}}},
		&Transfer{Handle: 0, DeliveryID: U32(1), DeliveryTag: []byte{1}, Payload: []byte{0x00, 0x53, 0x75, 0xa0, 1, 'x'}},
		&Disposition{Role: RoleReceiver, First: 3, State: &Modified{DeliveryFailed: true}},
		&SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("anonymous")},
	} {
		b, err := AppendFrame(nil, Frame{Body: p})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 9, 2, 0, 0, 0, 0x40})
}

// FuzzReadFrame: whatever a peer sends, the reader returns a frame or an error, never
// panics, and a frame it accepts re-encodes to something it reads back the same.
func FuzzReadFrame(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := ReadFrame(bytes.NewReader(in), 4096)
		if err != nil || fr.Body == nil {
			return
		}
		b, err := AppendFrame(nil, fr)
		if err != nil {
			return // e.g. a decoded Map key the encoder refuses; not a reader bug
		}
		again, err := ReadFrame(bytes.NewReader(b), 1<<20)
		if err != nil {
			t.Fatalf("re-read of re-encoded %T: %v", fr.Body, err)
		}
		if !reflect.DeepEqual(normalise(again.Body), normalise(fr.Body)) {
			t.Fatalf("re-encode changed the frame:\n%#v\n%#v", fr.Body, again.Body)
		}
	})
}

// normalise removes the differences that re-encoding legitimately introduces.
func normalise(v any) any {
	if t, ok := v.(*Transfer); ok {
		c := *t
		if len(c.Payload) == 0 {
			c.Payload = nil
		}
		return &c
	}
	return v
}

// FuzzDecodeValue: the generic value decoder never panics, and what it decodes encodes
// to bytes that decode and re-encode identically (encoding is deterministic).
func FuzzDecodeValue(f *testing.F) {
	for _, v := range []any{
		nil, true, uint32(5), int64(-300), "str", Symbol("sym"), []any{uint8(1), Map{{"k", []byte{1}}}},
		Array{Items: []any{int64(1), int64(2)}}, Described{uint64(0x77), "v"}, UUID{1},
	} {
		b, err := Encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, _, err := Decode(in)
		if err != nil {
			return
		}
		b, err := Encode(v)
		if err != nil {
			return // e.g. an array of described values, which the broker never sends
		}
		again, _, err := Decode(b)
		if err != nil {
			t.Fatalf("decode of re-encoded %#v: %v", v, err)
		}
		b2, err := Encode(again)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encode is not stable: % x vs % x (%v)", b, b2, err)
		}
	})
}

// FuzzDecodeBody: the performative decoder never panics on a well-formed value of the
// wrong shape.
func FuzzDecodeBody(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = DecodeBody(in)
	})
}
