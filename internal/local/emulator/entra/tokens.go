package entra

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// signer holds the tenant's token-signing key.
type signer struct {
	key *rsa.PrivateKey
	kid string
}

func newSigner(key *rsa.PrivateKey) (*signer, error) {
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("entra: signing key: %w", err)
		}
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("entra: signing key: %w", err)
	}
	sum := sha256.Sum256(der)
	// Entra's kid is a base64url thumbprint; a truncated SHA-256 of the key looks alike.
	return &signer{key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:20])}, nil
}

func (s *signer) sign(claims jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = s.kid
	t.Header["x5t"] = s.kid
	return t.SignedString(s.key)
}

// jwk is the public key as the JWKS endpoint publishes it.
type jwk struct {
	Kty    string `json:"kty"`
	Use    string `json:"use"`
	Kid    string `json:"kid"`
	X5t    string `json:"x5t"`
	N      string `json:"n"`
	E      string `json:"e"`
	Alg    string `json:"alg"`
	Issuer string `json:"issuer"`
}

func (s *signer) jwk(issuer string) jwk {
	return jwk{
		Kty: "RSA", Use: "sig", Kid: s.kid, X5t: s.kid, Alg: "RS256", Issuer: issuer,
		N: base64.RawURLEncoding.EncodeToString(s.key.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(s.key.E)).Bytes()),
	}
}

// subject is who a token is issued to: a user (delegated) or an app (app-only).
type subject struct {
	User *User           // nil for app-only tokens
	App  AppRegistration // the client; for app-only tokens also the subject
}

// issue describes one token response before signing.
type issue struct {
	Subject subject
	Tenant  string
	Scope   scopeRequest
	// Granted is the scp of a user token: the consented permissions (applyConsent).
	Granted  []string
	Lifetime time.Duration
	// Response shape.
	IDToken      bool
	ClientInfo   bool
	RefreshToken bool
	EchoScope    bool
	// MFA records whether the sign-in satisfied MFA (interactive), carried into refresh tokens.
	MFA bool
	// MIResourceID is xms_mirid for user-assigned managed identities.
	MIResourceID string
	// Claims is what the request's claims parameter asked of the access token.
	Claims requestedClaims
}

// accessClaims builds the access token's claims. The names follow Entra's v2 tokens plus
// the v1 names (appid, upn) that Azure DevOps and other consumers still read.
func accessClaims(is issue, issuer string, now time.Time) jwt.MapClaims {
	// Entra back-dates iat/nbf by five minutes to absorb clock skew.
	nbf := now.Add(-5 * time.Minute)
	c := jwt.MapClaims{
		"aud":   is.Scope.audience(),
		"iss":   issuer,
		"iat":   nbf.Unix(),
		"nbf":   nbf.Unix(),
		"exp":   now.Add(is.Lifetime).Unix(),
		"tid":   is.Tenant,
		"appid": is.Subject.App.ClientID,
		"azp":   is.Subject.App.ClientID,
		"uti":   uuid.NewString(),
		"ver":   "2.0",
	}
	applyRequestedClaims(c, is.Claims, now)
	if u := is.Subject.User; u != nil {
		c["idtyp"] = "user"
		c["oid"] = u.ObjectID
		c["sub"] = u.ObjectID
		c["upn"] = u.UPN
		c["preferred_username"] = u.UPN
		c["name"] = u.DisplayName
		c["scp"] = strings.Join(is.Granted, " ")
		c["azpacr"] = "0"
		if is.MFA {
			c["amr"] = []string{"pwd", "mfa"}
		} else {
			c["amr"] = []string{"pwd"}
		}
		return c
	}
	a := is.Subject.App
	c["idtyp"] = "app"
	c["oid"] = a.ObjectID
	c["sub"] = a.ObjectID
	c["app_displayname"] = a.DisplayName
	if a.ManagedIdentity {
		c["azpacr"] = "2"
	} else {
		c["azpacr"] = "1"
	}
	if len(a.Roles) > 0 {
		c["roles"] = a.Roles
	}
	if is.MIResourceID != "" {
		c["xms_mirid"] = is.MIResourceID
	}
	return c
}

// idClaims builds the id_token MSAL reads to create its account (§5.5): oid, tid,
// preferred_username. MSAL does not check its signature; it is signed anyway.
func idClaims(is issue, issuer string, now time.Time) jwt.MapClaims {
	u := is.Subject.User
	return jwt.MapClaims{
		"aud":                is.Subject.App.ClientID,
		"iss":                issuer,
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(time.Hour).Unix(),
		"oid":                u.ObjectID,
		"sub":                u.ObjectID,
		"tid":                is.Tenant,
		"preferred_username": u.UPN,
		"name":               u.DisplayName,
		"ver":                "2.0",
	}
}

// clientInfo is base64url WITHOUT padding: MSAL decodes it with RawURLEncoding.
func clientInfo(oid, tid string) string {
	b, _ := json.Marshal(struct {
		UID  string `json:"uid"`
		UTID string `json:"utid"`
	}{oid, tid})
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenResponse is the success body of the token endpoint (§5.5).
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

// randomToken returns an opaque, URL-safe random value (refresh tokens, device codes).
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenHash is how refresh tokens and device codes are stored: the emulator keeps only
// hashes, so nothing it holds (or an inspection dump shows) can be replayed.
func tokenHash(v string) [32]byte { return sha256.Sum256([]byte(v)) }
