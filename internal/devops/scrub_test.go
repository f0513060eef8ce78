package devops

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/secret"
)

// echoingDevOps answers every request 401 with the request's Authorization header
// quoted back in the VSS error body and in X-TFS-ServiceError, as a careless server or
// proxy might.
func echoingDevOps(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("X-TFS-ServiceError", url.QueryEscape("refused "+auth))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"message": "TF400813: the credential " + auth + " (" + strings.TrimPrefix(strings.TrimPrefix(auth, "Bearer "), "Basic ") + ") is not authorized",
			"typeKey": "UnauthorizedRequestException",
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestErrorsNeverCarryTheCredentialTheClientSent(t *testing.T) {
	srv := echoingDevOps(t)
	const bearer = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzdmMifQ.c2lnbmF0dXJl"
	c, err := NewClient(Options{BaseURL: srv.URL, HTTPClient: srv.Client(),
		Token: func(context.Context) (string, error) { return bearer, nil }})
	if err != nil {
		t.Fatal(err)
	}
	pat := strings.Repeat("abcdefgh23", 5) + "zz" // 52 characters of base32
	basic := base64.StdEncoding.EncodeToString([]byte(":" + pat))
	ctx := context.Background()
	cases := map[string]struct {
		call      func() error
		forbidden []string
	}{
		"creating a PAT with a bearer token the server echoes": {
			call: func() error {
				_, err := c.CreatePAT(ctx, "contoso", CreateRequest{DisplayName: "patrol x", Scope: "vso.build", ValidTo: time.Now().Add(time.Hour)})
				return err
			},
			forbidden: []string{bearer, "c2lnbmF0dXJl"},
		},
		"verifying a PAT whose Basic form the server echoes": {
			call: func() error {
				_, err := c.VerifyPAT(ctx, "contoso", secret.New(pat))
				return err
			},
			forbidden: []string{pat, basic, strings.TrimRight(basic, "=")},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrPermanent) {
				t.Fatalf("err = %v, want a permanent unauthorized failure", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.TypeKey != "UnauthorizedRequestException" {
				t.Errorf("the error lost its type or type key: %#v", err)
			}
			for _, f := range tc.forbidden {
				if strings.Contains(err.Error(), f) {
					t.Errorf("error text carries a credential %q: %s", f, err)
				}
			}
			if !strings.Contains(err.Error(), secret.Redacted) {
				t.Errorf("error text shows no sign of redaction: %s", err)
			}
		})
	}
}

func TestScrubRemovesCredentialShapes(t *testing.T) {
	classic := strings.Repeat("q7", 26)
	current := strings.Repeat("Ab3", 28)
	cases := map[string]struct {
		in, gone string
	}{
		"a bearer header value":          {"got Authorization: Bearer abc.def-ghi~jkl", "abc.def-ghi~jkl"},
		"a basic header value":           {"got basic OnBhdHBhdA== from you", "OnBhdHBhdA=="},
		"a bare JWT":                     {"token eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig was refused", "eyJhbGciOiJub25lIn0"},
		"a classic 52-character PAT":     {"PAT " + classic + " revoked", classic},
		"a current 84-character PAT":     {"PAT " + current + " revoked", current},
		"a value the client knows about": {"hunter2-is-my-token leaked", "hunter2-is-my-token"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := scrub(&Error{Op: "op", Message: tc.in}, "hunter2-is-my-token")
			if strings.Contains(got.Error(), tc.gone) {
				t.Errorf("scrub(%q) = %q, still holding %q", tc.in, got, tc.gone)
			}
		})
	}
	if got := scrubText("TF400813: not authorized for contoso", "x"); got != "TF400813: not authorized for contoso" {
		t.Errorf("an ordinary message changed: %q", got)
	}
}
