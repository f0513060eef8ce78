package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	entraemu "github.com/patrol-dev/patrol/internal/local/emulator/entra"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
	"github.com/patrol-dev/patrol/internal/localtrust"
)

const (
	testTenant = "5d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
	testClient = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	testUPN    = "svc@contoso.localhost"
)

// signedIn is a ServiceAccounts whose account signed in by device code at an Entra
// emulator consenting the app registration consent.
func signedIn(t *testing.T, consent ...string) (*ServiceAccounts, *entraemu.Emulator, *clock.Clock) {
	t.Helper()
	ca, err := tlsca.New()
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Now())
	em, err := entraemu.New(entraemu.Options{CA: ca, Clock: clk, Directory: entraemu.Directory{
		TenantID: testTenant,
		AppRegistrations: []entraemu.AppRegistration{{ClientID: testClient, PublicClient: true, DisplayName: "patrol",
			Consent: entraemu.Consent{DevOpsResource: consent}}},
		Users: []entraemu.User{{UPN: testUPN, Password: "pw"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	hc, err := localtrust.NewClient(ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	sa, err := NewServiceAccounts(Options{Authority: em.Authority(), ClientID: testClient, HTTPClient: hc, Store: &memStore{}})
	if err != nil {
		t.Fatal(err)
	}
	err = sa.Login(context.Background(), testUPN, func(dc DeviceCode) {
		if err := em.ApproveDeviceCode(dc.UserCode, testUPN); err != nil {
			t.Errorf("approve: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return sa, em, clk
}

func TestTheAccountsTokenCarriesThePATScopesAndDeclaresCP1(t *testing.T) {
	sa, em, _ := signedIn(t, "vso.pats", "vso.pats_manage", "vso.tokenadministration")
	tok, err := sa.Token(context.Background(), testUPN)
	if err != nil {
		t.Fatal(err)
	}
	p, err := em.Verifier().Verify(tok.Value())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Scopes, []string{"vso.pats", "vso.pats_manage"}) || !slices.Equal(p.Capabilities, []string{"cp1"}) {
		t.Errorf("scp %v, xms_cc %v; want exactly the PAT scopes (not everything consented) and cp1", p.Scopes, p.Capabilities)
	}
}

func TestAClaimsChallengeIsPassedToEntraAsItCame(t *testing.T) {
	sa, em, clk := signedIn(t, "vso.pats", "vso.pats_manage")
	clk.Advance(10 * time.Minute) // ahead of the wall clock, as on the local stack
	at := clk.Now().Unix()
	claims := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"},"xms_caeerror":{"value":"10012"}}}`, at)
	tok, err := sa.TokenWithClaims(context.Background(), testUPN, nil, claims)
	if err != nil {
		t.Fatal(err)
	}
	p, err := em.Verifier().Verify(tok.Value())
	if err != nil {
		t.Fatal(err)
	}
	if p.NotBefore.Unix() != at || !slices.Equal(p.Scopes, []string{"vso.pats", "vso.pats_manage"}) {
		t.Errorf("nbf %d, scp %v; want the challenge's nbf %d and the PAT scopes", p.NotBefore.Unix(), p.Scopes, at)
	}
}

func TestATokenAdministrationTokenNeedsItsOwnConsent(t *testing.T) {
	for name, tc := range map[string]struct {
		consent []string
		kind    Kind // Other: the token is issued
	}{
		"consented: a token carrying only vso.tokenadministration": {consent: []string{"vso.pats", "vso.pats_manage", "vso.tokenadministration"}},
		"not consented: AADSTS65001 naming the permission":         {consent: []string{"vso.pats", "vso.pats_manage"}, kind: ConsentRequired},
	} {
		t.Run(name, func(t *testing.T) {
			sa, em, _ := signedIn(t, tc.consent...)
			tok, err := sa.TokenAdmin(context.Background(), testUPN)
			if tc.kind != Other {
				var se *SignInError
				if !errors.As(err, &se) || se.Kind != tc.kind || !strings.Contains(err.Error(), "vso.tokenadministration") || !strings.Contains(err.Error(), testClient) {
					t.Fatalf("err = %v, want %s naming vso.tokenadministration and the app", err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p, err := em.Verifier().Verify(tok.Value()); err != nil || !slices.Equal(p.Scopes, []string{"vso.tokenadministration"}) {
				t.Errorf("token %+v %v", p, err)
			}
		})
	}
}

func TestSigningInWithoutThePATConsentFailsNamingIt(t *testing.T) {
	ca, err := tlsca.New()
	if err != nil {
		t.Fatal(err)
	}
	em, err := entraemu.New(entraemu.Options{CA: ca, Directory: entraemu.Directory{
		TenantID: testTenant,
		AppRegistrations: []entraemu.AppRegistration{{ClientID: testClient, PublicClient: true,
			Consent: entraemu.Consent{DevOpsResource: {"user_impersonation"}}}},
		Users: []entraemu.User{{UPN: testUPN, Password: "pw"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	hc, _ := localtrust.NewClient(ca.CertPEM())
	sa, err := NewServiceAccounts(Options{Authority: em.Authority(), ClientID: testClient, HTTPClient: hc, Store: &memStore{}})
	if err != nil {
		t.Fatal(err)
	}
	err = sa.Login(context.Background(), testUPN, func(dc DeviceCode) { _ = em.ApproveDeviceCode(dc.UserCode, testUPN) })
	var se *SignInError
	if !errors.As(err, &se) || se.Kind != ConsentRequired || !strings.Contains(err.Error(), "vso.pats, vso.pats_manage") {
		t.Fatalf("login = %v, want ConsentRequired naming vso.pats, vso.pats_manage", err)
	}
}
