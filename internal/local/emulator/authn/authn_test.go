package authn

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestKeyVerifier(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	v := KeyVerifier{
		Keys:   func(kid string) (*rsa.PublicKey, bool) { return &key.PublicKey, kid == "k1" },
		Issuer: func(tid string) string { return "https://localhost:1/" + tid + "/v2.0" },
		Now:    func() time.Time { return now },
	}
	sign := func(k *rsa.PrivateKey, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	user := jwt.MapClaims{"oid": "o1", "tid": "t1", "upn": "svc@contoso.com", "scp": "user_impersonation", "aud": "499b84ac-1321-427f-aa17-267ca6975798",
		"iss": "https://localhost:1/t1/v2.0", "exp": now.Add(time.Hour).Unix()}
	with := func(k string, val any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for a, b := range user {
			c[a] = b
		}
		c[k] = val
		return c
	}
	tests := map[string]struct {
		raw    string
		ok     bool
		isUser bool
	}{
		"a user token signed by the issuer verifies as a user": {raw: sign(key, user), ok: true, isUser: true},
		"an app-only token verifies as not a user": {raw: sign(key, jwt.MapClaims{"oid": "o2", "tid": "t1", "appid": "a", "idtyp": "app",
			"aud": "https://vault.localhost:1", "iss": "https://localhost:1/t1/v2.0", "exp": now.Add(time.Hour).Unix()}), ok: true},
		"an expired token is refused":                     {raw: sign(key, with("exp", now.Add(-time.Minute).Unix()))},
		"a token signed by another key is refused":        {raw: sign(other, user)},
		"a token from another tenant's issuer is refused": {raw: sign(key, with("iss", "https://localhost:1/t2/v2.0"))},
		"garbage is refused":                              {raw: "not.a.jwt"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := v.Verify(tc.raw)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			if err == nil && p.IsUser != tc.isUser {
				t.Fatalf("IsUser = %v, want %v", p.IsUser, tc.isUser)
			}
		})
	}
}
