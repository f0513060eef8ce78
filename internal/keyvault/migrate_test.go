package keyvault_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/patrol-dev/patrol/internal/keyvault"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

// identityStore is a Store on the stack's second vault.
func identityStore(t *testing.T, st *stack.Stack) *keyvault.Store {
	t.Helper()
	co := azcore.ClientOptions{Transport: st.HTTP, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: st.Entra.AuthorityHost(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}}
	cred, err := azidentity.NewClientSecretCredential(stack.TenantID, stack.WorkloadClientID, st.WorkloadSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := keyvault.New(st.IdentityVaultURL, cred, keyvault.Options{ClientOptions: co})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMoveIdentitySecretsMovesPatrolsAndLeavesTheRest(t *testing.T) {
	from, st := newStore(t)
	to := identityStore(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cacheTags := map[string]string{keyvault.TagKind: keyvault.KindMSALCache}
	off := false
	for name, s := range map[string]kvemu.NewSecret{
		"patrol-msal-a-contoso-com":     {Value: `{"a":1}`, Tags: cacheTags, ContentType: "application/json"},
		"patrol-msal-b-contoso-com":     {Value: `{"stale":true}`, Tags: cacheTags}, // the identity vault has a newer one
		"patrol-msal-foreign":           {Value: "not a cache"},                     // not patrol's
		"patrol-password-a-contoso-com": {Value: "hunter2"},
		"patrol-password-withdrawn":     {Value: "old", Enabled: &off},
		"ado-feed-pat":                  {Value: "a PAT"},
	} {
		if _, err := st.KV.Put(stack.Vault, name, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.KV.Put(stack.IdentityVault, "patrol-msal-b-contoso-com", kvemu.NewSecret{Value: `{"fresh":true}`, Tags: cacheTags}); err != nil {
		t.Fatal(err)
	}

	moved, err := keyvault.MoveIdentitySecrets(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range moved {
		got[m.Name] = m.Outcome
	}
	want := map[string]string{
		"patrol-msal-a-contoso-com":     keyvault.MovedCopied,
		"patrol-msal-b-contoso-com":     keyvault.MovedAlreadyThere,
		"patrol-msal-foreign":           keyvault.MovedSkipped,
		"patrol-password-a-contoso-com": keyvault.MovedCopied,
		"patrol-password-withdrawn":     keyvault.MovedSkipped,
	}
	for name, outcome := range want {
		if got[name] != outcome {
			t.Errorf("%s: %q, want %q", name, got[name], outcome)
		}
	}
	if _, ok := got["ado-feed-pat"]; ok {
		t.Error("a PAT was considered for the identity vault")
	}
	live := func(vault string) map[string]kvemu.SecretInfo {
		infos, err := st.KV.Secrets(vault)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]kvemu.SecretInfo{}
		for _, i := range infos {
			if !i.Deleted {
				out[i.Name] = i
			}
		}
		return out
	}
	secrets, identities := live(stack.Vault), live(stack.IdentityVault)
	for _, name := range []string{"patrol-msal-foreign", "patrol-password-withdrawn", "ado-feed-pat"} {
		if _, ok := secrets[name]; !ok {
			t.Errorf("%s was removed from the secrets vault", name)
		}
	}
	for _, name := range []string{"patrol-msal-a-contoso-com", "patrol-msal-b-contoso-com", "patrol-password-a-contoso-com"} {
		if _, ok := secrets[name]; ok {
			t.Errorf("%s is still in the secrets vault", name)
		}
	}
	b := identities["patrol-msal-b-contoso-com"]
	if v, _ := st.KV.SecretValue(stack.IdentityVault, b.Name, b.Current.Version); v != `{"fresh":true}` {
		t.Errorf("the identity vault's newer cache was overwritten: %s", v)
	}
	a := identities["patrol-msal-a-contoso-com"]
	if v, _ := st.KV.SecretValue(stack.IdentityVault, a.Name, a.Current.Version); v != `{"a":1}` || a.Current.Tags[keyvault.TagKind] != keyvault.KindMSALCache || a.Current.ContentType != "application/json" {
		t.Errorf("the moved cache is not what it was: %q %v %q", v, a.Current.Tags, a.Current.ContentType)
	}

	again, err := keyvault.MoveIdentitySecrets(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range again {
		if m.Outcome != keyvault.MovedSkipped {
			t.Errorf("a second run did something: %+v", m)
		}
	}
}
