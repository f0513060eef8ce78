package devops

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
)

func TestClaimsChallenge(t *testing.T) {
	claims := `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	b64 := base64.StdEncoding.EncodeToString([]byte(claims))
	tests := map[string]struct {
		headers []string
		want    string
	}{
		"Entra's resource-provider form yields the decoded claims": {
			headers: []string{`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="` + b64 + `"`, `Basic realm="https://dev.azure.com/"`, "TFS-Federated"},
			want:    claims},
		"a plain Azure DevOps 401 has no claims": {
			headers: []string{"Bearer authorization_uri=https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", `Basic realm="https://dev.azure.com/"`, "TFS-Federated"}},
		"claims without insufficient_claims are not a challenge": {
			headers: []string{`Bearer error="invalid_token", claims="` + b64 + `"`}},
		"claims that are not base64 JSON are ignored": {
			headers: []string{`Bearer error="insufficient_claims", claims="not base64!"`}},
		"unquoted parameters are read too": {
			headers: []string{`Bearer error=insufficient_claims, claims=` + b64},
			want:    claims},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.headers {
				h.Add("WWW-Authenticate", v)
			}
			if got := claimsChallenge(h); got != tc.want {
				t.Errorf("claims %q, want %q", got, tc.want)
			}
		})
	}
}

// A refused token's claims challenge reaches the caller, which hands it to MSAL.
func TestARefusalWithAClaimsChallengeCarriesItsClaims(t *testing.T) {
	s := newStack(t, devopsemu.RateLimit{})
	ctx := context.Background()
	tok, err := s.tokenFor(svcUPN)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(Options{BaseURL: s.url, HTTPClient: s.http, Token: func(context.Context) (string, error) { return tok, nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(2 * time.Hour) // the emulator answers an expired token with a challenge
	_, err = c.ListPATs(ctx, orgName, ListFilter{})
	var de *Error
	if !errors.As(err, &de) || !errors.Is(err, ErrUnauthorized) || !strings.Contains(de.Claims, `"nbf"`) {
		t.Fatalf("err = %v, want ErrUnauthorized carrying the challenge's claims", err)
	}
	if strings.Contains(err.Error(), de.Claims) {
		t.Error("the claims are printed with the error; they are for MSAL only")
	}
}
