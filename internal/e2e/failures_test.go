package e2e

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/identity"
	kvadapter "github.com/patrol-dev/patrol/internal/keyvault"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/wiring"
)

func TestAPolicyViolationFailsPermanentlyAndLeavesTheOldPATAlone(t *testing.T) {
	e := newEnv(t, envOptions{})
	for name, tc := range map[string]struct {
		policy devopsemu.Policies
		tags   map[string]string // applied by adopting again before rotating
		// allowScopes are added to the operator's bounds, so the organization's
		// policy, not patrol's, is what refuses.
		allowScopes []string
	}{
		"the organization allows only listed accounts to create PATs": {policy: devopsemu.Policies{RestrictCreation: true, AllowList: []string{stack.Person}}},
		"the organization refuses full-scope PATs the secret allows":  {policy: devopsemu.Policies{NoFullScope: true}, tags: map[string]string{rotation.TagScopes: "app_token", rotation.TagAllowFullScope: "true"}, allowScopes: []string{rotation.FullScope}},
	} {
		t.Run(name, func(t *testing.T) {
			secret := "policy-" + slug(name)
			e.mustAdopt(secret)
			if tc.tags != nil {
				// Re-tag through the vault as an operator would (a new version carrying the PAT).
				ver, tags, value := e.current(secret)
				_ = ver
				for k, v := range tc.tags {
					tags[k] = v
				}
				if _, err := e.st.KV.Put(stack.Vault, secret, kvemu.NewSecret{Value: value, Tags: tags}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.allowScopes != nil {
				cfg := e.cfg
				cfg.AllowedScopes = append(slices.Clone(cfg.AllowedScopes), tc.allowScopes...)
				e.rebuild(cfg)
			}
			before, beforeTags, beforeValue := e.current(secret)
			versions := e.versionCount(secret)
			if err := e.st.DevOps.SetPolicies(org, tc.policy); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = e.st.DevOps.SetPolicies(org, devopsemu.Policies{}) }()

			o, err := e.rotate(secret, rotation.NewOpID())
			if err == nil || !rotation.IsPermanent(err) {
				t.Fatalf("a policy violation gave %s, err %v; want a permanent failure", o.Status, err)
			}
			if o.Status != rotation.StatusFailed || o.Retryable {
				t.Errorf("outcome %s retryable=%v, want failed and not retryable", o.Status, o.Retryable)
			}
			after, afterTags, afterValue := e.current(secret)
			if after != before || e.versionCount(secret) != versions || afterValue != beforeValue {
				t.Errorf("the secret changed: version %s→%s", before, after)
			}
			old := beforeTags[rotation.TagPATID]
			if afterTags[rotation.TagPATID] != old || !e.st.DevOps.IsActive(old) {
				t.Errorf("the old PAT %s is no longer the working one", old)
			}
			if n := len(e.activePATs(secret)); n != 1 {
				t.Errorf("%d active PATs for the secret, want only the old one", n)
			}
		})
	}
}

// TestSignInProblemsNameTheAccountAndTheFix covers the service-account failures an
// operator must fix: each is needs-attention, permanent, and says which account and
// which command.
func TestSignInProblemsNameTheAccountAndTheFix(t *testing.T) {
	for name, tc := range map[string]struct {
		prepare func(t *testing.T, e *env)
		want    []string
	}{
		"the service account never signed in": {
			prepare: func(t *testing.T, e *env) {},
			want:    []string{stack.ServiceAccount, "not signed in", "patrol login --service-account " + stack.ServiceAccount},
		},
		"the service account was disabled after signing in": {
			prepare: func(t *testing.T, e *env) {
				e.signIn()
				e.forgetAccessTokens()
				if err := e.st.Entra.DisableUser(stack.ServiceAccount); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{stack.ServiceAccount, "account disabled", "AADSTS50057"},
		},
		"the sign-in expired": {
			prepare: func(t *testing.T, e *env) {
				e.signIn()
				e.forgetAccessTokens()
				if err := e.st.Entra.ExpireRefreshTokens(stack.ServiceAccount); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{stack.ServiceAccount, "patrol login --service-account " + stack.ServiceAccount},
		},
		"MFA is demanded of a password sign-in": {
			prepare: func(t *testing.T, e *env) {
				e.allowROPC()
				if err := e.st.Entra.RequireMFA(stack.ServiceAccount, true); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{stack.ServiceAccount, "MFA required", "patrol login --service-account " + stack.ServiceAccount},
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{noSignIn: true})
			tc.prepare(t, e)
			o, err := e.adopt("signin", rotation.NewOpID(), nil)
			if err == nil {
				t.Fatalf("adopt succeeded (%s)", o.Status)
			}
			var se *identity.SignInError
			if !errors.As(err, &se) || !rotation.IsPermanent(err) {
				t.Fatalf("error %v is not a permanent sign-in error", err)
			}
			if o.Status != rotation.StatusNeedsAttention || o.Step != rotation.StepSignIn {
				t.Errorf("outcome %s at %q, want needs-attention at sign in", o.Status, o.Step)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) || !strings.Contains(o.Message, w) {
					t.Errorf("error %q / outcome message %q does not mention %q", err, o.Message, w)
				}
			}
			if n := e.st.DevOps.Journal().Count("CreatePat"); n != 0 {
				t.Errorf("%d PATs were created without a sign-in", n)
			}
		})
	}
}

// forgetAccessTokens removes the cached access tokens from the service account's
// token cache in the vault and starts a fresh process, so the next token must come
// from a refresh (an hour later, in effect, without waiting for MSAL's wall clock).
func (e *env) forgetAccessTokens() {
	e.t.Helper()
	name := kvadapter.CacheSecretName(stack.ServiceAccount)
	vs, err := e.st.KV.Versions(stack.IdentityVault, name)
	if err != nil {
		e.t.Fatal(err)
	}
	var cur kvemu.VersionInfo
	for _, v := range vs {
		if v.Current {
			cur = v
		}
	}
	blob, err := e.st.KV.SecretValue(stack.IdentityVault, name, cur.Version)
	if err != nil {
		e.t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(blob), &doc); err != nil {
		e.t.Fatalf("the token cache is not JSON: %v", err)
	}
	if _, ok := doc["AccessToken"]; !ok {
		e.t.Fatal("the token cache holds no AccessToken section")
	}
	delete(doc, "AccessToken")
	out, _ := json.Marshal(doc)
	if _, err := e.st.KV.Put(stack.IdentityVault, name, kvemu.NewSecret{Value: string(out), Tags: cur.Tags, ContentType: cur.ContentType}); err != nil {
		e.t.Fatal(err)
	}
	e.rebuild(e.cfg)
}

// allowROPC stores the service account's password and enables ROPC (fresh process).
func (e *env) allowROPC() {
	e.t.Helper()
	if _, err := e.st.KV.Put(stack.IdentityVault, kvadapter.PasswordSecretName(stack.ServiceAccount), kvemu.NewSecret{Value: e.st.ServiceAccountPassword}); err != nil {
		e.t.Fatal(err)
	}
	cfg := e.cfg
	cfg.AllowROPC = true
	e.rebuild(cfg)
}

// rebuild wires patrol again, as a new process would start.
func (e *env) rebuild(cfg config.Config) {
	e.t.Helper()
	svc, err := wiring.Build(e.ctx, cfg, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	old := e.svc
	e.svc, e.cfg = svc, cfg
	_ = old.Close(e.ctx)
	e.t.Cleanup(func() { _ = svc.Close(e.ctx) })
}

func TestADeviceCodeSignInCompletedAsSomeoneElseIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	err := e.svc.Accounts.Login(e.ctx, stack.ServiceAccount, func(dc identity.DeviceCode) {
		if err := e.st.Entra.ApproveDeviceCode(dc.UserCode, stack.Person); err != nil {
			t.Errorf("approve: %v", err)
		}
	})
	var se *identity.SignInError
	if !errors.As(err, &se) || se.Kind != identity.WrongAccount || !strings.Contains(err.Error(), stack.Person) {
		t.Fatalf("err = %v, want a wrong-account sign-in error naming %s", err, stack.Person)
	}
	// Nothing usable was kept: the service account is still not signed in.
	if _, err := e.adopt("wrong", rotation.NewOpID(), nil); !errors.As(err, &se) || se.Kind != identity.NotSignedIn {
		t.Fatalf("adopt after a refused sign-in: %v", err)
	}
}
