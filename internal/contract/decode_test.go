package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fieldOf returns the Field of a FieldError in err's chain, failing the test otherwise.
func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FieldError", err)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("error %v does not match ErrMalformed", err)
	}
	return fe.Field
}

// cmpJSON compares two values by their JSON form, which is how they travel.
func cmpJSON(got, want any) string {
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		return fmt.Sprintf("got  %s\nwant %s", g, w)
	}
	return ""
}

const validOffboarding = `{"schemaVersion":"1","eventId":"hr-1","person":{"upn":"ada@contoso.example","objectId":"6f1c2a4e-8d3b-4c55-9a10-2b7e4d9c0f13"},"effectiveAt":"2026-11-30T17:00:00+01:00","reason":"resignation"}`

func TestDecodeOffboardingMessage(t *testing.T) {
	m, err := DecodeOffboardingMessage([]byte(validOffboarding))
	if err != nil {
		t.Fatal(err)
	}
	want := OffboardingMessage{SchemaVersion: "1", EventID: "hr-1", Person: Person{UPN: "ada@contoso.example", ObjectID: "6f1c2a4e-8d3b-4c55-9a10-2b7e4d9c0f13"},
		EffectiveAt: time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC), Reason: "resignation"}
	if d := cmpJSON(m, want); d != "" {
		t.Error(d)
	}

	cases := map[string]struct {
		body  string
		field string
	}{
		"a missing schemaVersion names it":               {body: `{"eventId":"e","person":{"upn":"a@b.example"}}`, field: "schemaVersion"},
		"a future schemaVersion names it":                {body: `{"schemaVersion":"2","eventId":"e","person":{"upn":"a@b.example"}}`, field: "schemaVersion"},
		"a numeric schemaVersion names it":               {body: `{"schemaVersion":1,"eventId":"e","person":{"upn":"a@b.example"}}`, field: "schemaVersion"},
		"a missing eventId names it":                     {body: `{"schemaVersion":"1","person":{"upn":"a@b.example"}}`, field: "eventId"},
		"an eventId with spaces names it":                {body: `{"schemaVersion":"1","eventId":"a b","person":{"upn":"a@b.example"}}`, field: "eventId"},
		"a missing person names it":                      {body: `{"schemaVersion":"1","eventId":"e"}`, field: "person"},
		"an empty person names it":                       {body: `{"schemaVersion":"1","eventId":"e","person":{}}`, field: "person"},
		"a person that is a string names it":             {body: `{"schemaVersion":"1","eventId":"e","person":"ada"}`, field: "person"},
		"a UPN without a domain names person.upn":        {body: `{"schemaVersion":"1","eventId":"e","person":{"upn":"ada"}}`, field: "person.upn"},
		"a UPN whose domain has no dot names person.upn": {body: `{"schemaVersion":"1","eventId":"e","person":{"upn":"ada@contoso"}}`, field: "person.upn"},
		"an objectId that is not a GUID names it":        {body: `{"schemaVersion":"1","eventId":"e","person":{"objectId":"42"}}`, field: "person.objectId"},
		"an effectiveAt that is not RFC 3339 names it":   {body: `{"schemaVersion":"1","eventId":"e","person":{"upn":"a@b.example"},"effectiveAt":"tomorrow"}`, field: "effectiveAt"},
		"a reason that is too long names it":             {body: `{"schemaVersion":"1","eventId":"e","person":{"upn":"a@b.example"},"reason":"` + strings.Repeat("x", 257) + `"}`, field: "reason"},
		"an array instead of an object names no field":   {body: `[]`, field: ""},
		"truncated JSON names no field":                  {body: `{"schemaVersion":"1"`, field: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeOffboardingMessage([]byte(tc.body))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := fieldOf(t, err); got != tc.field {
				t.Errorf("error %q names field %q, want %q", err, got, tc.field)
			}
		})
	}
}

func TestDecodeRotationCommand(t *testing.T) {
	ok := `{"secret":"pat-svc1","operationId":"op-1","trigger":"manual","revokeNow":true,"requestedAt":"2026-11-27T20:00:00Z"}`
	c, err := DecodeRotationCommand([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.SchemaVersion != SchemaVersion || !c.RevokeNow || c.RequestedAt.IsZero() {
		t.Errorf("decoded %+v: want schemaVersion defaulted, revokeNow and requestedAt set", c)
	}
	cases := map[string]struct {
		body  string
		field string
	}{
		"a missing secret names it":                      {body: `{"operationId":"o","trigger":"sweep"}`, field: "secret"},
		"a secret with an underscore names it":           {body: `{"secret":"a_b","operationId":"o","trigger":"sweep"}`, field: "secret"},
		"a missing operationId names it":                 {body: `{"secret":"s","trigger":"sweep"}`, field: "operationId"},
		"an unknown trigger names it":                    {body: `{"secret":"s","operationId":"o","trigger":"because"}`, field: "trigger"},
		"a version that is not hex names it":             {body: `{"secret":"s","operationId":"o","trigger":"near-expiry","version":"zz"}`, field: "version"},
		"an offboarding trigger without person names it": {body: `{"secret":"s","operationId":"o","trigger":"offboarding"}`, field: "person"},
		"revokeNow as a string names it":                 {body: `{"secret":"s","operationId":"o","trigger":"sweep","revokeNow":"yes"}`, field: "revokeNow"},
		"a requestedAt that is not a date names it":      {body: `{"secret":"s","operationId":"o","trigger":"sweep","requestedAt":"now"}`, field: "requestedAt"},
		"schemaVersion 2 names it":                       {body: `{"schemaVersion":"2","secret":"s","operationId":"o","trigger":"sweep"}`, field: "schemaVersion"},
		"a person with a bad UPN names person.upn":       {body: `{"secret":"s","operationId":"o","trigger":"offboarding","person":{"upn":"@x"}}`, field: "person.upn"},
		"an adopt command is refused naming trigger": {
			body: `{"secret":"db-password","operationId":"o","trigger":"adopt","policy":{"patrol-managed":"true","patrol-org":"contoso","patrol-scopes":"app_token"}}`, field: "trigger"},
		"a policy on any other trigger is refused naming it": {
			body: `{"secret":"s","operationId":"o","trigger":"manual","policy":{"patrol-lifetime":"365d"}}`, field: "policy"},
		"a signature with a bad key version names it": {
			body: `{"secret":"s","operationId":"o","trigger":"manual","signature":{"keyVersion":"k","mac":"AAAA"}}`, field: "signature.keyVersion"},
		"a signature with a short MAC names it": {
			body: `{"secret":"s","operationId":"o","trigger":"manual","signature":{"keyVersion":"0123456789abcdef0123456789abcdef","mac":"AAAA"}}`, field: "signature.mac"},
		"a reason with a line break names it": {body: `{"secret":"s","operationId":"o","trigger":"sweep","reason":"a\nb"}`, field: "reason"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeRotationCommand([]byte(tc.body))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := fieldOf(t, err); got != tc.field {
				t.Errorf("error %q names field %q, want %q", err, got, tc.field)
			}
		})
	}
}

func TestDecodeRevocationCommand(t *testing.T) {
	ok := `{"secret":"pat-svc1","org":"contoso","patId":"3E1F7C2A-5B4D-4E6F-8A9B-0C1D2E3F4A5B","owner":"svc@contoso.example","operationId":"op-1"}`
	// internal/rotation.Revocation marshalled as it is (op, account, owner omitted).
	core := `{"secret":"pat-svc1","org":"contoso","patId":"3e1f7c2a-5b4d-4e6f-8a9b-0c1d2e3f4a5b","account":"svc@contoso.example","op":"op-1"}`
	if c, err := DecodeRevocationCommand([]byte(core)); err != nil || c.OperationID != "op-1" || c.Account != "svc@contoso.example" {
		t.Errorf("the core's Revocation JSON decodes to %+v, %v", c, err)
	}
	c, err := DecodeRevocationCommand([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.PATID != "3e1f7c2a-5b4d-4e6f-8a9b-0c1d2e3f4a5b" {
		t.Errorf("patId = %q, want it lower-cased", c.PATID)
	}
	base := map[string]any{}
	_ = json.Unmarshal([]byte(ok), &base)
	cases := map[string]struct {
		edit  map[string]any
		field string
	}{
		"a missing org names it":              {edit: map[string]any{"org": nil}, field: "org"},
		"an org with a slash names it":        {edit: map[string]any{"org": "a/b"}, field: "org"},
		"an org ending in a hyphen names it":  {edit: map[string]any{"org": "contoso-"}, field: "org"},
		"a patId that is not a GUID names it": {edit: map[string]any{"patId": "123"}, field: "patId"},
		"a braced GUID is refused":            {edit: map[string]any{"patId": "{3e1f7c2a-5b4d-4e6f-8a9b-0c1d2e3f4a5b}"}, field: "patId"},
		"a missing owner names it":            {edit: map[string]any{"owner": nil}, field: "owner"},
		"an owner that is not a UPN names it": {edit: map[string]any{"owner": "svc"}, field: "owner"},
		"a missing operationId names it":      {edit: map[string]any{"operationId": nil}, field: "operationId"},
		"a numeric secret names it":           {edit: map[string]any{"secret": 7}, field: "secret"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m := map[string]any{}
			for k, v := range base {
				m[k] = v
			}
			for k, v := range tc.edit {
				if v == nil {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
			b, _ := json.Marshal(m)
			_, err := DecodeRevocationCommand(b)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := fieldOf(t, err); got != tc.field {
				t.Errorf("error %q names field %q, want %q", err, got, tc.field)
			}
		})
	}
}

// The JSON Schema and the Go validator describe the same message: the schema's
// examples decode, and its required properties are the ones the decoder insists on.
func TestOffboardingSchemaAgreesWithTheDecoder(t *testing.T) {
	var schema struct {
		Required   []string
		Properties map[string]json.RawMessage
		Examples   []json.RawMessage
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join("schema", "offboarding.schema.json")), &schema); err != nil {
		t.Fatal(err)
	}
	if len(schema.Examples) == 0 {
		t.Fatal("the schema has no examples")
	}
	var full map[string]any
	for _, ex := range schema.Examples {
		if _, err := DecodeOffboardingMessage(ex); err != nil {
			t.Errorf("schema example rejected: %v", err)
		}
		_ = json.Unmarshal(ex, &full)
	}
	for _, req := range schema.Required {
		m := map[string]any{}
		for k, v := range full {
			if k != req {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		_, err := DecodeOffboardingMessage(b)
		if err == nil || fieldOf(t, err) != req {
			t.Errorf("without required %q the decoder says %v", req, err)
		}
	}
	for k := range full {
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("example property %q is not in the schema", k)
		}
	}
	if !strings.Contains(string(mustRead(t, filepath.Join("..", "..", "docs", "offboarding.md"))), "offboarding.schema.json") {
		t.Error("docs/offboarding.md does not point at the schema")
	}
}
