package devops

import (
	"fmt"
	"strings"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
)

// Continuous Access Evaluation (docs/emulator-fidelity.md 2.5, 2.6, D4).
//
// Azure DevOps enforces CAE: "When a token is rejected, the client will receive a 401
// Unauthorized response with a claims challenge." Its exact header is undocumented; the
// emulator sends Entra's generic resource-provider form (authn.ClaimsChallenge), and
// only to tokens whose client declared the cp1 capability (xms_cc), since "an
// application will not receive claims challenges … unless it declares it is ready to
// handle them". Other tokens get a plain 401.
//
// Deliberate local divergence: a token expired on the emulator clock is also answered
// with a claims challenge (nbf = now, no xms_caeerror), whatever its capabilities.
// MSAL judges expiry by the wall clock, which the local stack's clock runs ahead of; the
// challenge lets a client fetch a fresh token past MSAL's cache, as Key Vault's emulator
// does (D6). Real Azure DevOps answers an expired token with a plain 401 (unverified).

// RevokeSessions ends every session of a user (UPN or Entra object id, in any
// organization), like "Revoke sessions" in Entra: Azure DevOps refuses the user's tokens
// issued before now with a claims challenge. New tokens (nbf at or after now) work.
// Entra's own side (refresh tokens) is the Entra emulator's RevokeRefreshTokens.
func (s *Emulator) RevokeSessions(upnOrObjectID string) error {
	s.mu.Lock()
	var oid string
	for _, o := range s.orgs {
		if u := o.findUser(upnOrObjectID); u != nil {
			oid = u.ObjectID
			break
		}
	}
	s.mu.Unlock()
	if oid == "" {
		return fmt.Errorf("%w %q", ErrUnknownUser, upnOrObjectID)
	}
	s.sessions.Revoke(oid, s.clock.Now())
	return nil
}

// DelayPATPropagation makes each PAT created from now on answer connectionData with 401
// for its first calls calls, as a PAT can in Azure before it has propagated. Zero
// stops delaying new PATs.
func (s *Emulator) DelayPATPropagation(calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.propagation = max(calls, 0)
}

// checkSession refuses a verified token issued before its user's sessions were revoked.
func (s *Emulator) checkSession(req *request, p authn.Principal) *authFailure {
	at, stale := s.sessions.Stale(p)
	if !stale {
		return nil
	}
	f := unauthorized(req.principal)
	f.signIn = false
	f.message = fmt.Sprintf("TF400813: The user '%s' is not authorized to access this resource. The access token was issued before the user's sessions were revoked.", req.principal)
	if p.HandlesChallenges() {
		f.challenge = authn.ClaimsChallenge(s.authorizationURI(req.orgInfo.TenantID)+"/oauth2/authorize", at, authn.CAEErrorSessionRevoked)
	}
	return f
}

// checkExpiry answers a bearer token expired on the emulator clock with a claims
// challenge (the local divergence above). It runs before the verifier.
func (s *Emulator) checkExpiry(req *request, raw string) *authFailure {
	exp := authn.Expiry(raw)
	now := s.clock.Now()
	if exp.IsZero() || now.Before(exp) {
		return nil
	}
	f := unauthorized("")
	f.signIn = false
	f.message = "TF400813: The user '' is not authorized to access this resource. The access token has expired."
	f.challenge = authn.ClaimsChallenge(s.authorizationURI(req.orgInfo.TenantID)+"/oauth2/authorize", now, "")
	return f
}

// authorizationURI is the Entra authority a 401 names: tenant-specific when the
// organization is connected to a tenant, as real 401s are (2.6).
func (s *Emulator) authorizationURI(tenant string) string {
	if tenant == "" {
		tenant = "common"
	}
	return strings.TrimSuffix(s.authority, "/") + "/" + tenant
}
