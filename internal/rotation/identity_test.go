package rotation_test

import (
	"context"

	"github.com/patrol-dev/patrol/internal/rotation"
	// Aliased: the package-level constant secret (the secret name the tests use) hides
	// the package name.
	sec "github.com/patrol-dev/patrol/internal/secret"
)

// wrongIdentity is an Azure DevOps that verifies every PAT as someone else's.
type wrongIdentity struct{ rotation.PATs }

func (w wrongIdentity) Verify(ctx context.Context, org string, tok sec.Value) (rotation.Identity, error) {
	if _, err := w.PATs.Verify(ctx, org, tok); err != nil {
		return rotation.Identity{}, err
	}
	return rotation.Identity{ID: "id-someone-else@contoso.com"}, nil
}
