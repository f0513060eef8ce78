package functionapp

import (
	"context"
	"testing"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// listPages is an inventory that can list from the vault's pages alone.
type listPages struct {
	*memRotator
	fromPages int
}

func (l *listPages) ListManagedTags(ctx context.Context) ([]rotation.Version, error) {
	l.fromPages++
	return l.memRotator.ListManaged(ctx)
}

func (l *listPages) ListManaged(context.Context) ([]rotation.Version, error) {
	panic("Offboard read each secret instead of the list pages")
}

func TestOffboardPlansOverTheListPagesWhenTheInventoryHasThem(t *testing.T) {
	r := &memRotator{secrets: map[string]rotation.Version{"pat-a": managed("pat-a", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com"})}}
	inv, b := &listPages{memRotator: r}, &memBus{}
	a, err := New(Options{Rotator: r, Inventory: inv, Commands: b, Publisher: b, Defaults: defaults})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Offboard(context.Background(), contract.OffboardingMessage{EventID: "hr-1", Person: contract.Person{UPN: "alice@contoso.com"}}); err != nil {
		t.Fatal(err)
	}
	if inv.fromPages != 1 || len(b.sent) != 1 {
		t.Errorf("listed from pages %d times, sent %d commands; want 1 and 1", inv.fromPages, len(b.sent))
	}
}
