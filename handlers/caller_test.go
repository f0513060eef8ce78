package handlers

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestRequester(t *testing.T) {
	keyed := `[{"AuthenticationType":"WebJobsAuthLevel","IsAuthenticated":true,"Claims":[
		{"Type":"http://schemas.microsoft.com/2017/07/functions/claims/authlevel","Value":"Function"},
		{"Type":"http://schemas.microsoft.com/2017/07/functions/claims/keyid","Value":"oncall-alice"}]}]`
	anonymous := `[{"AuthenticationType":"WebJobsAuthLevel","IsAuthenticated":true,"Claims":[
		{"Type":"http://schemas.microsoft.com/2017/07/functions/claims/authlevel","Value":"Anonymous"}]}]`
	principal := http.Header{"X-Ms-Client-Principal-Name": {"alice@contoso.com"}, "X-Ms-Client-Principal-Id": {"6f1c2a4e-8d3b-4c55-9a10-2b7e4d9c0f13"}}
	tests := map[string]struct {
		headers    http.Header
		identities string
		easyAuth   bool
		claimed    string
		want       string
	}{
		"behind Easy Auth the principal headers name the caller and the body's claim is ignored": {
			headers: principal, identities: keyed, easyAuth: true, claimed: "ceo@contoso.com", want: "entra:alice@contoso.com (6f1c2a4e-8d3b-4c55-9a10-2b7e4d9c0f13)"},
		"without Easy Auth a principal header is the caller's own and is ignored": {
			headers: principal, identities: keyed, want: `function key "oncall-alice"`},
		"the key's name is recorded, the body's requestedBy only as a claim": {
			identities: keyed, claimed: "bob", want: `function key "oncall-alice" for "bob"`},
		"identities sent as a JSON string by an older host still name the key": {
			identities: mustQuote(keyed), want: `function key "oncall-alice"`},
		"a host that names no key still records that a key was used": {
			want: "function key"},
		"an anonymous request says so": {
			identities: anonymous, claimed: "bob", want: `anonymous for "bob"`},
		"control characters in a claim are dropped": {
			claimed: "bob\r\nforged: line", want: `function key for "bobforged: line"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := HTTPRequest{Headers: tc.headers, Identities: decodeIdentities(json.RawMessage(tc.identities))}
			if r.Headers == nil {
				r.Headers = http.Header{}
			}
			if got := Requester(r, tc.easyAuth, tc.claimed); got != tc.want {
				t.Errorf("Requester = %q, want %q", got, tc.want)
			}
		})
	}
}

func mustQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestEasyAuthEnabled(t *testing.T) {
	for v, want := range map[string]bool{"True": true, "true": true, "": false, "False": false, "yes": false} {
		if got := EasyAuthEnabled(func(string) string { return v }); got != want {
			t.Errorf("WEBSITE_AUTH_ENABLED=%q: %v, want %v", v, got, want)
		}
	}
}

func FuzzDecodeIdentities(f *testing.F) {
	f.Add([]byte(`[{"Claims":[{"Type":"http://schemas.microsoft.com/2017/07/functions/claims/keyid","Value":"k"}]}]`))
	f.Add([]byte(`"[{\"Claims\":[]}]"`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := HTTPRequest{Headers: http.Header{}, Identities: decodeIdentities(raw)}
		got := Requester(r, false, "")
		if len(got) > 300 {
			t.Errorf("requester %d bytes long", len(got))
		}
	})
}
