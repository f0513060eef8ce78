package functionapp

// This file finds whom a PAT a revocation names belongs to, when the revocation does
// not say.

import (
	"context"
	"fmt"
	"strings"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// OwnerOnRecord is the owner the vault records for a PAT: the patrol-owner of the
// version that held it (patrol-pat-id), or "" when no version did.
//
// A revocation without an owner comes from a command that found its rotation already
// done (a redelivery after a crash between storing the new version and scheduling the
// revocation): the core no longer has the replaced version, so it cannot say whose
// the previous PAT was. Treated as the service account's, a departing person's PAT
// would be "revoked" through the caller's own-PAT API, which answers not-found for a
// PAT of someone else's, and stay active (found by TestFaultCampaign).
func OwnerOnRecord(patID string, versions []rotation.Version) string {
	for _, v := range versions {
		if strings.EqualFold(strings.TrimSpace(v.Tags[rotation.TagPATID]), patID) {
			return strings.TrimSpace(v.Tags[rotation.TagOwner])
		}
	}
	return ""
}

// withOwnerOnRecord fills in a revocation's missing owner from the vault's history.
func (a *App) withOwnerOnRecord(ctx context.Context, cmd contract.RevocationCommand) (contract.RevocationCommand, error) {
	if cmd.Owner != "" || a.o.History == nil {
		return cmd, nil
	}
	versions, err := a.o.History.Versions(ctx, cmd.Secret)
	if err != nil {
		return cmd, fmt.Errorf("functionapp: list versions of %q: %w", cmd.Secret, err)
	}
	if owner := OwnerOnRecord(cmd.PATID, versions); owner != "" {
		cmd.Owner = owner
		a.log.InfoContext(ctx, "revocation: owner taken from the version that held the PAT", "secret", cmd.Secret, "patId", cmd.PATID, "owner", owner)
	}
	return cmd, nil
}
