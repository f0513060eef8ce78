package functionapp

import (
	"context"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// TagLister lists the managed secrets from the vault's list pages alone, without a
// version id (the Key Vault adapter's ListManagedTags). An Inventory that offers it
// serves Offboard: which secrets a person's departure touches is decided on tags, and
// reading 10,000 secrets one GET at a time would cost 10,000 requests where 400 list
// pages do.
type TagLister interface {
	ListManagedTags(ctx context.Context) ([]rotation.Version, error)
}

// offboardingInventory lists what Offboard plans over.
func (a *App) offboardingInventory(ctx context.Context) ([]rotation.Version, error) {
	if l, ok := a.o.Inventory.(TagLister); ok {
		return l.ListManagedTags(ctx)
	}
	return a.o.Inventory.ListManaged(ctx)
}
