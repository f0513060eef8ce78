package keyvault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

func TestChallengeIsWhatAzsecretsNeeds(t *testing.T) {
	env := newEnv(t, nil)
	port := env.kv.Port()
	// The SDK's first request: no token, body stripped, no Content-Type.
	status, h, body := env.raw("PUT", env.kv.VaultURL("alpha")+"/secrets/s?api-version=2026-04-01", "", "")
	if status != 401 {
		t.Fatalf("unauthenticated PUT without body answered %d, want 401 (auth is checked before the body)", status)
	}
	want := fmt.Sprintf(`Bearer authorization="%s/%s", resource="https://vault.localhost:%d"`, testAuthority, testTenant, port)
	if got := h.Get("WWW-Authenticate"); got != want {
		t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
	}
	if !bytes.Contains(body, []byte(`"code":"Unauthorized"`)) || !bytes.Contains(body, []byte("AKV10000")) {
		t.Fatalf("401 body = %s", body)
	}
	for _, hdr := range []string{"x-ms-request-id", "x-ms-keyvault-service-version", "x-ms-keyvault-region", "Strict-Transport-Security"} {
		if h.Get(hdr) == "" {
			t.Errorf("response lacks %s", hdr)
		}
	}
}

func TestRawRequestsAnsweredAsAzureDoes(t *testing.T) {
	env := newEnv(t, nil)
	if _, err := env.kv.Put("alpha", "s", NewSecret{Value: "v"}); err != nil {
		t.Fatal(err)
	}
	base := env.kv.VaultURL("alpha")
	good := env.signer.appToken(officerOID, env.kv.Resource())
	tests := []struct {
		name         string
		method, path string
		token        string
		body         string
		status       int
		contains     string
	}{
		{name: "a request without api-version is a bad parameter", method: "GET", path: "/secrets/s/", token: good, status: 400, contains: "api-version"},
		{name: "an unrecognised api-version is a bad parameter", method: "GET", path: "/secrets/s/?api-version=banana", token: good, status: 400, contains: "not recognized"},
		{name: "api-version 7.5 is served", method: "GET", path: "/secrets/s/?api-version=7.5", token: good, status: 200},
		{name: "api-version 2025-07-01 is served", method: "GET", path: "/secrets/s/?api-version=2025-07-01", token: good, status: 200},
		{name: "the latest version is also reachable without the trailing slash", method: "GET", path: "/secrets/s?api-version=7.6", token: good, status: 200},
		{name: "a token for vault.azure.net is accepted", method: "GET", path: "/secrets/s/?api-version=7.6", token: env.signer.appToken(officerOID, "https://vault.azure.net"), status: 200},
		{name: "a token for another audience is refused with AKV10022", method: "GET", path: "/secrets/s/?api-version=7.6",
			token: env.signer.appToken(officerOID, "https://management.azure.com"), status: 401, contains: "AKV10022"},
		{name: "a token signed by someone else is refused", method: "GET", path: "/secrets/s/?api-version=7.6",
			token: forgedToken(t), status: 401, contains: "not valid"},
		{name: "a set body that is not JSON is a bad parameter", method: "PUT", path: "/secrets/s?api-version=7.6", token: good, body: "{", status: 400, contains: "JSON"},
		{name: "a set body without value is a bad parameter", method: "PUT", path: "/secrets/s?api-version=7.6", token: good, body: `{"contentType":"x"}`, status: 400, contains: "value"},
		{name: "a fractional exp is a bad parameter", method: "PUT", path: "/secrets/s?api-version=7.6", token: good, body: `{"value":"x","attributes":{"exp":1.5}}`, status: 400, contains: "exp"},
		{name: "an unknown path is not found", method: "GET", path: "/keys?api-version=7.6", token: good, status: 404},
		{name: "a forged skiptoken is a bad parameter", method: "GET", path: "/secrets?api-version=7.6&$skiptoken=zzz", token: good, status: 400, contains: "skiptoken"},
		{name: "maxresults above 25 is a bad parameter", method: "GET", path: "/secrets?api-version=7.6&maxresults=26", token: good, status: 400, contains: "maxresults"},
		{name: "purging a live secret is not found", method: "DELETE", path: "/deletedsecrets/s?api-version=7.6", token: good, status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := env.raw(tc.method, base+tc.path, tc.token, tc.body)
			if status != tc.status || !bytes.Contains(body, []byte(tc.contains)) {
				t.Fatalf("got %d %s, want %d containing %q", status, body, tc.status, tc.contains)
			}
		})
	}
}

func forgedToken(t *testing.T) string {
	t.Helper()
	forger := &tokenSigner{key: signingKey(t, 1), clk: clock.NewManual(testStart)}
	return forger.appToken(officerOID, "https://vault.azure.net")
}

func TestTimesAreIntegersAndNextLinkIsAbsolute(t *testing.T) {
	env := newEnv(t, nil)
	for i := range 3 {
		if _, err := env.kv.Put("alpha", fmt.Sprintf("s%d", i), NewSecret{Value: "v"}); err != nil {
			t.Fatal(err)
		}
	}
	tok := env.signer.appToken(officerOID, env.kv.Resource())
	status, _, body := env.raw("GET", env.kv.VaultURL("alpha")+"/secrets?api-version=7.6&maxresults=2", tok, "")
	if status != 200 {
		t.Fatalf("list answered %d: %s", status, body)
	}
	var loose struct {
		Value []struct {
			Attributes map[string]any `json:"attributes"`
		} `json:"value"`
		NextLink string `json:"nextLink"`
	}
	if err := json.Unmarshal(body, &loose); err != nil {
		t.Fatal(err)
	}
	for _, item := range loose.Value {
		for _, k := range []string{"created", "updated"} {
			raw, _ := json.Marshal(item.Attributes[k])
			if strings.ContainsAny(string(raw), ".eE") || len(raw) < 10 {
				t.Fatalf("attribute %s = %s, want integer Unix seconds", k, raw)
			}
		}
	}
	u, err := url.Parse(loose.NextLink)
	if err != nil || u.Scheme != "https" || u.Host != fmt.Sprintf("alpha.vault.localhost:%d", env.kv.Port()) || u.Path != "/secrets" {
		t.Fatalf("nextLink %q is not absolute on the request host with its port", loose.NextLink)
	}
	if q := u.Query(); q.Get("api-version") != "7.6" || q.Get("$skiptoken") == "" || q.Get("maxresults") != "2" {
		t.Fatalf("nextLink %q lacks api-version, $skiptoken or maxresults", loose.NextLink)
	}
	status, _, body = env.raw("GET", loose.NextLink, tok, "")
	if status != 200 || !bytes.Contains(body, []byte("/secrets/s2")) || !bytes.Contains(body, []byte(`"nextLink":null`)) {
		t.Fatalf("second page: %d %s", status, body)
	}
}

func TestJournalNamesCallersWithoutTokens(t *testing.T) {
	env := newEnv(t, nil)
	tok := env.signer.appToken(officerOID, env.kv.Resource())
	env.raw("GET", env.kv.VaultURL("alpha")+"/secrets?api-version=7.6", tok, "")
	env.raw("GET", env.kv.VaultURL("alpha")+"/secrets?api-version=7.6", "", "")
	entries := env.kv.Journal().Entries()
	if len(entries) != 2 || entries[0].Status != 200 || entries[0].Operation != OpListSecrets || entries[0].Principal == "" || entries[1].Status != 401 {
		t.Fatalf("journal = %+v", entries)
	}
	all, _ := json.Marshal(entries)
	if bytes.Contains(all, []byte(tok[:20])) {
		t.Fatal("the journal holds token material")
	}
}

func TestAPIVersionForms(t *testing.T) {
	tests := map[string]struct {
		in   string
		want bool
	}{
		"a dotted version is accepted":            {"7.6", true},
		"a dated version is accepted":             {"2026-04-01", true},
		"a numbered preview is accepted":          {"7.6-preview.1", true},
		"a dated preview is accepted":             {"2025-07-01-preview", true},
		"an empty version is refused":             {"", false},
		"a word is refused":                       {"latest", false},
		"a date with a two-digit year is refused": {"26-04-01", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := validAPIVersion(tc.in); got != tc.want {
				t.Fatalf("validAPIVersion(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestVaultHostSplitting(t *testing.T) {
	tests := map[string]struct {
		host, vault, resource string
	}{
		"a vault host keeps its port in the resource":  {"myvault.vault.localhost:8443", "myvault", "https://vault.localhost:8443"},
		"a vault name is lower-cased":                  {"MyVault.vault.localhost:8443", "myvault", "https://vault.localhost:8443"},
		"a host without port has a port-less resource": {"myvault.vault.azure.net", "myvault", "https://vault.azure.net"},
		"localhost has no vault label":                 {"localhost:8443", "", "https://vault.localhost:8443"},
		"an IP literal has no vault label":             {"127.0.0.1:8443", "", "https://vault.localhost:8443"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			vault, _, _ := splitVaultHost(tc.host)
			if vault != tc.vault || resourceFor(tc.host) != tc.resource {
				t.Fatalf("splitVaultHost(%q) = %q, resource %q; want %q, %q", tc.host, vault, resourceFor(tc.host), tc.vault, tc.resource)
			}
		})
	}
}
