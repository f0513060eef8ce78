package devops

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
	"github.com/patrol-dev/patrol/internal/localtrust"
)

const (
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	aliceOID   = "11111111-1111-1111-1111-111111111111"
	bobOID     = "22222222-2222-2222-2222-222222222222"
	adminOID   = "33333333-3333-3333-3333-333333333333"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

func signingKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// env is a running emulator over TLS with a manual clock and a test token signer that
// stands in for the Entra emulator.
type env struct {
	t      *testing.T
	srv    *Emulator
	url    string
	client *http.Client
	clock  *clock.Clock
	key    *rsa.PrivateKey
}

func newEnv(t *testing.T, rl RateLimit) *env {
	t.Helper()
	ca, err := tlsca.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	key := signingKey(t)
	v := authn.KeyVerifier{
		Keys:   func(string) (*rsa.PublicKey, bool) { return &key.PublicKey, true },
		Issuer: func(tid string) string { return "https://login.test/" + tid + "/v2.0" },
		Now:    clk.Now,
	}
	if rl.Limit == 0 {
		rl.Limit = -1
	}
	srv, err := New(Options{Verifier: v, Clock: clk, RateLimit: rl, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Organization{{Name: "contoso", TenantID: testTenant}, {Name: "fabrikam"}} {
		if _, err := srv.AddOrganization(o); err != nil {
			t.Fatal(err)
		}
		for _, u := range []User{
			{ObjectID: aliceOID, UPN: "alice@contoso.test", DisplayName: "Alice"},
			{ObjectID: bobOID, UPN: "bob@contoso.test"},
			{ObjectID: adminOID, UPN: "admin@contoso.test", Admin: true},
		} {
			if _, err := srv.AddUser(o.Name, u); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := localtrust.NewClient(ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, url: srv.URL(), client: client, clock: clk, key: key}
}

// token signs an access token on the emulator clock; extra claims override defaults.
func (e *env) token(extra jwt.MapClaims) string {
	now := e.clock.Now()
	c := jwt.MapClaims{"iss": "https://login.test/" + testTenant + "/v2.0", "tid": testTenant, "aud": ResourceID,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	if tid, ok := c["tid"].(string); ok {
		c["iss"] = "https://login.test/" + tid + "/v2.0"
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) userToken(oid, upn string) string {
	return e.scopedToken(oid, upn, "vso.pats vso.pats_manage")
}

// scopedToken is a user token carrying scp.
func (e *env) scopedToken(oid, upn, scp string) string {
	return e.token(jwt.MapClaims{"oid": oid, "upn": upn, "scp": scp, "idtyp": "user"})
}

// admin is the administrator's token for the token-admin API.
func (e *env) admin() string {
	return e.scopedToken(adminOID, "admin@contoso.test", "vso.tokenadministration")
}

func (e *env) alice() string { return e.userToken(aliceOID, "alice@contoso.test") }

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d response: %v", r.status, err)
	}
}

// call sends a request; auth is "Bearer x", "Basic x" or ""; Suppress is sent unless
// noSuppress.
func (e *env) call(method, path, auth string, body any, noSuppress bool) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				e.t.Fatal(err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if !noSuppress {
		req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func basic(pat string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+pat))
}

const patsPath = "/contoso/_apis/tokens/pats?api-version=7.1-preview.1"

type created struct {
	id, value string
	validTo   string
}

// create makes a PAT as alice and fails the test unless it succeeds.
func (e *env) create(name, scope string, validTo time.Time) created {
	e.t.Helper()
	r := e.call("POST", patsPath, "Bearer "+e.alice(),
		map[string]any{"displayName": name, "scope": scope, "validTo": validTo.Format(time.RFC3339), "allOrgs": false}, false)
	var res struct {
		PatToken *struct {
			AuthorizationID string  `json:"authorizationId"`
			Token           *string `json:"token"`
			ValidTo         string  `json:"validTo"`
		} `json:"patToken"`
		PatTokenError string `json:"patTokenError"`
	}
	r.decode(e.t, &res)
	if r.status != 200 || res.PatTokenError != "none" || res.PatToken == nil || res.PatToken.Token == nil {
		e.t.Fatalf("create %q: status %d, patTokenError %q", name, r.status, res.PatTokenError)
	}
	return created{id: res.PatToken.AuthorizationID, value: *res.PatToken.Token, validTo: res.PatToken.ValidTo}
}

func vssMessage(t *testing.T, r resp) string {
	t.Helper()
	var v vssError
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("status %d body is not VSS error JSON: %v", r.status, err)
	}
	if v.TypeKey == "" || v.Message == "" {
		t.Fatalf("status %d VSS error lacks typeKey/message", r.status)
	}
	return v.TypeKey + ": " + v.Message
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
