package authn

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// CAEErrorSessionRevoked is the xms_caeerror Key Vault's CAE challenge carries in the
// Azure SDKs' fixtures (docs/emulator-fidelity.md 2.5).
const CAEErrorSessionRevoked = "10012"

// ClaimsChallenge is a Continuous Access Evaluation challenge in the form Entra
// documents for resource providers (claims-challenge page): one Bearer header with
// realm, authorization_uri, error="insufficient_claims" and claims, the base64 of
// {"access_token":{"nbf":{"essential":true,"value":"<unix>"}}} asking for a token issued
// no earlier than nbf, with xms_caeerror when caeError is not empty.
func ClaimsChallenge(authorizationURI string, nbf time.Time, caeError string) string {
	claims := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}`, nbf.Unix())
	if caeError != "" {
		claims += fmt.Sprintf(`,"xms_caeerror":{"value":"%s"}`, caeError)
	}
	claims += `}}`
	return fmt.Sprintf(`Bearer realm="", authorization_uri="%s", error="insufficient_claims", claims="%s"`,
		authorizationURI, base64.StdEncoding.EncodeToString([]byte(claims)))
}

// Expiry reads exp from a JWT without verifying it; zero when there is none. Emulators
// judge expiry on their own clock before verifying, to answer an expired token
// differently from a forged one.
func Expiry(raw string) time.Time {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(strings.TrimSpace(raw), claims); err != nil {
		return time.Time{}
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return time.Time{}
	}
	return exp.Time
}

// Sessions records when each principal's sessions were revoked ("Revoke sessions" in
// Entra, a critical event of Continuous Access Evaluation). One Sessions is shared by
// the emulators that enforce CAE (Azure DevOps, Key Vault), as the event reaches every
// CAE-enabled resource. Safe for concurrent use; the zero value is not: use NewSessions.
type Sessions struct {
	mu      sync.Mutex
	revoked map[string]time.Time // by lower-case object id
}

// NewSessions returns an empty record.
func NewSessions() *Sessions { return &Sessions{revoked: map[string]time.Time{}} }

// Revoke ends the sessions of objectID at at (truncated to whole seconds, as token
// times and a challenge's nbf are).
func (s *Sessions) Revoke(objectID string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[strings.ToLower(objectID)] = at.Truncate(time.Second)
}

// Stale reports whether p's token was issued before its sessions were revoked, and
// when they were.
func (s *Sessions) Stale(p Principal) (time.Time, bool) {
	s.mu.Lock()
	at, ok := s.revoked[strings.ToLower(p.ObjectID)]
	s.mu.Unlock()
	return at, ok && p.NotBefore.Before(at)
}

// HandlesChallenges reports whether the token's client declared the cp1 capability:
// only those receive claims challenges (claims-challenge page).
func (p Principal) HandlesChallenges() bool {
	return slices.ContainsFunc(p.Capabilities, func(c string) bool { return strings.EqualFold(c, "cp1") })
}
