package devhost

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
)

// noTokens is a Verifier for a Key Vault emulator that is only used for its Event Grid
// delivery here: no request carries a token.
type noTokens struct{}

func (noTokens) Verify(string) (authn.Principal, error) {
	return authn.Principal{}, errors.New("no tokens in this test")
}

// TestKeyVaultEventsReachTheFunctionThroughTheWebhook subscribes the Key Vault
// emulator to devhost's webhook in both schemas (each subscription proves itself with
// its handshake) and checks that a new secret version invokes KeyVaultEvents with the
// event object, once per subscription.
func TestKeyVaultEventsReachTheFunctionThroughTheWebhook(t *testing.T) {
	th := startTestHost(t, testAppFiles, func(o *Options) { o.DisableTriggers = []string{"Warmup", "Sweep"} })
	kv, err := kvemu.New(kvemu.Options{
		Verifier: noTokens{}, Authority: "https://localhost:8441", TenantID: "tenant-1", Vaults: []string{"patrol-demo"}, Clock: th.clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, schema := range map[string]kvemu.Schema{"grid": kvemu.EventGridSchema, "cloud": kvemu.CloudEventSchema} {
		if err := kv.Subscribe(ctx, kvemu.Subscription{Name: "devhost-" + name, Endpoint: th.EventGridURL("KeyVaultEvents"), Schema: schema}); err != nil {
			t.Fatalf("subscribe (%s schema): %v", name, err)
		}
	}
	if _, err := kv.Put("patrol-demo", "pat-svc1", kvemu.NewSecret{Value: "not-a-real-pat"}); err != nil {
		t.Fatal(err)
	}
	if err := kv.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	invs := th.invocations(t, "KeyVaultEvents")
	if len(invs) != 2 {
		t.Fatalf("invocations = %d, want one per subscription", len(invs))
	}
	seen := map[string]bool{}
	for _, inv := range invs {
		var ev map[string]any
		if err := json.Unmarshal(inv.Body.Data["event"], &ev); err != nil {
			t.Fatal(err)
		}
		typ, _ := ev["eventType"].(string)
		if typ == "" {
			typ, _ = ev["type"].(string) // CloudEvents
		}
		if typ != "Microsoft.KeyVault.SecretNewVersionCreated" || ev["subject"] != "pat-svc1" {
			t.Errorf("event = %v", ev)
		}
		_, cloud := ev["specversion"]
		seen[map[bool]string{true: "cloud", false: "grid"}[cloud]] = true
	}
	if !seen["cloud"] || !seen["grid"] {
		t.Errorf("schemas seen = %v, want both", seen)
	}
	if c := th.Counts("KeyVaultEvents"); c.Succeeded != 2 {
		t.Errorf("counts = %+v", c)
	}
}
