package keyvault

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

func samePtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// canonicalSetBody re-encodes a decoded request the way azsecrets would send it.
func canonicalSetBody(r setRequest) []byte {
	body := map[string]any{"value": r.value, "attributes": map[string]any{}}
	if r.contentType != nil {
		body["contentType"] = *r.contentType
	}
	if r.tags != nil {
		body["tags"] = r.tags
	}
	a := body["attributes"].(map[string]any)
	if r.attrs.Enabled != nil {
		a["enabled"] = *r.attrs.Enabled
	}
	if r.attrs.NotBefore != nil {
		a["nbf"] = *r.attrs.NotBefore
	}
	if r.attrs.Expires != nil {
		a["exp"] = *r.attrs.Expires
	}
	b, _ := json.Marshal(body)
	return b
}

func FuzzDecodeSetBody(f *testing.F) {
	for _, seed := range []string{
		`{"attributes":{"exp":1795977876},"contentType":"text/plain","tags":{"owner":"svc1"},"value":"hello"}`,
		`{"value":""}`,
		`{"value":"x","attributes":{"nbf":1.5}}`,
		`{"value":"x","attributes":{"exp":"1795977876"}}`,
		`{"value":"x"} trailing`,
		``,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeSetBody(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		again, err := decodeSetBody(canonicalSetBody(req))
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if again.value != req.value || !samePtr(again.contentType, req.contentType) || !maps.Equal(again.tags, req.tags) ||
			!samePtr(again.attrs.Enabled, req.attrs.Enabled) || !samePtr(again.attrs.NotBefore, req.attrs.NotBefore) || !samePtr(again.attrs.Expires, req.attrs.Expires) {
			t.Fatalf("round trip changed the request: %+v vs %+v", req, again)
		}
	})
}

func FuzzDecodeUpdateBody(f *testing.F) {
	for _, seed := range []string{
		`{"contentType":"text/plain","attributes":{"enabled":false,"exp":1795977876},"tags":{"a":"b"}}`,
		`{"tags":null}`,
		`{"tags":{}}`,
		`{"tags":{"a":1}}`,
		`{}`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeUpdateBody(body)
		if err != nil {
			return
		}
		if !req.tagsSet && req.tags != nil {
			t.Fatal("tags decoded but not marked as set")
		}
		if req.tagsSet {
			if err := checkTags(req.tags); err != nil && err.status != 400 {
				t.Fatalf("tag check answered %d", err.status)
			}
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	for _, seed := range []struct{ method, path string }{
		{"PUT", "/secrets/pat-svc1"}, {"GET", "/secrets/pat-svc1/"}, {"GET", "/secrets/a/0123456789abcdef0123456789abcdef"},
		{"GET", "/secrets"}, {"GET", "/secrets/a/versions"}, {"POST", "/deletedsecrets/a/recover"}, {"DELETE", "/deletedsecrets/a"},
		{"POST", "/secrets/restore"}, {"GET", "//secrets"}, {"PATCH", "/secrets/a/b/c"}, {"GET", "/secrets/%2F"},
	} {
		f.Add(seed.method, seed.path)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		rt, err := parseRoute(method, path)
		if err != nil {
			if err.status != 404 && err.status != 405 {
				t.Fatalf("route error status %d", err.status)
			}
			return
		}
		if _, ok := actions[rt.op]; !ok {
			t.Fatalf("route %+v has an operation without an RBAC action", rt)
		}
		if strings.Contains(rt.name, "/") || strings.Contains(rt.version, "/") {
			t.Fatalf("route %+v has a slash inside a segment", rt)
		}
		needsName := rt.op != OpListSecrets && rt.op != OpListDeletedSecrets && rt.op != OpRestoreSecret
		if needsName != (rt.name != "") {
			t.Fatalf("route %+v: name presence does not match the operation", rt)
		}
	})
}

func FuzzSkipToken(f *testing.F) {
	f.Add("eyJuIjoic2VjcmV0LTI0In0", "secret-24", uint64(0))
	f.Add("eyJzIjoyNX0", "", uint64(25))
	f.Add("%%%", "a", uint64(1))
	f.Add("", "", uint64(0))
	f.Fuzz(func(t *testing.T, raw, name string, seq uint64) {
		if tok, err := decodeSkipToken(raw); err == nil && raw != "" {
			again, err := decodeSkipToken(encodeSkipToken(tok))
			if err != nil || again != tok {
				t.Fatalf("re-encoded token %+v decodes to %+v, %v", tok, again, err)
			}
		}
		tok := skipToken{Name: name, Seq: seq}
		if name == "" && seq == 0 {
			return
		}
		got, err := decodeSkipToken(encodeSkipToken(tok))
		if err != nil {
			t.Fatalf("our own token %+v does not decode: %v", tok, err)
		}
		// Names in tokens are secret names (ASCII); other strings need only survive as UTF-8.
		if got.Seq != tok.Seq || (utf8.ValidString(tok.Name) && got.Name != tok.Name) {
			t.Fatalf("token %+v decodes to %+v", tok, got)
		}
	})
}

func FuzzDecodeRestoreBody(f *testing.F) {
	f.Add([]byte(`{"value":"aGVsbG8"}`))
	f.Add([]byte(`{"value":"aGVsbG8="}`))
	f.Add([]byte(`{"value":"!!"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		blob, err := decodeRestoreBody(body)
		if err == nil && len(blob) == 0 {
			t.Fatal("an accepted restore body with an empty blob")
		}
	})
}
