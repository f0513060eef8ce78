package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

// seedBodies adds the message body of every golden request of a Service Bus function
// in package handlers (testdata/<fn>/*.request.json, Data.msg), as the host sends it
// and unwrapped from the host's string encoding.
func seedBodies(f *testing.F, fn string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "handlers", "testdata", fn, "*.request.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed requests for %s: %v", fn, err)
	}
	for _, p := range files {
		var inv struct{ Data map[string]json.RawMessage }
		if err := json.Unmarshal(mustRead(f, p), &inv); err != nil {
			f.Fatal(err)
		}
		raw := bytes.TrimSpace(inv.Data["msg"])
		f.Add([]byte(raw))
		for range 3 {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				break
			}
			raw = bytes.TrimSpace([]byte(s))
			f.Add(raw)
		}
	}
}

func isFieldError(err error) bool {
	var fe *FieldError
	return errors.As(err, &fe)
}

func FuzzDecodeOffboardingMessage(f *testing.F) {
	seedBodies(f, "Offboarding")
	f.Add([]byte(validOffboarding))
	f.Add([]byte(`{"schemaVersion":"1","eventId":"e","person":{"objectId":"6F1C2A4E-8D3B-4C55-9A10-2B7E4D9C0F13"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeOffboardingMessage(body)
		if err != nil {
			if !isFieldError(err) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		// What was accepted survives a round trip unchanged (the decoder normalises).
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeOffboardingMessage(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Errorf("round trip changed the message:\n%+v\n%+v", m, again)
		}
	})
}

func FuzzDecodeRotationCommand(f *testing.F) {
	seedBodies(f, "Rotate")
	f.Add([]byte(`{"secret":"a","operationId":"o","trigger":"offboarding","person":{"upn":"a@b.example"},"version":"EE059B2BB5BC48398A53B168C6CDCB10"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeRotationCommand(body)
		if err != nil {
			if !isFieldError(err) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		b, _ := json.Marshal(c)
		again, err := DecodeRotationCommand(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Errorf("round trip changed the command:\n%+v\n%+v", c, again)
		}
	})
}

func FuzzDecodeRevocationCommand(f *testing.F) {
	seedBodies(f, "Revoke")
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeRevocationCommand(body)
		if err != nil {
			if !isFieldError(err) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		b, _ := json.Marshal(c)
		again, err := DecodeRevocationCommand(b)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Errorf("round trip: %+v, %v; want %+v", again, err, c)
		}
	})
}
