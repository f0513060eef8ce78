package keyvault

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// Unmanaged is a secret patrol does not manage, as `patrol discover` walks them.
type Unmanaged struct {
	Name    string
	Expires time.Time // the secret's exp attribute; zero when unset
}

// ListUnmanaged lists the enabled secrets that are neither tagged patrol-managed=true
// nor patrol's own (token caches, passwords, the command key), for `patrol discover`.
// It reads names and attributes only.
func (s *Store) ListUnmanaged(ctx context.Context) ([]Unmanaged, error) {
	var out []Unmanaged
	err := s.eachSecret(ctx, func(sp *azsecrets.SecretProperties) {
		tags := tagsIn(sp.Tags)
		name := sp.ID.Name()
		if rotation.IsManaged(tags) || rotation.IsInternalSecret(name, tags) ||
			(sp.Attributes != nil && sp.Attributes.Enabled != nil && !*sp.Attributes.Enabled) {
			return
		}
		u := Unmanaged{Name: name}
		if sp.Attributes != nil && sp.Attributes.Expires != nil {
			u.Expires = sp.Attributes.Expires.UTC()
		}
		out = append(out, u)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Value reads a secret's current value. Only the operator's `patrol discover` calls it:
// the function app never reads a value it did not write.
func (s *Store) Value(ctx context.Context, name string) (secret.Value, error) {
	res, err := s.c.GetSecret(ctx, name, "", nil)
	if err != nil {
		return secret.Value{}, fmt.Errorf("keyvault: get %q: %w", name, translate(err))
	}
	if res.Value == nil {
		return secret.Value{}, nil
	}
	return secret.New(*res.Value), nil
}
