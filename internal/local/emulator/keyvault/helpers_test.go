package keyvault

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/golang-jwt/jwt/v5"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
	"github.com/patrol-dev/patrol/internal/localtrust"
)

var testStart = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const (
	testTenant    = "11111111-2222-3333-4444-555555555555"
	testAuthority = "https://localhost:9443" // never dialled: tokens come from testCredential
	officerOID    = "00000000-0000-0000-0000-0000000000a1"
	userOID       = "00000000-0000-0000-0000-0000000000b2"
	readerOID     = "00000000-0000-0000-0000-0000000000c3"
	strangerOID   = "00000000-0000-0000-0000-0000000000d4"
)

// tokenSigner stands in for the Entra emulator's signing key in tests that do not
// need the whole token endpoint.
type tokenSigner struct {
	key *rsa.PrivateKey
	clk *clock.Clock
}

func (s *tokenSigner) issuer(tenant string) string {
	return "https://localhost:9443/" + tenant + "/v2.0"
}

func (s *tokenSigner) sign(claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "test"
	raw, err := tok.SignedString(s.key)
	if err != nil {
		panic(err) // an RSA key we generated always signs
	}
	return raw
}

func (s *tokenSigner) verifier() authn.Verifier {
	return authn.KeyVerifier{
		Keys: func(kid string) (*rsa.PublicKey, bool) {
			if kid != "test" {
				return nil, false
			}
			return &s.key.PublicKey, true
		},
		Issuer: s.issuer,
		Now:    s.clk.Now,
	}
}

// appToken signs an app-only token for oid with the given audience, valid for an hour
// of emulator time.
func (s *tokenSigner) appToken(oid, aud string) string {
	now := s.clk.Now()
	return s.sign(jwt.MapClaims{
		"aud": aud, "iss": s.issuer(testTenant), "tid": testTenant, "oid": oid, "appid": "app-" + oid[len(oid)-2:],
		"idtyp": "app", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
}

// testCredential is an azcore.TokenCredential signing tokens for one principal. It
// checks what azsecrets asks for after the challenge: the tenant and a scope of
// <resource>/.default.
type testCredential struct {
	t      testing.TB
	s      *tokenSigner
	oid    string
	calls  atomic.Int32
	claims atomic.Int32 // requests carrying CAE claims
}

func (c *testCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	if o.Claims != "" {
		c.claims.Add(1)
	}
	if o.TenantID != testTenant {
		c.t.Errorf("GetToken tenant = %q, want %q from the challenge", o.TenantID, testTenant)
	}
	if len(o.Scopes) != 1 || !strings.HasSuffix(o.Scopes[0], "/.default") {
		return azcore.AccessToken{}, fmt.Errorf("unexpected scopes %v", o.Scopes)
	}
	aud := strings.TrimSuffix(o.Scopes[0], "/.default")
	return azcore.AccessToken{Token: c.s.appToken(c.oid, aud), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

var (
	keysOnce sync.Once
	keys     [2]*rsa.PrivateKey
	keysErr  error
)

// signingKey returns one of two RSA keys generated once per test binary (key
// generation dominates test time otherwise); key 1 plays a forger.
func signingKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	keysOnce.Do(func() {
		for j := range keys {
			if keys[j], keysErr = rsa.GenerateKey(rand.Reader, 2048); keysErr != nil {
				return
			}
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys[i]
}

type testEnv struct {
	t      testing.TB
	clk    *clock.Clock
	kv     *Emulator
	hc     *http.Client
	signer *tokenSigner
}

// newEnv starts an emulator over TLS on loopback with vaults "alpha" and "beta", the
// officer granted Secrets Officer on both, the user Secrets User and the reader Key
// Vault Reader on alpha.
func newEnv(t testing.TB, mutate func(*Options)) *testEnv {
	t.Helper()
	clk := clock.NewManual(testStart)
	signer := &tokenSigner{key: signingKey(t, 0), clk: clk}
	ca, err := tlsca.New()
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Verifier: signer.verifier(), Authority: testAuthority, TenantID: testTenant,
		Vaults: []string{"alpha", "beta"}, Clock: clk, TLS: tlsConf}
	if mutate != nil {
		mutate(&opts)
	}
	kv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	for _, g := range []struct {
		vault, oid string
		role       Role
	}{{AllVaults, officerOID, RoleSecretsOfficer}, {"alpha", userOID, RoleSecretsUser}, {"alpha", readerOID, RoleReader}} {
		if err := kv.Grant(g.vault, g.oid, g.role); err != nil {
			t.Fatal(err)
		}
	}
	return &testEnv{t: t, clk: clk, kv: kv, hc: offlineClient(t, ca.CertPEM()), signer: signer}
}

// offlineClient is localtrust's client with a dialer that refuses anything but
// loopback, so a test that would reach the internet fails loudly instead.
func offlineClient(t testing.TB, caPEM []byte) *http.Client {
	t.Helper()
	tr, err := localtrust.NewTransport(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(localtrust.Loopback(addr))
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("test tried to reach %s, outside loopback", addr)
			return nil, fmt.Errorf("offline test: refusing to dial %s", addr)
		}
		return dial(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (e *testEnv) cred(oid string) *testCredential {
	return &testCredential{t: e.t, s: e.signer, oid: oid}
}

// client is an azsecrets client for vault acting as oid. Retries are off unless
// retry is given, so error paths answer at once.
func (e *testEnv) client(vault string, cred azcore.TokenCredential, retry *policy.RetryOptions) *azsecrets.Client {
	e.t.Helper()
	opts := &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: e.hc, Retry: policy.RetryOptions{MaxRetries: -1}}}
	if retry != nil {
		opts.Retry = *retry
	}
	c, err := azsecrets.NewClient(e.kv.VaultURL(vault), cred, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// raw sends a request with an optional bearer token and returns status, headers and body.
func (e *testEnv) raw(method, url, token, body string) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// respErr unpacks an azcore.ResponseError: status, ErrorCode and the innererror code.
func respErr(t *testing.T, err error) (int, string, string, string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an *azcore.ResponseError", err)
	}
	b, rerr := io.ReadAll(re.RawResponse.Body)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var body wireError
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("error body %s is not Key Vault's error shape: %v", b, err)
	}
	inner := ""
	if body.Error.InnerError != nil {
		inner = body.Error.InnerError.Code
	}
	return re.StatusCode, re.ErrorCode, inner, body.Error.Message
}

func ptr[T any](v T) *T { return &v }
