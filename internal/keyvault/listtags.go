package keyvault

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// ListManagedTags returns every secret tagged patrol-managed=true as the list pages
// describe it: name, the current version's attributes and tags, but no version id
// (Key Vault's list does not carry one). It costs one request per page (25 secrets)
// instead of ListManaged's one more GET per managed secret, for callers that decide
// on tags alone: an offboarding looks for the person among thousands of secrets.
func (s *Store) ListManagedTags(ctx context.Context) ([]rotation.Version, error) {
	var out []rotation.Version
	err := s.eachSecret(ctx, func(sp *azsecrets.SecretProperties) {
		if v := versionOf(sp.ID.Name(), sp.ID, sp.Attributes, sp.Tags); rotation.IsManaged(v.Tags) {
			out = append(out, v)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
