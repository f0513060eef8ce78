// Package authn is the contract between the Entra ID emulator, which issues tokens, and
// the emulators that accept them (Key Vault, Azure DevOps). Keeping it separate lets
// those emulators check real signed JWTs without depending on the Entra emulator's
// internals.
package authn

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Principal is who a verified access token speaks for.
type Principal struct {
	ObjectID string   // oid
	TenantID string   // tid
	UPN      string   // upn or preferred_username (users only)
	AppID    string   // appid or azp: the client the token was issued to
	Name     string   // display name
	IsUser   bool     // a delegated (user) token, as opposed to an app-only token
	Audience string   // aud
	Scopes   []string // scp, split on spaces (delegated tokens)
	Roles    []string // roles (app-only tokens)
	// NotBefore is nbf: when the token became valid (Entra back-dates it five minutes).
	NotBefore time.Time
	// Capabilities is xms_cc: the client capabilities it declared ("cp1" = it handles
	// claims challenges).
	Capabilities []string
}

// Verifier checks a raw bearer token: signature, issuer, and the exp/nbf window on the
// issuer's clock. The caller checks Audience against what it serves.
type Verifier interface {
	Verify(raw string) (Principal, error)
}

// ErrInvalidToken wraps every verification failure.
var ErrInvalidToken = errors.New("invalid token")

// KeyVerifier verifies RS256 JWTs against a set of public keys.
type KeyVerifier struct {
	Keys   func(kid string) (*rsa.PublicKey, bool)
	Issuer func(tenant string) string // expected iss for a tenant
	Now    func() time.Time
}

// Verify implements Verifier.
func (v KeyVerifier) Verify(raw string) (Principal, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := v.Keys(kid)
		if !ok {
			return nil, fmt.Errorf("unknown signing key %q", kid)
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(v.Now), jwt.WithExpirationRequired())
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	p := PrincipalFromClaims(claims)
	if iss, _ := claims["iss"].(string); v.Issuer != nil && iss != v.Issuer(p.TenantID) {
		return Principal{}, fmt.Errorf("%w: issuer %q is not this tenant's", ErrInvalidToken, iss)
	}
	return p, nil
}

// PrincipalFromClaims maps Entra's claim names onto a Principal.
func PrincipalFromClaims(c jwt.MapClaims) Principal {
	str := func(k string) string { s, _ := c[k].(string); return s }
	p := Principal{
		ObjectID: str("oid"),
		TenantID: str("tid"),
		UPN:      str("upn"),
		AppID:    str("appid"),
		Name:     str("name"),
	}
	if p.UPN == "" {
		p.UPN = str("preferred_username")
	}
	if p.AppID == "" {
		p.AppID = str("azp")
	}
	if aud, err := c.GetAudience(); err == nil && len(aud) > 0 {
		p.Audience = aud[0]
	}
	if scp := str("scp"); scp != "" {
		p.Scopes = strings.Fields(scp)
	}
	if nbf, err := c.GetNotBefore(); err == nil && nbf != nil {
		p.NotBefore = nbf.Time
	}
	if cc, ok := c["xms_cc"].([]any); ok {
		for _, v := range cc {
			if s, ok := v.(string); ok {
				p.Capabilities = append(p.Capabilities, s)
			}
		}
	}
	if roles, ok := c["roles"].([]any); ok {
		for _, r := range roles {
			if s, ok := r.(string); ok {
				p.Roles = append(p.Roles, s)
			}
		}
	}
	// Entra marks app-only tokens with idtyp=app; delegated tokens carry scp.
	p.IsUser = str("idtyp") != "app" && (p.Scopes != nil || p.UPN != "")
	return p
}
