package functionapp

// This file finds whom a PAT a revocation names belongs to, when the revocation does
// not say.

import (
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

// withOwnerOnRecord fills in a revocation's missing owner from the secret's versions.
func withOwnerOnRecord(cmd contract.RevocationCommand, versions []rotation.Version) contract.RevocationCommand {
	if cmd.Owner == "" {
		cmd.Owner = OwnerOnRecord(cmd.PATID, versions)
	}
	return cmd
}
