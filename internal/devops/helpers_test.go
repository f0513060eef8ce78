package devops

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	entraemu "github.com/patrol-dev/patrol/internal/local/emulator/entra"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
	"github.com/patrol-dev/patrol/internal/localtrust"
	"github.com/patrol-dev/patrol/internal/secret"
)

const (
	tenantID   = "8e4a6f1d-2b7c-4d3e-9f10-a1b2c3d4e5f6"
	publicApp  = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
	svcOID     = "aaaaaaaa-0000-4000-8000-000000000001"
	adminOID   = "aaaaaaaa-0000-4000-8000-000000000002"
	svcUPN     = "svc-build@contoso.localhost"
	adminUPN   = "pca@contoso.localhost"
	svcPass    = "correct horse battery staple"
	devopsAud  = "499b84ac-1321-427f-aa17-267ca6975798/.default"
	orgName    = "contoso"
	otherOrg   = "fabrikam"
	ninetyDays = 90 * 24 * time.Hour
)

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// stack is the Azure DevOps emulator with the Entra emulator as its token issuer, both
// over TLS from one CA, on one manual clock.
type stack struct {
	t      *testing.T
	devops *devopsemu.Emulator
	entra  *entraemu.Emulator
	clock  *clock.Clock
	http   *http.Client
	url    string

	mu     sync.Mutex
	issued []string // every PAT value issued, to search output for
}

func newStack(t *testing.T, rl devopsemu.RateLimit) *stack {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	ca, err := tlsca.New()
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	en, err := entraemu.New(entraemu.Options{CA: ca, Clock: clk, SigningKey: rsaKey, Directory: entraemu.Directory{
		TenantID: tenantID, Domain: "contoso.localhost",
		AppRegistrations: []entraemu.AppRegistration{{ClientID: publicApp, PublicClient: true, DisplayName: "patrol",
			Consent: entraemu.Consent{devopsemu.ResourceID: {devopsemu.ScopePATs, devopsemu.ScopePATsManage, devopsemu.ScopeTokenAdminister, devopsemu.ScopeGraph}}}},
		Users: []entraemu.User{{UPN: svcUPN, Password: svcPass, ObjectID: svcOID}, {UPN: adminUPN, Password: svcPass, ObjectID: adminOID}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := en.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close() })
	if rl.Limit == 0 {
		rl.Limit = -1
	}
	cfg, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	// Pages of one user: finding a person walks continuation tokens.
	srv, err := devopsemu.New(devopsemu.Options{Verifier: en.Verifier(), Clock: clk, RateLimit: rl, TLS: cfg, GraphPageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{orgName, otherOrg} {
		if _, err := srv.AddOrganization(devopsemu.Organization{Name: name, TenantID: tenantID}); err != nil {
			t.Fatal(err)
		}
		srv.AddUser(name, devopsemu.User{ObjectID: svcOID, UPN: svcUPN, DisplayName: "Build service account"})
		srv.AddUser(name, devopsemu.User{ObjectID: adminOID, UPN: adminUPN, Admin: true})
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hc, err := localtrust.NewClient(ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	hc.Transport = guard{hc.Transport}
	return &stack{t: t, devops: srv, entra: en, clock: clk, http: hc, url: srv.URL()}
}

// guard fails loudly if anything tries to leave the machine.
type guard struct{ next http.RoundTripper }

func (g guard) RoundTrip(r *http.Request) (*http.Response, error) {
	if h := r.URL.Hostname(); h != "localhost" && h != "127.0.0.1" && !strings.HasSuffix(h, ".localhost") {
		panic("test tried to reach the internet: " + r.URL.Host)
	}
	return g.next.RoundTrip(r)
}

// tokenFor signs in upn by ROPC at the Entra emulator, the way a service account with a
// stored password does.
func (s *stack) tokenFor(upn string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		form := url.Values{"grant_type": {"password"}, "client_id": {publicApp}, "username": {upn},
			"password": {svcPass}, "scope": {devopsAud}}
		req, _ := http.NewRequestWithContext(ctx, "POST", s.entra.Authority()+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := s.http.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
			Error       string `json:"error"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.AccessToken == "" {
			return "", fmt.Errorf("sign-in of %s: HTTP %d %s %v", upn, res.StatusCode, body.Error, err)
		}
		return body.AccessToken, nil
	}
}

// client builds a Client for the service account against the emulator.
func (s *stack) client(upn string) *Client {
	s.t.Helper()
	c, err := NewClient(Options{BaseURL: s.url, HTTPClient: s.http, Token: s.tokenFor(upn)})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// create makes a PAT and remembers its value for the no-leak checks.
func (s *stack) create(c *Client, org, name string) PAT {
	s.t.Helper()
	p, err := c.CreatePAT(context.Background(), org, CreateRequest{DisplayName: name, Scope: "vso.code", ValidTo: s.clock.Now().Add(ninetyDays)})
	if err != nil {
		s.t.Fatalf("create %q: %v", name, err)
	}
	s.remember(p.Token)
	return p
}

func (s *stack) remember(tok secret.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !tok.IsZero() {
		s.issued = append(s.issued, tok.Reveal())
	}
}

// noLeak fails if text contains any PAT value issued so far.
func (s *stack) noLeak(what, text string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.issued {
		if strings.Contains(text, v) {
			s.t.Fatalf("%s contains a PAT value", what)
		}
	}
}
