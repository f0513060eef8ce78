package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/identity"
	kvadapter "github.com/patrol-dev/patrol/internal/keyvault"
	entraemu "github.com/patrol-dev/patrol/internal/local/emulator/entra"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/wiring"
)

// live returns the names of a vault's secrets that are not deleted.
func (e *env) live(vault string) map[string]kvemu.SecretInfo {
	e.t.Helper()
	infos, err := e.st.KV.Secrets(vault)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]kvemu.SecretInfo{}
	for _, i := range infos {
		if !i.Deleted {
			out[i.Name] = i
		}
	}
	return out
}

// cacheVersion is the identity vault's current version of the service account's cache.
func (e *env) cacheVersion() string {
	e.t.Helper()
	i, ok := e.live(stack.IdentityVault)[kvadapter.CacheSecretName(account)]
	if !ok {
		e.t.Fatal("the identity vault holds no token cache for the service account")
	}
	return i.Current.Version
}

// operator is a second process — the operator's laptop running `patrol login` — wired
// to the same vaults.
func (e *env) operator() *wiring.Services {
	e.t.Helper()
	svc, err := wiring.Build(e.ctx, e.cfg, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

func (e *env) login(svc *wiring.Services) {
	e.t.Helper()
	err := svc.Accounts.Login(e.ctx, account, func(dc identity.DeviceCode) {
		if err := e.st.Entra.ApproveDeviceCode(dc.UserCode, account); err != nil {
			e.t.Errorf("approve the device code: %v", err)
		}
	})
	if err != nil {
		e.t.Fatalf("sign the service account in: %v", err)
	}
}

func TestTheRefreshTokensAreKeptInTheIdentityVaultOnly(t *testing.T) {
	e := newEnv(t, envOptions{}) // signs the service account in
	name := kvadapter.CacheSecretName(account)
	if _, ok := e.live(stack.IdentityVault)[name]; !ok {
		t.Errorf("the identity vault has no %s after patrol login", name)
	}
	for n := range e.live(stack.Vault) {
		if strings.HasPrefix(n, "patrol-msal-") || strings.HasPrefix(n, "patrol-password-") {
			t.Errorf("the secrets vault, which PAT readers reach, holds %s", n)
		}
	}
	if _, err := e.svc.Accounts.Token(e.ctx, account); err != nil {
		t.Fatalf("a token from the identity vault's cache: %v", err)
	}
}

// After an incident the operator revokes the service account's sessions and runs
// `patrol login` again; an instance that was warm before must use the new sign-in at
// its next refresh (invalid_grant), without a restart.
func TestReRunningLoginWhileAnInstanceIsWarmTakesEffectWithoutARestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	warm := e.svc
	if _, err := warm.Accounts.Token(e.ctx, account); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Entra.RevokeRefreshTokens(account); err != nil {
		t.Fatal(err)
	}
	e.login(e.operator())

	// A claims request redeems the refresh token: the warm copy's was revoked.
	if _, err := warm.Accounts.TokenWithClaims(e.ctx, account, nil, refreshClaims()); err != nil {
		t.Fatalf("the warm instance did not take up the new sign-in: %v", err)
	}
	if _, err := warm.Accounts.Token(e.ctx, account); err != nil {
		t.Fatalf("a token after taking up the new sign-in: %v", err)
	}
	if !strings.Contains(e.logs.String(), "retrying with the token cache stored since") {
		t.Error("the warm instance did not say it reloaded the cache")
	}
}

// A warm instance that refreshes with the sign-in it read before an operator's new
// `patrol login` must not write its stale cache over the new one.
func TestAStaleCacheNeverOverwritesAFreshOne(t *testing.T) {
	e := newEnv(t, envOptions{})
	warm := e.svc
	if _, err := warm.Accounts.Token(e.ctx, account); err != nil {
		t.Fatal(err)
	}
	e.login(e.operator())
	fresh := e.cacheVersion()

	// The warm instance still holds the old sign-in (its refresh token still works):
	// refreshing changes its cache, which it would then store.
	if _, err := warm.Accounts.TokenWithClaims(e.ctx, account, nil, refreshClaims()); err != nil {
		t.Fatal(err)
	}
	if v := e.cacheVersion(); v != fresh {
		t.Fatalf("the warm instance's stale cache replaced the fresh sign-in (version %s, want %s)", v, fresh)
	}
	// Its next token comes from the fresh sign-in, and what it stores from then on is
	// built on it.
	if err := e.st.Entra.RevokeRefreshTokens(account); err != nil { // the old and the new
		t.Fatal(err)
	}
	e.login(e.operator())
	newest := e.cacheVersion()
	if _, err := warm.Accounts.TokenWithClaims(e.ctx, account, nil, refreshClaims()); err != nil {
		t.Fatalf("after a stale write was refused, the next refresh does not use the stored sign-in: %v", err)
	}
	if v := e.cacheVersion(); v == newest {
		// Refresh changed the cache (a new access token), so it stored a version over
		// the newest sign-in, as it should.
		t.Errorf("the warm instance never stored its refreshed cache over the newest sign-in")
	}
}

// A deployment made before the identity vault keeps its caches in the secrets vault;
// after `azd up` adds the identity vault, patrol keeps working (reading them where they
// are, and saying so), `patrol status` says it needs attention, and one
// `patrol migrate-identity` moves them, idempotently.
func TestMigrateIdentityMovesAnOldDeploymentsCachesOnce(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	oldCfg := e.cfg
	oldCfg.IdentityKeyVaultURL = ""
	old, err := wiring.Build(e.ctx, oldCfg, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = old.Close(context.Background()) })
	if !strings.Contains(e.logs.String(), "PATROL_IDENTITY_KEYVAULT_URL is not set") {
		t.Error("building without the identity vault did not warn")
	}
	e.login(old)
	cache, password := kvadapter.CacheSecretName(account), kvadapter.PasswordSecretName(account)
	if _, err := e.st.KV.Put(stack.Vault, password, kvemu.NewSecret{Value: e.st.ServiceAccountPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Store.CommandKeys().SigningKey(e.ctx); err != nil { // the old app created its key there
		t.Fatal(err)
	}
	if _, ok := e.live(stack.Vault)[cache]; !ok {
		t.Fatal("the old deployment's cache is not in the secrets vault")
	}

	// The upgraded app reads the cache where it still is.
	if _, err := e.svc.Accounts.Token(e.ctx, account); err != nil {
		t.Fatalf("a token before the migration: %v", err)
	}
	if !strings.Contains(e.logs.String(), "move it with `patrol migrate-identity`") {
		t.Error("reading a cache from the secrets vault did not warn")
	}
	_, errOut, code := e.patrol("status")
	if code != 0 || !strings.Contains(errOut, "needs attention") || !strings.Contains(errOut, cache) {
		t.Fatalf("status before the migration: exit %d, stderr:\n%s", code, errOut)
	}

	out, errOut, code := e.patrol("migrate-identity")
	if code != 0 || !strings.Contains(out, cache+": ") || !strings.Contains(out, password+": moved") || !strings.Contains(out, contract.CommandKeySecret+": moved") {
		t.Fatalf("migrate-identity: exit %d\n%s\n%s", code, out, errOut)
	}
	secrets, identities := e.live(stack.Vault), e.live(stack.IdentityVault)
	for _, n := range []string{cache, password, contract.CommandKeySecret} {
		if _, ok := secrets[n]; ok {
			t.Errorf("%s is still in the secrets vault", n)
		}
		if _, ok := identities[n]; !ok {
			t.Errorf("%s is not in the identity vault", n)
		}
	}
	if v, _ := e.st.KV.SecretValue(stack.IdentityVault, password, identities[password].Current.Version); v != e.st.ServiceAccountPassword {
		t.Error("the password was not copied as it was")
	}

	out, errOut, code = e.patrol("migrate-identity")
	if code != 0 || !strings.Contains(out, "Nothing to move") {
		t.Fatalf("migrate-identity again: exit %d\n%s\n%s", code, out, errOut)
	}
	_, errOut, code = e.patrol("status")
	if code != 0 || strings.Contains(errOut, "needs attention") {
		t.Fatalf("status after the migration: exit %d, stderr:\n%s", code, errOut)
	}
	e.rebuild(e.cfg) // a fresh process
	if _, err := e.svc.Accounts.TokenWithClaims(e.ctx, account, nil, refreshClaims()); err != nil {
		t.Fatalf("a refresh from the moved cache: %v", err)
	}
}

// The obvious grant for a pipeline — Key Vault Secrets User on the secrets vault — reads
// the PATs, and must not reach any service account's refresh token.
func TestAPipelineThatReadsTheSecretsVaultCannotReachARefreshToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustAdopt("feed")
	pipeline, err := e.st.Entra.AddAppRegistration(entraemu.AppRegistration{
		ClientID: "55555555-5555-4555-8555-555555555555", Secret: "pipeline-secret-value", DisplayName: "a pipeline"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.KV.Grant(stack.Vault, pipeline.ObjectID, kvemu.RoleSecretsUser); err != nil {
		t.Fatal(err)
	}
	co := azcore.ClientOptions{Transport: e.st.HTTP, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: e.st.Entra.AuthorityHost(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}}
	cred, err := azidentity.NewClientSecretCredential(stack.TenantID, pipeline.ClientID, "pipeline-secret-value",
		&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	client := func(url string) *azsecrets.Client {
		c, err := azsecrets.NewClient(url, cred, &azsecrets.ClientOptions{ClientOptions: co})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	secrets, identities := client(e.st.VaultURL), client(e.st.IdentityVaultURL)
	if _, err := secrets.GetSecret(e.ctx, "feed", "", nil); err != nil {
		t.Fatalf("the pipeline cannot read its PAT, so the test proves nothing: %v", err)
	}
	p := secrets.NewListSecretPropertiesPager(nil)
	for p.More() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range page.Value {
			if n := sp.ID.Name(); strings.HasPrefix(n, "patrol-msal-") || strings.HasPrefix(n, "patrol-password-") {
				t.Errorf("the secrets vault lists %s to the pipeline", n)
			}
		}
	}
	_, err = identities.GetSecret(e.ctx, kvadapter.CacheSecretName(account), "", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatalf("the pipeline read the identity vault: %v", err)
	}
}

// refreshClaims is a claims request that MSAL cannot answer from its cached access
// token (a CAE-style nbf of now), so it redeems the refresh token.
func refreshClaims() string {
	return fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, time.Now().Unix())
}
