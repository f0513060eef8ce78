package keyvault_test

import (
	"context"
	"errors"
	"testing"

	"github.com/patrol-dev/patrol/internal/contract"
	emukv "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

func TestCommandKeysAgainstTheEmulator(t *testing.T) {
	store, st := newStore(t)
	ctx := context.Background()
	keys := store.CommandKeys()
	first, err := keys.SigningKey(ctx)
	if err != nil {
		t.Fatalf("first use creates the key: %v", err)
	}
	if !first.Usable() {
		t.Fatalf("unusable key %v", first)
	}
	// Another instance reads the same key.
	again, err := store.CommandKeys().VerifyingKey(ctx, first.Version)
	if err != nil || again.Version != first.Version {
		t.Fatalf("another instance: %v, %v", again, err)
	}
	c := contract.RotationCommand{Secret: "s", OperationID: "o", Trigger: contract.TriggerManual, RequestedAt: st.Clock.Now()}
	_ = c.Validate()
	if err := c.Sign(first); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(again, st.Clock.Now()); err != nil {
		t.Errorf("a key read back does not verify what the first signed: %v", err)
	}
	for name, version := range map[string]string{
		"a version that does not exist": "0123456789abcdef0123456789abcdef",
		"not a version at all":          "../x",
	} {
		if _, err := keys.VerifyingKey(ctx, version); !errors.Is(err, contract.ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
	}
}

func TestCommandKeyPlantedWithoutTheTagIsRefused(t *testing.T) {
	store, st := newStore(t)
	if _, err := st.KV.Put(stack.Vault, contract.CommandKeySecret, emukv.NewSecret{Value: "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CommandKeys().SigningKey(context.Background()); !errors.Is(err, contract.ErrUnauthenticated) {
		t.Errorf("a key someone else planted was used: %v", err)
	}
}
