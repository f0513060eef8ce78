package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
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
	f.Add([]byte(unmanagedBody))
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

// The hand-written name checks against the regexps they replace.
var (
	secretNameOracle = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	versionOracle    = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func FuzzNameChecksAgreeWithTheirRegexps(f *testing.F) {
	for _, s := range []string{"pat-build", "", "-", strings.Repeat("a", 127), strings.Repeat("a", 128), "a b", "ee059b2bb5bc48398a53b168c6cdcb10", "EE059B2BB5BC48398A53B168C6CDCB10", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidSecretName(s), secretNameOracle.MatchString(s); got != want {
			t.Errorf("ValidSecretName(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := ValidVersion(s), versionOracle.MatchString(s); got != want {
			t.Errorf("ValidVersion(%q) = %v, regexp says %v", s, got, want)
		}
	})
}

func FuzzParsePerson(f *testing.F) {
	for _, s := range []string{"alice@contoso.com", "6F1C2A4E-8D3B-4C55-9A10-2B7E4D9C0F13", "alice", "", "@", "{6f1c2a4e-8d3b-4c55-9a10-2b7e4d9c0f13}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePerson("request", "person", s)
		if err != nil {
			if !isFieldError(err) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		if (p.UPN == "") == (p.ObjectID == "") {
			t.Fatalf("ParsePerson(%q) = %+v: want exactly one of upn and objectId", s, p)
		}
		// What it accepts, the offboarding message accepts too.
		if err := checkPerson("request", "person", &p); err != nil {
			t.Errorf("ParsePerson(%q) = %+v, which checkPerson refuses: %v", s, p, err)
		}
	})
}
