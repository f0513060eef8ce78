package keyvault

import (
	"context"
	"fmt"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// ListManagedTags returns every secret tagged patrol-managed=true as the list pages
// describe it: name, the current version's attributes and tags, but no version id
// (Key Vault's list does not carry one). It costs one request per page (25 secrets)
// instead of ListManaged's one more GET per managed secret, for callers that decide
// on tags alone: an offboarding looks for the person among thousands of secrets.
func (s *Store) ListManagedTags(ctx context.Context) ([]rotation.Version, error) {
	var out []rotation.Version
	p := s.c.NewListSecretPropertiesPager(nil)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("keyvault: list secrets: %w", translate(err))
		}
		for _, sp := range page.Value {
			if sp == nil || sp.ID == nil || (sp.Managed != nil && *sp.Managed) {
				continue // Managed: a certificate's backing secret
			}
			if v := versionOf(sp.ID.Name(), sp.ID, sp.Attributes, sp.Tags); rotation.IsManaged(v.Tags) {
				out = append(out, v)
			}
		}
	}
	return out, nil
}
