package entra

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
	"github.com/patrol-dev/patrol/internal/localtrust"
)

// Fixture identities. GUIDs are fixed so failures read the same on every run.
const (
	tenantID       = "7f1c2a3e-5b6d-4e8f-9a0b-1c2d3e4f5a6b"
	confidentialID = "11111111-1111-4111-8111-111111111111"
	confSecret     = "emulator-test-secret"
	publicID       = "22222222-2222-4222-8222-222222222222"
	systemMIID     = "33333333-3333-4333-8333-333333333333"
	userMIID       = "44444444-4444-4444-8444-444444444444"
	userMIResource = "/subscriptions/0/resourceGroups/patrol/providers/Microsoft.ManagedIdentity/userAssignedIdentities/patrol"
	svcUPN         = "svc@contoso.localhost"
	svcPassword    = "correct horse battery staple"
	mfaUPN         = "mfa@contoso.localhost"
	disabledUPN    = "disabled@contoso.localhost"
	adoResource    = "499b84ac-1321-427f-aa17-267ca6975798"
	adoScope       = adoResource + "/.default"
	vaultScope     = "https://vault.localhost:8443/.default"
)

func fixtureDirectory() Directory {
	return Directory{
		TenantID: tenantID,
		Domain:   "contoso.localhost",
		AppRegistrations: []AppRegistration{
			{ClientID: confidentialID, Secret: confSecret, DisplayName: "patrol-ci"},
			{ClientID: publicID, PublicClient: true, DisplayName: "patrol", RedirectURIs: []string{"http://localhost"}},
			{ClientID: systemMIID, ManagedIdentity: true, DisplayName: "patrol-func"},
			{ClientID: userMIID, ManagedIdentity: true, ResourceID: userMIResource, DisplayName: "patrol-uami"},
		},
		Users: []User{
			{UPN: svcUPN, Password: svcPassword, DisplayName: "Service Account"},
			{UPN: mfaUPN, Password: svcPassword, RequiresMFA: true},
			{UPN: disabledUPN, Password: svcPassword, Disabled: true},
		},
		SystemAssignedIdentity: systemMIID,
	}
}

var (
	sharedOnce sync.Once
	sharedKey  *rsa.PrivateKey
	sharedCA   *tlsca.CA
	sharedErr  error
)

// shared returns one signing key and CA for the whole test binary: generating them per
// test would dominate the run time on a busy machine.
func shared(t testing.TB) (*rsa.PrivateKey, *tlsca.CA) {
	t.Helper()
	sharedOnce.Do(func() {
		if sharedKey, sharedErr = rsa.GenerateKey(rand.Reader, 2048); sharedErr != nil {
			return
		}
		sharedCA, sharedErr = tlsca.New()
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedKey, sharedCA
}

// env is a started emulator plus clients that can only reach loopback.
type env struct {
	em    *Emulator
	clock *clock.Clock
	http  *http.Client
	guard *guard
}

func start(t *testing.T) *env {
	t.Helper()
	key, ca := shared(t)
	// A manual clock at wall time: MSAL computes expiry from wall time, the emulator from
	// its clock, and the two must agree until a test advances the emulator.
	clk := clock.NewManual(time.Now())
	em, err := New(Options{Directory: fixtureDirectory(), CA: ca, Clock: clk, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	tr, err := localtrust.NewTransport(ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	g := &guard{t: t, base: tr}
	return &env{em: em, clock: clk, http: &http.Client{Transport: g}, guard: g}
}

// guard fails the test loudly if any request would leave the machine.
type guard struct {
	t        *testing.T
	base     http.RoundTripper
	expectIt bool // the test expects an outside call and checks blocked itself

	mu      sync.Mutex
	blocked []string
}

func (g *guard) RoundTrip(r *http.Request) (*http.Response, error) {
	h := r.URL.Hostname()
	if h == "localhost" || h == "127.0.0.1" || h == "::1" || strings.HasSuffix(h, ".localhost") {
		return g.base.RoundTrip(r)
	}
	g.mu.Lock()
	g.blocked = append(g.blocked, h)
	g.mu.Unlock()
	if !g.expectIt {
		g.t.Errorf("a client tried to reach %s: tests must not leave the machine", h)
	}
	return nil, fmt.Errorf("guard: %s is outside the local stack", h)
}

func (g *guard) blockedHosts() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.blocked...)
}

// memCache is MSAL's ExportReplace over one in-memory blob (how patrol persists a
// service account's cache in Key Vault).
type memCache struct {
	mu   sync.Mutex
	blob []byte
}

func (m *memCache) Replace(_ context.Context, c cache.Unmarshaler, _ cache.ReplaceHints) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blob == nil {
		return nil
	}
	return c.Unmarshal(m.blob)
}

func (m *memCache) Export(_ context.Context, c cache.Marshaler, _ cache.ExportHints) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.blob = b
	m.mu.Unlock()
	return nil
}

func (m *memCache) snapshot() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.blob...)
}

func (e *env) publicClient(t *testing.T, clientID, authority string, c cache.ExportReplace) public.Client {
	t.Helper()
	opts := []public.Option{public.WithAuthority(authority), public.WithHTTPClient(e.http), public.WithInstanceDiscovery(false)}
	if c != nil {
		opts = append(opts, public.WithCache(c))
	}
	pc, err := public.New(clientID, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

func (e *env) clientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.em.AuthorityHost()},
		Transport: e.http,
	}
}

func (e *env) secretCredential(t *testing.T, tenant, clientID, secret string) *azidentity.ClientSecretCredential {
	t.Helper()
	opts := e.clientOptions()
	opts.Retry.MaxRetries = -1 // error paths must surface at once
	cred, err := azidentity.NewClientSecretCredential(tenant, clientID, secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// wireError is the AADSTS error a client surfaced, read from the HTTP response it carries
// (MSAL's CallErr or azidentity's AuthenticationFailedError), not from message text.
type wireError struct {
	Status int
	Body   aadErrorBody
}

func aadFrom(t *testing.T, err error) wireError {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got success")
	}
	var resp *http.Response
	var ce msalerrors.CallErr
	var afe *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &ce):
		resp = ce.Resp
	case errors.As(err, &afe):
		resp = afe.RawResponse
	}
	if resp == nil {
		t.Fatalf("error carries no HTTP response: %v", err)
	}
	b, rerr := runtime.Payload(resp)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if len(b) == 0 && ce.Err != nil {
		// MSAL's device-code poller reads the body to look for authorization_pending and
		// does not put it back; the body survives only inside CallErr's message, after
		// the first line ("http call(…) error: reply status code was 400:\n<body>").
		_, body, _ := strings.Cut(ce.Err.Error(), "\n")
		b = []byte(body)
	}
	var w wireError
	w.Status = resp.StatusCode
	if jerr := json.Unmarshal(b, &w.Body); jerr != nil {
		t.Fatalf("error body is not Entra's JSON (%v): %s", jerr, b)
	}
	return w
}

// code is the first AADSTS number, checked against the description's prefix so both
// halves of the shape stay consistent.
func (w wireError) code(t *testing.T) int {
	t.Helper()
	if len(w.Body.ErrorCodes) != 1 {
		t.Fatalf("error_codes = %v, want exactly one", w.Body.ErrorCodes)
	}
	c := w.Body.ErrorCodes[0]
	if prefix := fmt.Sprintf("AADSTS%d: ", c); !strings.HasPrefix(w.Body.ErrorDescription, prefix) {
		t.Errorf("error_description %q does not start with %q", w.Body.ErrorDescription, prefix)
	}
	return c
}

// readAll drains a response body for plain-HTTP tests.
func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
