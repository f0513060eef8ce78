package keyvault

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

func TestBadOptionsAreNamed(t *testing.T) {
	verifier := (&tokenSigner{key: signingKey(t, 0)}).verifier()
	tests := map[string]struct {
		opts Options
		want string
	}{
		"a missing verifier":                 {Options{Authority: testAuthority, TenantID: testTenant}, "Verifier"},
		"an http authority":                  {Options{Verifier: verifier, Authority: "http://localhost:1", TenantID: testTenant}, "Authority"},
		"an authority with a tenant path":    {Options{Verifier: verifier, Authority: testAuthority + "/" + testTenant, TenantID: testTenant}, "Authority"},
		"a missing tenant":                   {Options{Verifier: verifier, Authority: testAuthority}, "TenantID"},
		"a retention beyond 90 days":         {Options{Verifier: verifier, Authority: testAuthority, TenantID: testTenant, RecoverableDays: 91}, "RecoverableDays"},
		"a vault name with an underscore":    {Options{Verifier: verifier, Authority: testAuthority, TenantID: testTenant, Vaults: []string{"my_vault"}}, "my_vault"},
		"a vault name starting with a digit": {Options{Verifier: verifier, Authority: testAuthority, TenantID: testTenant, Vaults: []string{"1vault"}}, "1vault"},
		"a negative deletion window":         {Options{Verifier: verifier, Authority: testAuthority, TenantID: testTenant, DeleteWindow: -time.Second}, "DeleteWindow"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestBadGrantsAndSubscriptionsAreNamed(t *testing.T) {
	env := newEnv(t, nil)
	tests := map[string]struct {
		call func() error
		want string
	}{
		"a grant on an unknown vault": {func() error { return env.kv.Grant("nowhere", officerOID, RoleReader) }, "nowhere"},
		"a grant of an unknown role":  {func() error { return env.kv.Grant("alpha", officerOID, "Owner") }, "Owner"},
		"a subscription without a name": {func() error {
			return env.kv.Subscribe(context.Background(), Subscription{Endpoint: "http://127.0.0.1:1/"})
		}, "name"},
		"a subscription to a non-URL": {func() error {
			return env.kv.Subscribe(context.Background(), Subscription{Name: "sub", Endpoint: "ftp://x"})
		}, "endpoint"},
		"a subscription to a non-Key Vault event": {func() error {
			return env.kv.Subscribe(context.Background(), Subscription{Name: "sub", Endpoint: "http://127.0.0.1:1/", EventTypes: []string{"Microsoft.Storage.BlobCreated"}})
		}, "Microsoft.Storage.BlobCreated"},
		"a subscription with 31 attempts": {func() error {
			return env.kv.Subscribe(context.Background(), Subscription{Name: "sub", Endpoint: "http://127.0.0.1:1/", MaxAttempts: 31})
		}, "MaxAttempts"},
		"a subscription on an unknown vault": {func() error {
			return env.kv.Subscribe(context.Background(), Subscription{Name: "sub", Endpoint: "http://127.0.0.1:1/", Vault: "nowhere"})
		}, "nowhere"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.call(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestDeletionInProgressAnswersLikeAzure(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.DeleteWindow = 3 * time.Second })
	ctx := context.Background()
	c := env.client("alpha", env.cred(officerOID), nil)
	env.put("s", NewSecret{Value: "x"})
	if _, err := c.DeleteSecret(ctx, "s", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDeletedSecret(ctx, "s", nil); err == nil {
		t.Fatal("GetDeletedSecret found a secret whose deletion is still running")
	}
	_, err := c.RecoverDeletedSecret(ctx, "s", nil)
	if status, _, inner, _ := respErr(t, err); status != 409 || inner != "ObjectIsBeingDeleted" {
		t.Fatalf("recover during deletion: %d %s", status, inner)
	}
	_, err = c.PurgeDeletedSecret(ctx, "s", nil)
	if status, _, inner, _ := respErr(t, err); status != 409 || inner != "ObjectIsBeingDeleted" {
		t.Fatalf("purge during deletion: %d %s", status, inner)
	}
	env.clk.Advance(3 * time.Second)
	if _, err := c.GetDeletedSecret(ctx, "s", nil); err != nil {
		t.Fatalf("GetDeletedSecret once deletion finished: %v", err)
	}
	if _, err := c.RecoverDeletedSecret(ctx, "s", nil); err != nil {
		t.Fatalf("recover once deletion finished: %v", err)
	}
}

func TestSoftDeletedSecretsArePurgedAfterRetention(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.RecoverableDays = 7 })
	ctx := context.Background()
	c := env.client("alpha", env.cred(officerOID), nil)
	env.put("s", NewSecret{Value: "x"})
	if _, err := c.DeleteSecret(ctx, "s", nil); err != nil {
		t.Fatal(err)
	}
	env.clk.Advance(7*day - time.Second)
	if _, err := c.GetDeletedSecret(ctx, "s", nil); err != nil {
		t.Fatalf("deleted secret gone before its retention ended: %v", err)
	}
	env.clk.Advance(time.Second)
	if _, err := c.GetDeletedSecret(ctx, "s", nil); err == nil {
		t.Fatal("deleted secret still there after its retention ended")
	}
	if _, err := c.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: ptr("new")}, nil); err != nil {
		t.Fatalf("the name is free again: %v", err)
	}
}

func TestSubscriptionFilters(t *testing.T) {
	ev := Event{Type: EventSecretNearExpiry, Subject: "pat-svc1"}
	tests := map[string]struct {
		sub  Subscription
		want bool
	}{
		"an unfiltered subscription takes every event":    {Subscription{}, true},
		"a subscription on another vault takes nothing":   {Subscription{Vault: "beta"}, false},
		"a subscription on the vault, any case, takes it": {Subscription{Vault: "ALPHA"}, true},
		"a type filter without the type drops it":         {Subscription{EventTypes: []string{EventSecretExpired}}, false},
		"a subject prefix that matches keeps it":          {Subscription{SubjectBeginsWith: "pat-"}, true},
		"a subject suffix that differs drops it":          {Subscription{SubjectEndsWith: "-cache"}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.sub.matches("alpha", ev); got != tc.want {
				t.Fatalf("matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDefaultVaultServesHostsWithoutAVaultLabel(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.DefaultVault = "alpha" })
	env.put("s", NewSecret{Value: "v"})
	// Tools that cannot resolve *.vault.localhost use https://localhost:PORT and turn
	// off azsecrets' challenge resource check.
	c, err := azsecrets.NewClient(fmt.Sprintf("https://localhost:%d", env.kv.Port()), env.cred(officerOID), &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: env.hc, Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetSecret(context.Background(), "s", "", nil)
	if err != nil || *got.Value != "v" {
		t.Fatalf("GetSecret through the default vault: %v", err)
	}
}
