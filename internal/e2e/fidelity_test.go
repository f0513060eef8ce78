package e2e

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/identity"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// These tests pin what Azure does where an earlier client and emulator agreed with each
// other but not with Azure (docs/emulator-fidelity.md, D1, D2, D4, D7).

// D1/D2: docs/deploy.md once told operators to consent user_impersonation only. Azure
// DevOps refuses such a token on the PAT API, so patrol asks Entra for vso.pats and
// vso.pats_manage by name and the sign-in itself says what is missing.
func TestAnAppRegistrationConsentedOnlyUserImpersonationFailsAtSignInNamingTheConsent(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	if err := e.st.Entra.SetConsent(stack.PublicClientID, devopsemu.ResourceID, "user_impersonation"); err != nil {
		t.Fatal(err)
	}
	err := e.svc.Accounts.Login(e.ctx, account, func(dc identity.DeviceCode) {
		if err := e.st.Entra.ApproveDeviceCode(dc.UserCode, account); err != nil {
			t.Errorf("approve: %v", err)
		}
	})
	var se *identity.SignInError
	if !errors.As(err, &se) || se.Kind != identity.ConsentRequired || se.Code != 65001 {
		t.Fatalf("sign-in = %v, want a consent-required sign-in error (AADSTS65001)", err)
	}
	for _, w := range []string{"vso.pats", "vso.pats_manage", stack.PublicClientID} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
}

// The service account's token carries exactly the PAT scopes and declares cp1; token
// administration is asked for separately, only when revoking someone else's PAT.
func TestTheServiceAccountsTokenCarriesThePATScopesAndDeclaresCP1(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok, err := e.svc.Accounts.Token(e.ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.st.Entra.Verifier().Verify(tok.Value())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Scopes, []string{"vso.pats", "vso.pats_manage"}) || !slices.Contains(p.Capabilities, "cp1") {
		t.Errorf("scp %v, xms_cc %v; want [vso.pats vso.pats_manage] and cp1", p.Scopes, p.Capabilities)
	}
}

// D1: the Revoke function revokes a PAT someone else made through token administration,
// with a token that carries vso.tokenadministration.
func TestRevokingSomeoneElsesPATUsesATokenAdministrationToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	personal := e.plantPersonalPAT("personal")
	o, err := e.svc.Rotator.Revoke(e.ctx, rotation.Revocation{Secret: "personal", Org: org, PATID: personal, Owner: stack.Person, Account: account, Op: "admin-test"})
	if err != nil || o.Status != rotation.StatusRevoked {
		t.Fatalf("revoke: %s %v", o.Status, err)
	}
	if e.st.DevOps.IsActive(personal) {
		t.Error("the person's PAT is still active")
	}
}

func TestWithoutTokenAdministrationConsentRevokingSomeoneElsesPATNeedsAttention(t *testing.T) {
	e := newEnv(t, envOptions{})
	personal := e.plantPersonalPAT("personal")
	if err := e.st.Entra.SetConsent(stack.PublicClientID, devopsemu.ResourceID, devopsemu.ScopePATs, devopsemu.ScopePATsManage); err != nil {
		t.Fatal(err)
	}
	o, err := e.svc.Rotator.Revoke(e.ctx, rotation.Revocation{Secret: "personal", Org: org, PATID: personal, Owner: stack.Person, Account: account, Op: "admin-test"})
	if err == nil || !errors.Is(err, rotation.ErrNotPermitted) || !rotation.IsPermanent(err) || o.Status != rotation.StatusNeedsAttention {
		t.Fatalf("revoke: %s %v, want needs-attention: not permitted", o.Status, err)
	}
	if !strings.Contains(err.Error(), "vso.tokenadministration") {
		t.Errorf("error %q does not name the missing consent", err)
	}
	if !e.st.DevOps.IsActive(personal) {
		t.Error("the person's PAT was revoked anyway")
	}
}

// plantPersonalPAT creates a PAT as stack.Person (signed in through the emulator) and
// returns its id.
func (e *env) plantPersonalPAT(name string) string {
	e.t.Helper()
	tok, err := personToken(e)
	if err != nil {
		e.t.Fatal(err)
	}
	id, err := createPAT(e, tok, "release pipeline ("+name+")")
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// D4: Azure DevOps answers a token issued before a critical event (here: the user's
// sessions were revoked in Azure DevOps' view, while Entra still refreshes) with a
// claims challenge; patrol hands exactly those claims to MSAL. A made-up claims request
// (nbf = the wall clock, which the emulated clock runs ahead of) would get a token
// Azure DevOps refuses again.
func TestAClaimsChallengeFromAzureDevOpsIsAnsweredWithItsOwnClaims(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustAdopt("cae")
	e.st.Clock.Advance(10 * time.Minute)
	if err := e.st.DevOps.RevokeSessions(account); err != nil {
		t.Fatal(err)
	}
	o, err := e.rotate("cae", rotation.NewOpID())
	if err != nil || o.Status != rotation.StatusRotated {
		t.Fatalf("rotate after the challenge: %s %v", o.Status, err)
	}
	e.assertConverged("cae")
	if e.refusals() == 0 {
		t.Fatal("Azure DevOps never challenged the old token: the test does not exercise the challenge")
	}
}

// Revoke sessions in Entra as well: the challenge's refresh is refused and the operator
// is told to sign the account in again, at whichever step met the challenge.
func TestRevokedSessionsNeedTheServiceAccountSignedInAgain(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustAdopt("revoked")
	e.st.Clock.Advance(10 * time.Minute)
	if err := errors.Join(e.st.DevOps.RevokeSessions(account), e.st.Entra.RevokeRefreshTokens(account)); err != nil {
		t.Fatal(err)
	}
	o, err := e.rotate("revoked", rotation.NewOpID())
	var se *identity.SignInError
	if !errors.As(err, &se) || se.Kind != identity.SignInExpired || !rotation.IsPermanent(err) || o.Status != rotation.StatusNeedsAttention {
		t.Fatalf("rotate: %s %v, want needs-attention with an expired sign-in", o.Status, err)
	}
	if !strings.Contains(o.Message, "patrol login --service-account "+account) {
		t.Errorf("outcome message %q does not say how to fix it", o.Message)
	}
}

// D7: patrol compares Azure DevOps identity ids, not sign-in names: an account whose
// name in Azure DevOps differs from the UPN patrol was given (a renamed UPN) still
// rotates.
func TestAServiceAccountWhoseAzureDevOpsSignInNameDiffersFromItsUPNStillRotates(t *testing.T) {
	e := newEnv(t, envOptions{})
	u, ok := e.st.Entra.User(account)
	if !ok {
		t.Fatal("no service account in the directory")
	}
	if _, err := e.st.DevOps.AddUser(org, devopsemu.User{ObjectID: u.ObjectID, UPN: "build-renamed@" + stack.Domain, DisplayName: "Build service account", Admin: true}); err != nil {
		t.Fatal(err)
	}
	e.mustAdopt("renamed")
	e.assertConverged("renamed")
}

// Verification retries a 401 twice (1s, 2s on the core's clock) before giving up: a new
// PAT can take a moment to propagate.
func TestANewPATRefusedWhileItPropagatesIsVerifiedAfterRetries(t *testing.T) {
	for name, tc := range map[string]struct {
		refusals int
		rotated  bool
	}{
		"refused twice, then accepted: rotated":       {refusals: 2, rotated: true},
		"refused three times: failed and PAT revoked": {refusals: 3, rotated: false},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.mustAdopt("propagating")
			before, _, _ := e.current("propagating")
			e.st.DevOps.DelayPATPropagation(tc.refusals)
			o, err := e.rotate("propagating", rotation.NewOpID())
			e.st.DevOps.DelayPATPropagation(0)
			if tc.rotated {
				if err != nil || o.Status != rotation.StatusRotated {
					t.Fatalf("rotate: %s %v", o.Status, err)
				}
				e.assertConverged("propagating")
			} else {
				if o.Status != rotation.StatusFailed || o.Step != rotation.StepVerify {
					t.Fatalf("rotate: %s at %q %v, want failed at verify", o.Status, o.Step, err)
				}
				if after, _, _ := e.current("propagating"); after != before || len(e.activePATs("propagating")) != 1 {
					t.Errorf("the secret changed or the refused PAT is still active")
				}
			}
			waits := e.waits.all()
			if len(waits) < 2 || waits[0] != time.Second || waits[1] != 2*time.Second {
				t.Errorf("waits %v, want 1s then 2s before the verification retries", waits)
			}
		})
	}
}

// refusals counts Azure DevOps' 401 answers to bearer calls.
func (e *env) refusals() int {
	n := 0
	for _, en := range e.st.DevOps.Journal().Entries() {
		if en.Status == 401 && en.Operation != devopsemu.OpConnectionData {
			n++
		}
	}
	return n
}

// personToken signs stack.Person in (device code approved at the emulator) with patrol's
// own sign-in client and returns an Azure DevOps token.
func personToken(e *env) (string, error) {
	accounts, err := identity.NewServiceAccounts(identity.Options{
		Authority: strings.TrimSuffix(e.st.Entra.AuthorityHost(), "/") + "/" + stack.TenantID, ClientID: stack.PublicClientID,
		HTTPClient: e.st.HTTP, Store: &memCaches{},
	})
	if err != nil {
		return "", err
	}
	err = accounts.Login(e.ctx, stack.Person, func(dc identity.DeviceCode) {
		if err := e.st.Entra.ApproveDeviceCode(dc.UserCode, stack.Person); err != nil {
			e.t.Errorf("approve: %v", err)
		}
	})
	if err != nil {
		return "", err
	}
	tok, err := accounts.Token(e.ctx, stack.Person)
	return tok.Value(), err
}

func createPAT(e *env, tok, name string) (string, error) {
	dc, err := devops.NewClient(devops.Options{BaseURL: e.st.DevOpsURL, HTTPClient: e.st.HTTP,
		Token: func(context.Context) (string, error) { return tok, nil }})
	if err != nil {
		return "", err
	}
	pat, err := dc.CreatePAT(e.ctx, org, devops.CreateRequest{DisplayName: name, Scope: "vso.code", ValidTo: e.st.Clock.Now().Add(30 * 24 * time.Hour)})
	return pat.AuthorizationID, err
}

// memCaches keeps MSAL caches in memory (a person's, not a service account's).
type memCaches struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

func (m *memCaches) LoadCache(_ context.Context, account string) (identity.StoredCache, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blobs[account] == nil {
		return identity.StoredCache{}, nil
	}
	return identity.StoredCache{Blob: m.blobs[account], Version: "1"}, nil
}

// SaveCache keeps one version per account: a test of CAE, not of cache versions.
func (m *memCaches) SaveCache(_ context.Context, account string, blob []byte, _ string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blobs == nil {
		m.blobs = map[string][]byte{}
	}
	m.blobs[account] = blob
	return "1", nil
}

func (m *memCaches) Password(context.Context, string) (string, bool, error) { return "", false, nil }
