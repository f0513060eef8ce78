package keyvault_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/keyvault"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// newStore starts the emulators and returns the adapter on azsecrets, authenticated
// as the workload app through the Entra emulator.
func newStore(t *testing.T) (*keyvault.Store, *stack.Stack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	st, err := stack.Start(ctx, stack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	co := azcore.ClientOptions{Transport: st.HTTP, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: st.Entra.AuthorityHost(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}}
	cred, err := azidentity.NewClientSecretCredential(stack.TenantID, stack.WorkloadClientID, st.WorkloadSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	// Retry options that would make the SDK retry: the adapter must override them.
	kvco := co
	kvco.Retry = policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond, MaxRetries: 3}
	s, err := keyvault.New(st.VaultURL, cred, keyvault.Options{ClientOptions: kvco})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func managedTags(reason rotation.Reason) map[string]string {
	return map[string]string{rotation.TagManaged: "true", rotation.TagOrg: "contoso", rotation.TagScopes: "vso.code", rotation.TagReason: string(reason)}
}

func TestSecretStoreAgainstTheEmulator(t *testing.T) {
	s, st := newStore(t)
	ctx := context.Background()
	exp := st.Clock.Now().Add(30 * 24 * time.Hour).Truncate(time.Second).UTC()

	t.Run("a missing secret is ErrNotFound", func(t *testing.T) {
		_, err := s.Current(ctx, "absent")
		if !errors.Is(err, rotation.ErrNotFound) || !strings.HasPrefix(err.Error(), `keyvault: get "absent": HTTP 404`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a write without patrol-managed=true is refused before any request", func(t *testing.T) {
		n := st.KV.Journal().Count(kvemu.OpSetSecret)
		_, err := s.SetVersion(ctx, "x", rotation.NewVersion{Value: secret.New("v"), Tags: map[string]string{"a": "b"}})
		if !errors.Is(err, rotation.ErrUnmanaged) || st.KV.Journal().Count(kvemu.OpSetSecret) != n {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an unmanaged secret is written only by an adoption", func(t *testing.T) {
		if _, err := st.KV.Put(stack.Vault, "handmade", kvemu.NewSecret{Value: "someone's PAT"}); err != nil {
			t.Fatal(err)
		}
		_, err := s.SetVersion(ctx, "handmade", rotation.NewVersion{Value: secret.New("new"), Tags: managedTags(rotation.ReasonManual)})
		if !errors.Is(err, rotation.ErrUnmanaged) || !strings.Contains(err.Error(), "patrol adopt handmade") {
			t.Fatalf("a manual write over an unmanaged secret: %v", err)
		}
		v, err := s.SetVersion(ctx, "handmade", rotation.NewVersion{Value: secret.New("new"), Expires: exp, Tags: managedTags(rotation.ReasonAdopt)})
		if err != nil {
			t.Fatalf("adopt: %v", err)
		}
		if len(v.ID) != 32 || !v.Expires.Equal(exp) || !v.Enabled || v.Tags[rotation.TagManaged] != "true" || v.Created.IsZero() {
			t.Fatalf("version = %+v", v)
		}
		cur, err := s.Current(ctx, "handmade")
		if err != nil || cur.ID != v.ID || !cur.Expires.Equal(exp) {
			t.Fatalf("Current = %+v, %v; want version %s", cur, err, v.ID)
		}
		if val, _ := st.KV.SecretValue(stack.Vault, "handmade", v.ID); val != "new" {
			t.Fatal("the value was not written")
		}
		// Managed now: an ordinary rotation write goes through.
		if _, err := s.SetVersion(ctx, "handmade", rotation.NewVersion{Value: secret.New("newer"), Tags: managedTags(rotation.ReasonManual)}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a token cache secret is never written as a PAT", func(t *testing.T) {
		if _, err := s.SaveCache(ctx, "svc@contoso.com", []byte(`{}`), identity.Overwrite); err != nil {
			t.Fatal(err)
		}
		_, err := s.SetVersion(ctx, keyvault.CacheSecretName("svc@contoso.com"), rotation.NewVersion{Value: secret.New("pat"), Tags: managedTags(rotation.ReasonAdopt)})
		if !errors.Is(err, rotation.ErrUnmanaged) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a disabled current version is reported as disabled, not as an error", func(t *testing.T) {
		f := false
		id, err := st.KV.Put(stack.Vault, "off", kvemu.NewSecret{Value: "p", Enabled: &f, Tags: managedTags(rotation.ReasonManual)})
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.Current(ctx, "off")
		if err != nil || v.Enabled || v.ID != id || v.Tags[rotation.TagManaged] != "true" {
			t.Fatalf("Current = %+v, %v", v, err)
		}
	})
	t.Run("ListManaged returns only managed secrets, with their versions", func(t *testing.T) {
		vs, err := s.ListManaged(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]string{}
		for _, v := range vs {
			names[v.Name] = v.ID
		}
		if len(names) != 2 || names["handmade"] == "" || names["off"] == "" {
			t.Fatalf("ListManaged = %v, want handmade and off", names)
		}
	})
	t.Run("throttling is transient with the server's Retry-After", func(t *testing.T) {
		st.KV.Faults().Set(kvemu.OpGetSecret, fault.Fault{Status: 429, RetryAfter: 2 * time.Second})
		defer st.KV.Faults().Reset()
		_, err := s.Current(ctx, "handmade")
		if err == nil || rotation.IsPermanent(err) || errors.Is(err, rotation.ErrNotFound) || rotation.RetryAfter(err) != 2*time.Second {
			t.Fatalf("err = %v (retry after %v)", err, rotation.RetryAfter(err))
		}
	})
	t.Run("a persistent 503 costs one request per call: the core is the retry layer", func(t *testing.T) {
		st.KV.Faults().Set(kvemu.OpGetSecret, fault.Fault{Status: 503})
		defer st.KV.Faults().Reset()
		_, err := s.Current(ctx, "handmade")
		if err == nil || rotation.IsPermanent(err) {
			t.Fatalf("err = %v, want transient", err)
		}
		if n := st.KV.Faults().Hits(kvemu.OpGetSecret); n != 1 {
			t.Errorf("%d GET requests, want 1 (the SDK must not retry)", n)
		}
	})
	t.Run("an RBAC refusal is permanent and names the missing right", func(t *testing.T) {
		var oid string
		for _, a := range st.Entra.Directory().AppRegistrations {
			if a.ClientID == stack.WorkloadClientID {
				oid = a.ObjectID
			}
		}
		st.KV.Revoke(stack.Vault, oid, kvemu.RoleSecretsOfficer)
		defer func() { _ = st.KV.Grant(stack.Vault, oid, kvemu.RoleSecretsOfficer) }()
		_, err := s.Current(ctx, "handmade")
		if !rotation.IsPermanent(err) || !strings.Contains(err.Error(), "Azure RBAC") || !strings.Contains(err.Error(), oid) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCacheStoreAgainstTheEmulator(t *testing.T) {
	s, st := newStore(t)
	ctx := context.Background()
	const upn = "svc-build@contoso.com"

	if sc, err := s.LoadCache(ctx, upn); err != nil || sc.Blob != nil || sc.Version != "" {
		t.Fatalf("LoadCache before any sign-in = %q %q, %v", sc.Blob, sc.Version, err)
	}
	v1, err := s.SaveCache(ctx, upn, []byte(`{"AccessToken":{}}`), "")
	if err != nil || v1 == "" {
		t.Fatalf("SaveCache = %q, %v", v1, err)
	}
	if sc, err := s.LoadCache(ctx, upn); err != nil || string(sc.Blob) != `{"AccessToken":{}}` || sc.Version != v1 {
		t.Fatalf("LoadCache = %q %q, %v; want version %s", sc.Blob, sc.Version, err, v1)
	}
	infos, _ := st.KV.Secrets(stack.Vault)
	for _, i := range infos {
		if i.Name == "patrol-msal-svc-build-contoso-com" && i.Current.Tags[keyvault.TagKind] != keyvault.KindMSALCache {
			t.Errorf("cache secret tags = %v", i.Current.Tags)
		}
	}

	// Someone else's secret under the cache's name is neither read nor overwritten.
	const other = "other@contoso.com"
	if _, err := st.KV.Put(stack.Vault, keyvault.CacheSecretName(other), kvemu.NewSecret{Value: "not a cache"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadCache(ctx, other); err == nil || !strings.Contains(err.Error(), "patrol-kind=msal-cache") {
		t.Fatalf("LoadCache of a foreign secret: %v", err)
	}
	if _, err := s.SaveCache(ctx, other, []byte("{}"), identity.Overwrite); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("SaveCache over a foreign secret: %v", err)
	}

	if pw, ok, err := s.Password(ctx, upn); err != nil || ok || pw != "" {
		t.Fatalf("Password without a secret = %v, %v", ok, err)
	}
	if _, err := st.KV.Put(stack.Vault, keyvault.PasswordSecretName(upn), kvemu.NewSecret{Value: "hunter2"}); err != nil {
		t.Fatal(err)
	}
	if pw, ok, err := s.Password(ctx, upn); err != nil || !ok || pw != "hunter2" {
		t.Fatalf("Password = ok %v, %v", ok, err)
	}
}

func TestACacheIsSavedOnlyOverTheVersionItWasReadAt(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	const upn = "svc-build@contoso.com"
	v1, err := s.SaveCache(ctx, upn, []byte(`{"v":1}`), "")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		over    string
		changed bool
	}{
		"a first save expecting no cache finds one":       {over: "", changed: true},
		"a save over a version that is no longer current": {over: "0123456789abcdef0123456789abcdef", changed: true},
		"a save over the current version":                 {over: v1},
		"a sign-in overwrites whatever version is stored": {over: identity.Overwrite},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before, err := s.LoadCache(ctx, upn)
			if err != nil {
				t.Fatal(err)
			}
			if tc.over == v1 {
				tc.over = before.Version // the version this case read
			}
			v, err := s.SaveCache(ctx, upn, []byte(`{"v":2}`), tc.over)
			after, _ := s.LoadCache(ctx, upn)
			if tc.changed {
				if !errors.Is(err, identity.ErrCacheChanged) || after.Version != before.Version {
					t.Fatalf("err = %v, version %s -> %s; want ErrCacheChanged and nothing written", err, before.Version, after.Version)
				}
				return
			}
			if err != nil || after.Version != v || v == before.Version {
				t.Fatalf("err = %v, stored %s, returned %s, before %s", err, after.Version, v, before.Version)
			}
		})
	}
}
