package rotation

import (
	"context"
	"errors"
	"strings"

	"github.com/patrol-dev/patrol/internal/secret"
)

// VerifyAttempts is how many times step 5 asks Azure DevOps to accept a new PAT before
// revoking it, waiting 1s then 2s on the core's Clock. A PAT can take a moment to
// propagate in Azure DevOps: a refusal right after creation is not yet a verdict.
const VerifyAttempts = 3

// verify is step 5: the new PAT authenticates, as the same Azure DevOps identity as the
// service account's access token. Identities are compared by Azure DevOps' own id; a
// PAT that authenticates as anyone else is a permanent failure (and is revoked).
func (r *Rotator) verify(ctx context.Context, auth secret.Value, pol Policy, token secret.Value) error {
	self, err := do(ctx, r, func() (Identity, error) { return r.pats.Whoami(ctx, auth, pol.Org) })
	if err != nil {
		return err
	}
	var who Identity
	for attempt := 1; ; attempt++ {
		who, err = do(ctx, r, func() (Identity, error) { return r.pats.Verify(ctx, pol.Org, token) })
		if !errors.Is(err, ErrPATRefused) || attempt >= VerifyAttempts || !fitsDeadline(ctx, retryBase<<(attempt-1)) {
			break
		}
		if serr := r.clock.Sleep(ctx, retryBase<<(attempt-1)); serr != nil {
			break
		}
	}
	switch {
	case err != nil:
		return err
	case self.ID == "" || !strings.EqualFold(who.ID, self.ID):
		return permanent("the new PAT authenticates as Azure DevOps identity %q, not as the service account %s (identity %q)", who.ID, pol.ServiceAccount, self.ID)
	}
	return nil
}
