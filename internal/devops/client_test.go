package devops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

func TestCreateVerifyRevoke(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	var logs bytes.Buffer
	c := s.client(svcUPN)
	c.log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()

	want := s.clock.Now().Add(ninetyDays)
	p := s.create(c, orgName, "patrol-op1-build")
	if p.AuthorizationID == "" || len(p.Token.Reveal()) != 84 || !p.ValidTo.Equal(want) || len(p.TargetAccounts) != 1 {
		t.Fatalf("created PAT %+v", p)
	}
	u, err := c.VerifyPAT(ctx, orgName, p.Token)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	self, err := c.Whoami(ctx, orgName)
	if err != nil {
		t.Fatalf("who am I: %v", err)
	}
	if u.ID != self.ID || u.ID == svcOID || u.DisplayName != "Build service account" || u.SubjectDescriptor == "" {
		t.Errorf("verified as %+v; the service account's token is %+v: want the same Azure DevOps identity, not the Entra object id", u, self)
	}
	if _, err := c.VerifyPAT(ctx, otherOrg, p.Token); !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrPermanent) {
		t.Errorf("PAT of %s verified at %s: %v", orgName, otherOrg, err)
	}
	got, err := c.GetPAT(ctx, orgName, p.AuthorizationID)
	if err != nil || got.DisplayName != p.DisplayName || !got.Token.IsZero() {
		t.Errorf("get: %+v, %v", got, err)
	}

	if err := c.RevokePAT(ctx, orgName, p.AuthorizationID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if s.devops.IsActive(p.AuthorizationID) {
		t.Fatal("PAT still active after revoke")
	}
	_, err = c.VerifyPAT(ctx, orgName, p.Token)
	if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrPermanent) {
		t.Fatalf("verify revoked PAT: %v, want ErrUnauthorized", err)
	}
	s.noLeak("verify error", err.Error())
	if err := c.RevokePAT(ctx, orgName, "4ab5764f-4193-4f1d-b995-64144880b7d7"); err != nil {
		t.Errorf("revoking an unknown PAT: %v, want success", err)
	}
	if _, err := c.GetPAT(ctx, orgName, "4ab5764f-4193-4f1d-b995-64144880b7d7"); !errors.Is(err, rotation.ErrNotFound) {
		t.Errorf("get unknown: %v, want rotation.ErrNotFound", err)
	}
	s.noLeak("logs", logs.String())
	if !strings.Contains(logs.String(), p.AuthorizationID) {
		t.Error("logs do not name the PAT by authorization id")
	}
}

func TestVerifyPATAfterExpiry(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	c := s.client(svcUPN)
	p, err := c.CreatePAT(context.Background(), orgName, CreateRequest{DisplayName: "short", Scope: "vso.code", ValidTo: s.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	s.remember(p.Token)
	s.clock.Advance(2 * time.Hour)
	_, err = c.VerifyPAT(context.Background(), orgName, p.Token)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("expired PAT: %v", err)
	}
	s.noLeak("error", err.Error())
}

func TestPolicyViolationsArePermanent(t *testing.T) {
	cases := map[string]struct {
		policies devopsemu.Policies
		scope    string
		wantCode string
	}{
		"a full-scope PAT under the no-full-scope policy":   {devopsemu.Policies{NoFullScope: true}, "app_token", "fullScopePatPolicyViolation"},
		"a service account outside the creation allow-list": {devopsemu.Policies{RestrictCreation: true, AllowList: []string{adminUPN}}, "vso.code", "accessDenied"},
		"an unknown scope": {devopsemu.Policies{}, "repo", "invalidScope"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newStack(t, devopsemu.RateLimit{})
			s.devops.SetPolicies(orgName, tc.policies)
			c := s.client(svcUPN)
			_, err := c.CreatePAT(context.Background(), orgName, CreateRequest{DisplayName: "p", Scope: tc.scope, ValidTo: s.clock.Now().Add(ninetyDays)})
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.wantCode || !e.Permanent() || !errors.Is(err, ErrPermanent) || errors.Is(err, ErrTransient) {
				t.Fatalf("err = %v, want permanent %s", err, tc.wantCode)
			}
			if n := s.devops.Journal().Count(devopsemu.OpCreatePat); n != 1 {
				t.Errorf("%d create requests, want 1", n)
			}
		})
	}
}

func TestLifespanPolicyClampIsReported(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	s.devops.SetPolicies(orgName, devopsemu.Policies{MaxLifespan: 30 * 24 * time.Hour})
	c := s.client(svcUPN)
	p := s.create(c, orgName, "clamped")
	if got := p.ValidTo.Sub(s.clock.Now()); got != 30*24*time.Hour {
		t.Errorf("ValidTo is %s away, want the clamped 30 days", got)
	}
}

// The client sends each call once: the rotation core is the retry layer (see the
// package doc), so what matters here is that every failure is classified for it.
func TestThrottlingIsTransientWithTheServersRetryAfter(t *testing.T) {
	t.Run("an injected 429 is one request, transient, with its Retry-After", func(t *testing.T) {
		s := newStack(t, devopsemu.RateLimit{})
		s.devops.Faults().Set(devopsemu.OpCreatePat, fault.Fault{Status: 429, RetryAfter: 10 * time.Minute, Times: 1})
		c := s.client(svcUPN)
		_, err := c.CreatePAT(context.Background(), orgName, CreateRequest{DisplayName: "x", Scope: "vso.code", ValidTo: s.clock.Now().Add(ninetyDays)})
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrTransient) || e.RetryAfter() != 10*time.Minute || e.StatusCode != 429 {
			t.Fatalf("err = %v, want transient 429 with RetryAfter 10m", err)
		}
		if !strings.Contains(err.Error(), "TF400733") {
			t.Errorf("error %q does not carry the service's message", err)
		}
		if n := s.devops.Journal().Count(devopsemu.OpCreatePat); n != 1 {
			t.Errorf("%d create requests, want 1", n)
		}
	})
	t.Run("the emulator's own budget is reported with the wait it asks for", func(t *testing.T) {
		s := newStack(t, devopsemu.RateLimit{Limit: 2, Window: time.Minute})
		c := s.client(svcUPN)
		for i := range 2 {
			if _, err := c.ListPATs(context.Background(), orgName, ListFilter{}); err != nil {
				t.Fatalf("list %d: %v", i, err)
			}
		}
		_, err := c.ListPATs(context.Background(), orgName, ListFilter{})
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrTransient) || e.RetryAfter() != time.Minute {
			t.Fatalf("err = %v, want transient with RetryAfter 1m (both earlier requests leave the window then)", err)
		}
	})
}

func TestServerErrorsAreTransientAfterOneRequest(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	c := s.client(svcUPN)
	s.devops.Faults().Set(devopsemu.OpCreatePat, fault.Fault{Status: 503, Times: 1})
	_, err := c.CreatePAT(context.Background(), orgName, CreateRequest{DisplayName: "after-503", Scope: "vso.code", ValidTo: s.clock.Now().Add(ninetyDays)})
	if !errors.Is(err, ErrTransient) || errors.Is(err, ErrPermanent) {
		t.Fatalf("create under a 503: %v, want transient", err)
	}
	p := s.create(c, orgName, "after-503")

	s.devops.Faults().Set(devopsemu.OpRevokePat, fault.Fault{Status: 500})
	err = c.RevokePAT(context.Background(), orgName, p.AuthorizationID)
	if !errors.Is(err, ErrTransient) || errors.Is(err, ErrPermanent) {
		t.Fatalf("revoke under a persistent 500: %v, want transient", err)
	}
	if n := s.devops.Journal().Count(devopsemu.OpRevokePat); n != 1 {
		t.Errorf("%d revoke requests, want 1", n)
	}
}

func TestDroppedConnectionIsTransient(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	c := s.client(svcUPN)
	p := s.create(c, orgName, "p")
	s.devops.Faults().Set(devopsemu.OpConnectionData, fault.Fault{Drop: true, Times: 1})
	if _, err := c.VerifyPAT(context.Background(), orgName, p.Token); !errors.Is(err, ErrTransient) {
		t.Fatalf("verify over a dropped connection: %v, want transient", err)
	}
	if _, err := c.VerifyPAT(context.Background(), orgName, p.Token); err != nil {
		t.Fatalf("verify once the connection is back: %v", err)
	}
}

// loseFirstCreate lets the first create reach the emulator, then loses its answer: the
// PAT exists but the client never learns its value.
type loseFirstCreate struct {
	next http.RoundTripper
	done atomic.Bool
}

func (l *loseFirstCreate) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := l.next.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/tokens/pats") && l.done.CompareAndSwap(false, true) {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return &http.Response{StatusCode: 502, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	}
	return res, err
}

// The core's clean-up before a repeated create relies on this: a create whose answer
// was lost is transient, and its PAT is found by its display name.
func TestALostCreateIsTransientAndFoundByItsName(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	hc := *s.http
	hc.Transport = &loseFirstCreate{next: s.http.Transport}
	c, err := NewClient(Options{BaseURL: s.url, HTTPClient: &hc, Token: s.tokenFor(svcUPN)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreatePAT(context.Background(), orgName, CreateRequest{DisplayName: "patrol-op7", Scope: "vso.code", ValidTo: s.clock.Now().Add(ninetyDays)})
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("create with a lost answer: %v, want transient", err)
	}
	found, err := c.FindByDisplayName(context.Background(), orgName, "patrol-op7")
	active := s.devops.ActivePATs(orgName, svcUPN)
	if err != nil || len(found) != 1 || len(active) != 1 || found[0].AuthorizationID != active[0].AuthorizationID {
		t.Fatalf("FindByDisplayName = %v, %v; want the one active PAT %v", found, err, active)
	}
}

// addBOM prefixes every emulator response body with a UTF-8 byte-order mark.
type addBOM struct{ next http.RoundTripper }

func (a addBOM) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := a.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(io.MultiReader(strings.NewReader("\ufeff"), bytes.NewReader(b)))
	res.ContentLength = -1
	return res, nil
}

func TestResponsesWithAByteOrderMark(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	hc := *s.http
	hc.Transport = addBOM{s.http.Transport}
	c, err := NewClient(Options{BaseURL: s.url, HTTPClient: &hc, Token: s.tokenFor(svcUPN)})
	if err != nil {
		t.Fatal(err)
	}
	p := s.create(c, orgName, "bom")
	if _, err := c.VerifyPAT(context.Background(), orgName, p.Token); err != nil {
		t.Fatalf("verify: %v", err)
	}
	s.devops.SetPolicies(orgName, devopsemu.Policies{NoFullScope: true})
	_, err = c.CreatePAT(context.Background(), orgName, CreateRequest{DisplayName: "x", Scope: "app_token", ValidTo: s.clock.Now().Add(time.Hour)})
	var e *Error
	if !errors.As(err, &e) || e.Code != "fullScopePatPolicyViolation" {
		t.Errorf("policy violation behind a BOM: %v", err)
	}
}

func TestSignInPagesAndRedirectsAreRefused(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	mux.HandleFunc("/redirect/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login?signin=1", http.StatusFound)
	})
	mux.HandleFunc("/signin/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNonAuthoritativeInfo)
		io.WriteString(w, "<html>Sign In</html>")
	})
	mux.HandleFunc("/servicerror/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-TFS-ServiceError", "VS403403%3A%20Not%20allowed%20here")
		w.WriteHeader(http.StatusBadRequest)
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	cases := map[string]struct {
		prefix string
		want   error
		text   string
	}{
		"a 302 to a sign-in page is not followed":       {"/redirect", ErrUnauthorized, "not followed"},
		"a 203 sign-in page is an authorization error":  {"/signin", ErrUnauthorized, "sign-in page"},
		"X-TFS-ServiceError is the message of an error": {"/servicerror", ErrPermanent, "VS403403: Not allowed here"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := NewClient(Options{BaseURL: srv.URL + tc.prefix, HTTPClient: srv.Client(),
				Token: func(context.Context) (string, error) { return "t", nil }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListPATs(context.Background(), orgName, ListFilter{})
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
	if followed.Load() != 0 {
		t.Error("the client followed a redirect")
	}
}

func TestListingAndFinding(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	c := s.client(svcUPN)
	ctx := context.Background()
	for i := range 105 {
		s.create(c, orgName, fmt.Sprintf("bulk-%03d", i))
	}
	mine := s.create(c, orgName, "patrol-op42-a")
	revoked := s.create(c, orgName, "patrol-op42-b")
	if err := c.RevokePAT(ctx, orgName, revoked.AuthorizationID); err != nil {
		t.Fatal(err)
	}
	all, err := c.ListPATs(ctx, orgName, ListFilter{Status: All})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 107 {
		t.Errorf("listed %d PATs over two pages, want 107", len(all))
	}
	if n := s.devops.Journal().Count(devopsemu.OpListPats); n != 2 {
		t.Errorf("%d list requests, want 2 pages", n)
	}
	found, err := c.FindByDisplayName(ctx, orgName, "patrol-op42")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].AuthorizationID != mine.AuthorizationID || !found[0].Token.IsZero() {
		t.Errorf("found %+v, want only the active %s", found, mine.AuthorizationID)
	}
}

func TestTokenAdministration(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	svc := s.client(svcUPN)
	admin := s.client(adminUPN)
	ctx := context.Background()
	a := s.create(svc, orgName, "a")
	b := s.create(svc, orgName, "b")
	u, err := svc.VerifyPAT(ctx, orgName, a.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AdminListUserPATs(ctx, orgName, u.SubjectDescriptor); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("non-admin list: %v, want ErrUnauthorized", err)
	}
	list, err := admin.AdminListUserPATs(ctx, orgName, u.SubjectDescriptor)
	if err != nil || len(list) != 2 || !list[0].IsValid || list[0].UserID != u.ID {
		t.Fatalf("admin list: %+v, %v", list, err)
	}
	if err := admin.AdminRevoke(ctx, orgName, []string{a.AuthorizationID}); err != nil {
		t.Fatalf("admin revoke: %v", err)
	}
	if s.devops.IsActive(a.AuthorizationID) || !s.devops.IsActive(b.AuthorizationID) {
		t.Error("admin revoke did not revoke exactly the one PAT")
	}
}

func TestFindUserResolvesAPersonByUPNOrObjectIDToTheDescriptorTokenAdminTakes(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	admin := s.client(adminUPN)
	ctx := context.Background()
	a := s.create(s.client(svcUPN), otherOrg, "a")
	want, err := s.client(svcUPN).VerifyPAT(ctx, otherOrg, a.Token)
	if err != nil {
		t.Fatal(err)
	}
	for _, person := range []string{svcUPN, strings.ToUpper(svcUPN), svcOID} {
		u, err := admin.FindUser(ctx, otherOrg, person)
		if err != nil || u.Descriptor != want.SubjectDescriptor || u.OriginID != svcOID || !strings.EqualFold(u.PrincipalName, svcUPN) {
			t.Errorf("FindUser(%q) = %+v, %v; want descriptor %s", person, u, err, want.SubjectDescriptor)
			continue
		}
		list, err := admin.AdminListUserPATs(ctx, otherOrg, u.Descriptor)
		if err != nil || len(list) != 1 || list[0].AuthorizationID != a.AuthorizationID {
			t.Errorf("list by the found descriptor: %+v, %v", list, err)
		}
	}
	if _, err := admin.FindUser(ctx, otherOrg, "nobody@contoso.localhost"); !errors.Is(err, rotation.ErrNotFound) {
		t.Errorf("FindUser(non-member) = %v, want rotation.ErrNotFound", err)
	}
}

func TestInputIsCheckedBeforeCalling(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	c := s.client(svcUPN)
	ctx := context.Background()
	cases := map[string]func() error{
		"an organization with a slash":           func() error { _, err := c.ListPATs(ctx, "a/b", ListFilter{}); return err },
		"an authorization id that is not a GUID": func() error { return c.RevokePAT(ctx, orgName, "123") },
		"a create without a scope": func() error {
			_, err := c.CreatePAT(ctx, orgName, CreateRequest{DisplayName: "x", ValidTo: time.Now()})
			return err
		},
		"an empty PAT to verify":           func() error { _, err := c.VerifyPAT(ctx, orgName, secret.Value{}); return err },
		"an admin revoke of a non-GUID id": func() error { return c.AdminRevoke(ctx, orgName, []string{"x"}) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			if err := f(); !errors.Is(err, ErrPermanent) {
				t.Errorf("err = %v, want a permanent input error", err)
			}
		})
	}
	if n := len(s.devops.Journal().Entries()); n != 0 {
		t.Errorf("%d requests reached the service", n)
	}
	for name, o := range map[string]Options{
		"no token source":     {},
		"an http base URL":    {BaseURL: "http://localhost:1", Token: c.token},
		"a base URL with a ?": {BaseURL: "https://localhost:1/?x=1", Token: c.token},
	} {
		if _, err := NewClient(o); err == nil {
			t.Errorf("NewClient with %s: no error", name)
		}
	}
}

func TestCancelledContextIsReported(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	c := s.client(svcUPN)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.ListPATs(ctx, orgName, ListFilter{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const value = "ThisIsTheSecretPatValue0123456789"
	p := PAT{AuthorizationID: "id-1", Token: secret.New(value)}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("pat", "pat", p, "token", p.Token, "any", any(p.Token))
	slog.New(slog.NewTextHandler(&logs, nil)).Info("pat", "token", p.Token)
	js, _ := json.Marshal(p)
	mapJS, _ := json.Marshal(map[secret.Value]int{p.Token: 1})
	outputs := map[string]string{
		"%v of the PAT":   fmt.Sprintf("%v", p),
		"%+v of the PAT":  fmt.Sprintf("%+v", p),
		"%#v of the PAT":  fmt.Sprintf("%#v", p),
		"%s of the token": fmt.Sprintf("%s", p.Token),
		"%q of the token": fmt.Sprintf("%q", p.Token),
		"%x of the token": fmt.Sprintf("%x", p.Token),
		"%d of the token": fmt.Sprintf("%d", p.Token),
		"slog output":     logs.String(),
		"JSON of the PAT": string(js),
		"JSON map keys":   string(mapJS),
	}
	for name, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("%s reveals the token", name)
		}
	}
	if p.Token.Reveal() != value {
		t.Error("Reveal does not return the value")
	}
}
