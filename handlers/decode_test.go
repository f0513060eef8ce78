package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestUnwrapValue(t *testing.T) {
	body := `{"a":1}`
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cases := map[string]struct {
		raw     string
		want    string
		wantErr bool
	}{
		"an object is used as it is":                       {raw: body, want: body},
		"a single-encoded string is unquoted":              {raw: q(body), want: body},
		"the host's double encoding is unquoted twice":     {raw: q(q(body)), want: body},
		"one more level of quoting is still tolerated":     {raw: q(q(q(body))), want: body},
		"four levels of quoting are refused":               {raw: q(q(q(q(body)))), wantErr: true},
		"base64 of JSON (a byte[] binding) is decoded":     {raw: q("eyJhIjoxfQ=="), want: body},
		"null is refused":                                  {raw: `null`, wantErr: true},
		"an empty string is refused":                       {raw: `""`, wantErr: true},
		"plain text is refused":                            {raw: q("person left"), wantErr: true},
		"surrounding whitespace inside the string is okay": {raw: q("  " + body + "\n"), want: body},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := unwrapValue([]byte(tc.raw))
			if (err != nil) != tc.wantErr {
				t.Fatalf("unwrapValue(%s) error = %v, want error %v", tc.raw, err, tc.wantErr)
			}
			if string(got) != tc.want {
				t.Errorf("unwrapValue(%s) = %s, want %s", tc.raw, got, tc.want)
			}
		})
	}
}

func TestMetadataScalars(t *testing.T) {
	cases := map[string]struct {
		raw     string
		str     string
		n       int64
		nOK     bool
		wantErr bool
	}{
		"a doubly encoded string loses both quotes": {raw: `"\"abc\""`, str: "abc"},
		"a plain string is kept":                    {raw: `"abc"`, str: "abc"},
		"an int sent as a string reads as an int":   {raw: `"1"`, str: "1", n: 1, nOK: true},
		"an int sent as a number reads as an int":   {raw: `42`, str: "42", n: 42, nOK: true},
		"an int doubly encoded reads as an int":     {raw: `"\"7\""`, str: "7", n: 7, nOK: true},
		"null reads as absent":                      {raw: `null`},
		"an object is not a string":                 {raw: `{}`, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := metaString(json.RawMessage(tc.raw))
			if (err != nil) != tc.wantErr {
				t.Fatalf("metaString(%s) error = %v", tc.raw, err)
			}
			if s != tc.str {
				t.Errorf("metaString(%s) = %q, want %q", tc.raw, s, tc.str)
			}
			if tc.wantErr {
				return
			}
			n, ok, err := metaInt(json.RawMessage(tc.raw))
			if tc.nOK && (err != nil || !ok || n != tc.n) {
				t.Errorf("metaInt(%s) = %d, %v, %v; want %d", tc.raw, n, ok, err, tc.n)
			}
		})
	}
}

func TestParseFlexibleTime(t *testing.T) {
	want := time.Date(2026, 11, 27, 20, 13, 49, 0, time.UTC)
	cases := map[string]string{
		"RFC 3339 with Z":                                 "2026-11-27T20:13:49Z",
		"an offset, converted to UTC":                     "2026-11-27T21:13:49+01:00",
		".NET round-trip with seven fractional digits":    "2026-11-27T20:13:49.0000000+00:00",
		"a zone-less DateTime (ExpiresAtUtc) means UTC":   "2026-11-27T20:13:49",
		"DateTime.ToString() in the invariant culture":    "11/27/2026 20:13:49",
		"DateTimeOffset.ToString() in invariant culture":  "11/27/2026 20:13:49 +00:00",
		"a twelve-hour clock with AM/PM and zone":         "11/27/2026 8:13:49 PM +00:00",
		"surrounding whitespace is ignored":               " 2026-11-27T20:13:49Z ",
		"a space instead of T, as some serializers write": "2026-11-27 20:13:49",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parseFlexibleTime(in)
			if err != nil || !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("parseFlexibleTime(%q) = %v, %v; want %v UTC", in, got, err, want)
			}
		})
	}
	if _, err := parseFlexibleTime("next tuesday"); err == nil {
		t.Error("parseFlexibleTime accepted prose")
	}
}

func TestUnixish(t *testing.T) {
	sec := time.Unix(1702592000, 0).UTC()
	cases := map[string]struct {
		raw     string
		want    time.Time
		ok      bool
		wantErr bool
	}{
		"Unix seconds as a number":              {raw: `1702592000`, want: sec, ok: true},
		"Unix seconds as a float (.NET float?)": {raw: `1.702592e9`, want: sec, ok: true},
		"Unix seconds as a string":              {raw: `"1702592000"`, want: sec, ok: true},
		"an RFC 3339 string":                    {raw: `"2023-12-14T22:13:20Z"`, want: sec, ok: true},
		"null means not set":                    {raw: `null`},
		"an empty string means not set":         {raw: `""`},
		"absent means not set":                  {raw: ``},
		"a negative number is refused":          {raw: `-5`, wantErr: true},
		"a number past year 9999 is refused":    {raw: `1e300`, wantErr: true},
		"prose is refused":                      {raw: `"soon"`, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok, err := unixish(json.RawMessage(tc.raw))
			if (err != nil) != tc.wantErr || ok != tc.ok || !got.Equal(tc.want) {
				t.Errorf("unixish(%s) = %v, %v, %v; want %v, %v, error %v", tc.raw, got, ok, err, tc.want, tc.ok, tc.wantErr)
			}
		})
	}
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

const validEvent = `{"id":"e1","topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1",
 "subject":"pat-svc1","eventType":"Microsoft.KeyVault.SecretNearExpiry","eventTime":"2026-11-27T01:08:33.1036736Z",
 "data":{"Id":"https://kv1.vault.azure.net/secrets/pat-svc1/ee059b2bb5bc48398a53b168c6cdcb10","VaultName":"kv1",
 "ObjectType":"Secret","ObjectName":"pat-svc1","Version":"ee059b2bb5bc48398a53b168c6cdcb10","NBF":1700000000,"EXP":1702592000},
 "dataVersion":"1","metadataVersion":"1"}`

// editEvent applies a JSON merge of edits onto validEvent's top level and data.
func editEvent(t *testing.T, top map[string]any, data map[string]any) string {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal([]byte(validEvent), &ev); err != nil {
		t.Fatal(err)
	}
	for k, v := range top {
		if v == nil {
			delete(ev, k)
		} else {
			ev[k] = v
		}
	}
	d, _ := ev["data"].(map[string]any)
	for k, v := range data {
		if v == nil {
			delete(d, k)
		} else {
			d[k] = v
		}
	}
	b, _ := json.Marshal(ev)
	return string(b)
}

func TestDecodeKeyVaultEventValid(t *testing.T) {
	cases := map[string]struct {
		top, data map[string]any
		check     func(KeyVaultEvent) string
	}{
		"a complete Event Grid event decodes": {check: func(e KeyVaultEvent) string {
			want := KeyVaultEvent{ID: "e1", Type: EventSecretNearExpiry, Schema: SchemaEventGrid,
				Source: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1",
				Time:   time.Date(2026, 11, 27, 1, 8, 33, 103673600, time.UTC), VaultName: "kv1", Secret: "pat-svc1",
				Version: "ee059b2bb5bc48398a53b168c6cdcb10", SecretID: "https://kv1.vault.azure.net/secrets/pat-svc1/ee059b2bb5bc48398a53b168c6cdcb10",
				NotBefore: time.Unix(1700000000, 0).UTC(), Expires: time.Unix(1702592000, 0).UTC()}
			return cmpJSON(e, want)
		}},
		"an upper-case version is lower-cased": {data: map[string]any{"Version": "EE059B2BB5BC48398A53B168C6CDCB10"},
			check: func(e KeyVaultEvent) string { return eq(e.Version, "ee059b2bb5bc48398a53b168c6cdcb10") }},
		"a missing ObjectName is taken from the subject": {data: map[string]any{"ObjectName": nil},
			check: func(e KeyVaultEvent) string { return eq(e.Secret, "pat-svc1") }},
		"a missing VaultName is taken from the version URL": {data: map[string]any{"VaultName": nil},
			check: func(e KeyVaultEvent) string { return eq(e.VaultName, "kv1") }},
		"a missing VaultName and Id fall back to the topic": {data: map[string]any{"VaultName": nil, "Id": nil},
			check: func(e KeyVaultEvent) string { return eq(e.VaultName, "kv1") }},
		"a missing Version is taken from the version URL": {data: map[string]any{"Version": nil},
			check: func(e KeyVaultEvent) string { return eq(e.Version, "ee059b2bb5bc48398a53b168c6cdcb10") }},
		"a null NBF leaves NotBefore zero": {data: map[string]any{"NBF": json.RawMessage("null")},
			check: func(e KeyVaultEvent) string { return eq(e.NotBefore.IsZero(), true) }},
		"an expired event is accepted": {top: map[string]any{"eventType": EventSecretExpired},
			check: func(e KeyVaultEvent) string { return eq(e.Type, EventSecretExpired) }},
		"a CloudEvents event uses type, time and source": {top: map[string]any{"eventType": nil, "eventTime": nil, "topic": nil,
			"specversion": "1.0", "type": EventSecretNearExpiry, "time": "2026-11-27T01:00:00Z", "source": "/x/vaults/kv1"},
			check: func(e KeyVaultEvent) string { return eq(e.Schema+" "+e.Source, SchemaCloudEvents+" /x/vaults/kv1") }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ev, err := DecodeKeyVaultEvent([]byte(editEvent(t, tc.top, tc.data)))
			if err != nil {
				t.Fatalf("DecodeKeyVaultEvent: %v", err)
			}
			if diff := tc.check(ev); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestDecodeKeyVaultEventShapes(t *testing.T) {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cases := map[string]string{
		"the event as an object":                   validEvent,
		"the event as a JSON string":               q(validEvent),
		"the event doubly encoded":                 q(q(validEvent)),
		"a one-element array, as Event Grid posts": "[" + validEvent + "]",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			ev, err := DecodeKeyVaultEvent([]byte(raw))
			if err != nil || ev.Secret != "pat-svc1" {
				t.Errorf("DecodeKeyVaultEvent = %+v, %v", ev, err)
			}
		})
	}
}

func TestDecodeKeyVaultEventInvalid(t *testing.T) {
	cases := map[string]struct {
		top, data map[string]any
		field     string
	}{
		"an unhandled event type names eventType":         {top: map[string]any{"eventType": "Microsoft.KeyVault.SecretNewVersionCreated"}, field: "eventType"},
		"a missing event type names eventType":            {top: map[string]any{"eventType": nil}, field: "eventType"},
		"a missing id names id":                           {top: map[string]any{"id": nil}, field: "id"},
		"a missing data names data":                       {top: map[string]any{"data": nil}, field: "data"},
		"a short version names data.Version":              {data: map[string]any{"Version": "ee05", "Id": nil}, field: "data.Version"},
		"a version URL disagreeing with Version names Id": {data: map[string]any{"Version": "00000000000000000000000000000000"}, field: "data.Id"},
		"a subject disagreeing with ObjectName names it":  {top: map[string]any{"subject": "pat-other"}, field: "subject"},
		"a key object names data.ObjectType":              {data: map[string]any{"ObjectType": "Key"}, field: "data.ObjectType"},
		"an impossible secret name names data.ObjectName": {top: map[string]any{"subject": nil}, data: map[string]any{"ObjectName": "pat_svc1", "Id": nil}, field: "data.ObjectName"},
		"no vault anywhere names data.VaultName":          {top: map[string]any{"topic": nil}, data: map[string]any{"VaultName": nil, "Id": nil}, field: "data.VaultName"},
		"an EXP that is prose names data.EXP":             {data: map[string]any{"EXP": "soon"}, field: "data.EXP"},
		"an eventTime that is prose names eventTime":      {top: map[string]any{"eventTime": "yesterday"}, field: "eventTime"},
		"data that is a number names data":                {top: map[string]any{"data": 5}, field: "data"},
		"a numeric subject names subject":                 {top: map[string]any{"subject": 5}, field: "subject"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeKeyVaultEvent([]byte(editEvent(t, tc.top, tc.data)))
			if err == nil {
				t.Fatal("DecodeKeyVaultEvent accepted it")
			}
			if got := fieldOf(t, err); got != tc.field {
				t.Errorf("error %q names field %q, want %q", err, got, tc.field)
			}
		})
	}
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

func TestDecodeHTTPRequest(t *testing.T) {
	cases := map[string]struct {
		raw   string
		check func(HTTPRequest) string
	}{
		"header values as arrays are kept in order": {raw: `{"Headers":{"X-A":["1","2"]}}`,
			check: func(r HTTPRequest) string { return eq(strings.Join(r.Headers.Values("X-A"), ","), "1,2") }},
		"header values as strings are accepted": {raw: `{"Headers":{"Content-Type":"application/json"}}`,
			check: func(r HTTPRequest) string { return eq(r.Headers.Get("Content-Type"), "application/json") }},
		"a Query sent as a JSON string (old hosts) is read": {raw: `{"Query":"{\"wait\":\"30s\"}"}`,
			check: func(r HTTPRequest) string { return eq(r.Query["wait"], "30s") }},
		"an absent Body is nil": {raw: `{"Method":"post"}`,
			check: func(r HTTPRequest) string { return eq(r.Body == nil && r.Method == "POST", true) }},
		"a Body sent as a JSON object is kept as JSON": {raw: `{"Body":{"revokeNow":true}}`,
			check: func(r HTTPRequest) string { return eq(string(r.Body), `{"revokeNow":true}`) }},
		"a Body string is used raw": {raw: `{"Body":"{\"a\":1}"}`,
			check: func(r HTTPRequest) string { return eq(string(r.Body), `{"a":1}`) }},
		"lower-case keys are read too": {raw: `{"url":"https://x/api/status","params":{"secret":"s"}}`,
			check: func(r HTTPRequest) string { return eq(r.URL+" "+r.Params["secret"], "https://x/api/status s") }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := DecodeHTTPRequest([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if d := tc.check(r); d != "" {
				t.Error(d)
			}
		})
	}
	for name, raw := range map[string]string{
		"Headers that are a list is refused":    `{"Headers":["a"]}`,
		"a Query that is a number is refused":   `{"Query":5}`,
		"a request that is an array is refused": `[1]`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeHTTPRequest([]byte(raw)); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestDecodeSweepTick(t *testing.T) {
	cases := map[string]struct {
		raw     string
		want    SweepTick
		wantErr bool
	}{
		"a null ScheduleStatus leaves the times zero": {raw: `{"ScheduleStatus":null,"IsPastDue":false}`},
		"IsPastDue sent as a string is read":          {raw: `{"IsPastDue":"True"}`, want: SweepTick{IsPastDue: true}},
		"DateTime.MinValue means never":               {raw: `{"ScheduleStatus":{"Last":"0001-01-01T00:00:00","Next":"2026-11-27T18:00:00Z"}}`, want: SweepTick{Next: time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC)}},
		"a Last that is prose is refused":             {raw: `{"ScheduleStatus":{"Last":"earlier"}}`, wantErr: true},
		"IsPastDue as prose is refused":               {raw: `{"IsPastDue":"maybe"}`, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeSweepTick([]byte(tc.raw))
			if (err != nil) != tc.wantErr {
				t.Fatalf("DecodeSweepTick error = %v, want error %v", err, tc.wantErr)
			}
			if d := cmpJSON(got, tc.want); d != "" && !tc.wantErr {
				t.Error(d)
			}
		})
	}
}

func TestDecodeMessageInfo(t *testing.T) {
	inv, err := DecodeInvocation([]byte(`{"Data":{"msg":"x"},"Metadata":{"DeliveryCount":"3","SequenceNumber":"\"9\"",
		"LockToken":"\"4e773554-f6b7-4ea2-b07d-4c5fd5aba741\"","SessionId":"\"pat-a\"","Label":"\"legacy\"",
		"ExpiresAtUtc":"2026-12-11T20:13:49","EnqueuedTime":"2026-11-27T21:13:49+01:00","UserProperties":{"k":"v"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	mi, err := DecodeMessageInfo(inv)
	if err != nil {
		t.Fatal(err)
	}
	want := MessageInfo{SessionID: "pat-a", LockToken: "4e773554-f6b7-4ea2-b07d-4c5fd5aba741", Subject: "legacy", DeliveryCount: 3, SequenceNumber: 9,
		EnqueuedAt: time.Date(2026, 11, 27, 20, 13, 49, 0, time.UTC), ExpiresAt: time.Date(2026, 12, 11, 20, 13, 49, 0, time.UTC),
		ApplicationProperties: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)}}
	if d := cmpJSON(mi, want); d != "" {
		t.Error(d)
	}
	for name, meta := range map[string]string{
		"a DeliveryCount that is prose names it": `{"DeliveryCount":"one"}`,
		"a negative DeliveryCount names it":      `{"DeliveryCount":"-1"}`,
		"an EnqueuedTime that is prose names it": `{"EnqueuedTime":"\"earlier\""}`,
		"a LockToken that is an object names it": `{"LockToken":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			inv, err := DecodeInvocation([]byte(`{"Data":{},"Metadata":` + meta + `}`))
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeMessageInfo(inv)
			if err == nil {
				t.Fatal("accepted")
			}
			var key string
			for k := range mustMap(t, meta) {
				key = k
			}
			if got := fieldOf(t, err); got != key {
				t.Errorf("error %q names %q, want %q", err, got, key)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]struct {
		err  error
		want Class
	}{
		"an unknown error is transient":                   {err: errors.New("boom"), want: Transient},
		"a deadline is transient":                         {err: fmt.Errorf("x: %w", context.DeadlineExceeded), want: Transient},
		"a wrapped ErrPermanent is permanent":             {err: fmt.Errorf("x: %w", ErrPermanent), want: Permanent},
		"an error with Permanent() true is permanent":     {err: fmt.Errorf("x: %w", permanentErr{"p"}), want: Permanent},
		"a decoding error is a bad request":               {err: fieldErr("d", "f", "bad"), want: BadRequest},
		"ErrNotFound is not found":                        {err: fmt.Errorf("x: %w", ErrNotFound), want: NotFound},
		"ErrConflict is a conflict":                       {err: fmt.Errorf("x: %w", ErrConflict), want: Conflict},
		"ErrBadRequest is a bad request":                  {err: ErrBadRequest, want: BadRequest},
		"an error with Permanent() false stays transient": {err: notPermanent{}, want: Transient},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

type notPermanent struct{}

func (notPermanent) Error() string   { return "retry me" }
func (notPermanent) Permanent() bool { return false }

func mustMap(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func eq[T comparable](got, want T) string {
	if got != want {
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	return ""
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
