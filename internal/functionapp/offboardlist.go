package functionapp

import (
	"context"
	"time"

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

// sweepInventory lists what Sweep plans over. With a TagLister it plans over the list
// pages and reads the current version (one GET) only of the secrets that are due,
// whose commands carry the version id; without one, ListManaged reads every secret.
// Key Vault allows 4,000 reads per vault per 10 seconds: a sweep that read each of
// 10,000 secrets was throttled part-way and failed.
func (a *App) sweepInventory(ctx context.Context, now time.Time) ([]rotation.Version, error) {
	l, ok := a.o.Inventory.(TagLister)
	if !ok {
		return a.o.Inventory.ListManaged(ctx)
	}
	listed, err := l.ListManagedTags(ctx)
	if err != nil {
		return nil, err
	}
	due := map[string]bool{}
	for _, r := range rotation.Due(rotation.Plan(listed, a.o.Defaults, now)) {
		due[r.Secret] = true
	}
	out := listed[:0]
	for _, v := range listed {
		if due[v.Name] {
			in, err := a.o.Rotator.Gather(ctx, v.Name)
			if err != nil {
				return nil, err
			}
			if !in.Exists {
				continue // deleted since the list
			}
			v = in.Current
		}
		out = append(out, v)
	}
	return out, nil
}
