package keyvault

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	entraemu "github.com/patrol-dev/patrol/internal/local/emulator/entra"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
)

const (
	entraTenant    = "7a3e1c55-0f0e-4c8e-9c1e-2b1f6a0d4e10"
	rotatorID      = "3c2f7a10-1b2c-4d3e-8f4a-5b6c7d8e9f01"
	rotatorSecret  = "rotator-client-secret"
	outsiderID     = "3c2f7a10-1b2c-4d3e-8f4a-5b6c7d8e9f02"
	outsiderSecret = "outsider-client-secret"
	functionMIID   = "3c2f7a10-1b2c-4d3e-8f4a-5b6c7d8e9f03"
)

// entraEnv runs the Entra emulator and the Key Vault emulator on one CA and one
// manual clock, wired as patrol-dev local wires them.
type entraEnv struct {
	t     *testing.T
	clk   *clock.Clock
	idp   *entraemu.Emulator
	kv    *Emulator
	ca    *tlsca.CA
	azOpt azcore.ClientOptions
}

func newEntraEnv(t *testing.T) *entraEnv {
	t.Helper()
	clk := clock.NewManual(time.Now().UTC().Truncate(time.Second))
	ca, err := tlsca.New()
	if err != nil {
		t.Fatal(err)
	}
	idp, err := entraemu.New(entraemu.Options{
		Directory: entraemu.Directory{TenantID: entraTenant, SystemAssignedIdentity: functionMIID, AppRegistrations: []entraemu.AppRegistration{
			{ClientID: rotatorID, Secret: rotatorSecret, DisplayName: "patrol-rotator"},
			{ClientID: outsiderID, Secret: outsiderSecret, DisplayName: "outsider"},
			{ClientID: functionMIID, ManagedIdentity: true, DisplayName: "patrol-func"},
		}},
		CA: ca, Clock: clk, SigningKey: signingKey(t, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := idp.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	tlsConf, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	kv, err := New(Options{Verifier: idp.Verifier(), Authority: "https://" + idp.Host(), TenantID: idp.TenantID(),
		Vaults: []string{"patrol"}, Clock: clk, TLS: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	dir := idp.Directory()
	for _, a := range dir.AppRegistrations {
		if a.ClientID == rotatorID || a.ClientID == functionMIID {
			if err := kv.Grant("patrol", a.ObjectID, RoleSecretsOfficer); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &entraEnv{t: t, clk: clk, idp: idp, kv: kv, ca: ca, azOpt: azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: idp.AuthorityHost()},
		Transport: offlineClient(t, ca.CertPEM()),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

func (e *entraEnv) secretCredential(clientID, secret string) azcore.TokenCredential {
	e.t.Helper()
	cred, err := azidentity.NewClientSecretCredential(entraTenant, clientID, secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: e.azOpt, DisableInstanceDiscovery: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return cred
}

func (e *entraEnv) client(cred azcore.TokenCredential) *azsecrets.Client {
	e.t.Helper()
	c, err := azsecrets.NewClient(e.kv.VaultURL("patrol"), cred, &azsecrets.ClientOptions{ClientOptions: e.azOpt})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func TestClientSecretCredentialFromTheEntraEmulator(t *testing.T) {
	env := newEntraEnv(t)
	ctx := context.Background()
	c := env.client(env.secretCredential(rotatorID, rotatorSecret))
	exp := env.clk.Now().Add(60 * day)
	set, err := c.SetSecret(ctx, "pat-svc1", azsecrets.SetSecretParameters{Value: ptr("v1"), SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
	if err != nil {
		t.Fatalf("SetSecret with an Entra client-secret token: %v", err)
	}
	got, err := c.GetSecret(ctx, "pat-svc1", set.ID.Version(), nil)
	if err != nil || *got.Value != "v1" {
		t.Fatalf("GetSecret: %v", err)
	}

	// Advance past the access token's life (1 h on the shared clock): MSAL still holds
	// the token in its cache, so only the claims challenge gets a fresh one.
	env.clk.Advance(2 * time.Hour)
	if _, err := c.GetSecret(ctx, "pat-svc1", "", nil); err != nil {
		t.Fatalf("GetSecret after the token expired on the shared clock: %v", err)
	}
	if n := env.idp.Journal().Count("token"); n != 2 {
		t.Fatalf("Entra issued %d tokens, want 2 (the first, then one after the claims challenge)", n)
	}

	_, err = env.client(env.secretCredential(outsiderID, outsiderSecret)).GetSecret(ctx, "pat-svc1", "", nil)
	if err == nil {
		t.Fatal("an app without a role assignment read a secret")
	}
	status, code, inner, msg := respErr(t, err)
	if status != 403 || code != "Forbidden" || inner != "ForbiddenByRbac" {
		t.Fatalf("unassigned app got %d %s/%s: %s", status, code, inner, msg)
	}
}

func TestManagedIdentityCredentialFromTheEntraEmulator(t *testing.T) {
	env := newEntraEnv(t)
	msi, err := env.idp.StartManagedIdentity("", "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range msi.Env() {
		t.Setenv(k, v)
	}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: env.azOpt})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := env.client(cred)
	if _, err := c.SetSecret(ctx, "from-function", azsecrets.SetSecretParameters{Value: ptr("x")}, nil); err != nil {
		t.Fatalf("SetSecret with a managed identity token: %v", err)
	}
	var names []string
	for p := c.NewListSecretPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Value {
			names = append(names, s.ID.Name())
		}
	}
	if len(names) != 1 || names[0] != "from-function" {
		t.Fatalf("listed %v", names)
	}
	env.clk.Advance(2 * time.Hour) // past the identity token's life on the shared clock
	if _, err := c.GetSecret(ctx, "from-function", "", nil); err != nil {
		t.Fatalf("GetSecret after the identity token expired on the shared clock: %v", err)
	}
	entries := env.kv.Journal().Entries()
	if last := entries[len(entries)-1]; last.Principal != functionMIID || last.Status != 200 {
		t.Fatalf("journal names the caller %q with status %d, want the identity's app id", last.Principal, last.Status)
	}
}

// D6: revoking a principal's sessions gets its older tokens a claims challenge in the
// form the Azure SDKs' fixtures show (xms_caeerror 10012); azsecrets, whose
// credential declares cp1, answers it with a new token and the call succeeds.
func TestRevokedSessionsGetAClaimsChallengeAzsecretsAnswers(t *testing.T) {
	env := newEntraEnv(t)
	ctx := context.Background()
	c := env.client(env.secretCredential(rotatorID, rotatorSecret))
	if _, err := c.SetSecret(ctx, "cae", azsecrets.SetSecretParameters{Value: ptr("v1")}, nil); err != nil {
		t.Fatal(err)
	}
	env.clk.Advance(10 * time.Minute)
	var oid string
	for _, a := range env.idp.Directory().AppRegistrations {
		if a.ClientID == rotatorID {
			oid = a.ObjectID
		}
	}
	env.kv.RevokeSessions(oid)
	if _, err := c.GetSecret(ctx, "cae", "", nil); err != nil {
		t.Fatalf("GetSecret after the sessions were revoked: %v", err)
	}
	if n := env.idp.Journal().Count("token"); n != 2 {
		t.Fatalf("Entra issued %d tokens, want 2 (the first, then one with the challenge's claims)", n)
	}
}
