package authn

import (
	"encoding/base64"
	"fmt"
	"strings"
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
