package devops

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/secret"
)

// FuzzDecodeResponse feeds arbitrary statuses, headers and bodies to the response
// decoder: it must never panic, every failure must be an *Error classified exactly one
// way, and a patTokenError other than "none" must never pass as success.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(200, "", "", `{"patToken":{"displayName":"n","validTo":"2020-12-01T23:46:23.32Z","scope":"app_token","targetAccounts":["38aaa865-2c70-4bf7-a308-0c6539c38c1a"],"validFrom":"2020-11-02T22:56:52.1033333Z","authorizationId":"4ab5764f-4193-4f1d-b995-64144880b7d7","token":"dip55dwf4vpitomw63jzvomefmi2jluguprzwwqwuc6xq4fhocwq"},"patTokenError":"none"}`)
	f.Add(200, "", "", "\ufeff{\"patToken\":null,\"patTokenError\":\"fullScopePatPolicyViolation\"}")
	f.Add(429, "30", "TF400733%3A%20blocked", `{"$id":"1","message":"TF400733: blocked","typeKey":"RequestBlockedException"}`)
	f.Add(503, "Fri, 27 Nov 2026 23:00:00 GMT", "", "")
	f.Add(203, "", "", "<html>Sign In</html>")
	f.Add(302, "", "", "")
	f.Add(401, "", "%zz", `{"message":1}`)
	f.Add(200, "", "", `{"patToken":{"authorizationId":"x","validFrom":"bad"},"patTokenError":"none"}`)
	f.Fuzz(func(t *testing.T, status int, retryAfter, serviceError, body string) {
		if status < 100 || status > 999 {
			return
		}
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("X-TFS-ServiceError", serviceError)
		h.Set("Location", "https://login.example/"+retryAfter)
		var res patTokenResult
		err := decodeResponse("create PAT", "contoso", status, h, []byte(body), &res, time.Date(2026, 11, 27, 22, 59, 0, 0, time.UTC))
		if err == nil {
			if status < 200 || status > 299 || status == 203 {
				t.Fatalf("status %d decoded as success", status)
			}
			p, perr := res.pat("create PAT", "contoso", true)
			if perr == nil && (p.Token.IsZero() || p.AuthorizationID == "") {
				t.Fatal("a create result without token or id was accepted")
			}
			if perr == nil && res.PatTokenError != "" && res.PatTokenError != "none" {
				t.Fatalf("patTokenError %q accepted", res.PatTokenError)
			}
			err = perr
			if err == nil {
				if p.Token.String() != secret.Redacted {
					t.Fatal("Secret.String reveals the value")
				}
				return
			}
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T is not *Error", err)
		}
		if errors.Is(err, ErrPermanent) == errors.Is(err, ErrTransient) {
			t.Fatalf("error %v is both or neither permanent and transient", err)
		}
		if e.RetryAfter() < 0 {
			t.Fatal("negative RetryAfter")
		}
		_ = err.Error()
	})
}

func FuzzParseTime(f *testing.F) {
	f.Add("2020-12-01T23:46:23.32Z")
	f.Add("2020-11-02T22:56:52.1033333")
	f.Add("2026-12-27T00:00:00+01:00")
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseTime(s)
		if err == nil && tm.Location().String() != "UTC" {
			t.Fatalf("%q parsed to a non-UTC time", s)
		}
	})
}

// FuzzClaimsChallenge: any WWW-Authenticate value parses without panicking or looping,
// and what it yields is a JSON object for MSAL.
func FuzzClaimsChallenge(f *testing.F) {
	f.Add(`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ=="`)
	f.Add(`Bearer error=insufficient_claims, claims=eyJ9`)
	f.Add(`Bearer a=", b="`)
	f.Add(`Bearer =,=,"`)
	f.Add("TFS-Federated")
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Add("WWW-Authenticate", v)
		if c := claimsChallenge(h); c != "" && !strings.HasPrefix(strings.TrimSpace(c), "{") {
			t.Fatalf("claims %q from %q is not a JSON object", c, v)
		}
	})
}
