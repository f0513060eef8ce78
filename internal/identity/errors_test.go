package identity

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// entraError builds the error MSAL returns for a 400 from the token endpoint: its text
// carries the response body after a newline.
func entraError(code int, kind string) error {
	body := fmt.Sprintf(`{"error":%q,"error_description":"AADSTS%d: something. Trace ID: x","error_codes":[%d]}`, kind, code, code)
	return msalerrors.CallErr{
		Resp: &http.Response{StatusCode: 400},
		Err:  fmt.Errorf("http call(https://localhost:1/t/oauth2/v2.0/token)(POST) error: reply status code was 400:\n%s", body),
	}
}

func TestClassify(t *testing.T) {
	tests := map[string]struct {
		err      error
		kind     Kind
		code     int
		fixHints string
	}{
		"a disabled account names the account and says to enable it": {
			err: entraError(50057, "invalid_grant"), kind: Disabled, code: 50057, fixHints: "disabled",
		},
		"MFA demanded by Conditional Access is its own kind": {
			err: entraError(50076, "invalid_grant"), kind: MFARequired, code: 50076, fixHints: "patrol login --service-account svc@contoso.com",
		},
		"an expired refresh token means signing in again": {
			err: entraError(700082, "invalid_grant"), kind: SignInExpired, code: 700082, fixHints: "patrol login --service-account svc@contoso.com",
		},
		"a wrong stored password says to update the password secret": {
			err: entraError(50126, "invalid_grant"), kind: BadPassword, code: 50126, fixHints: "password secret",
		},
		"an unknown invalid_grant is treated as an expired sign-in": {
			err: entraError(12345, "invalid_grant"), kind: SignInExpired, code: 12345, fixHints: "patrol login",
		},
		"an app registration without consent says which permissions to grant": {
			err: entraError(65001, "invalid_grant"), kind: ConsentRequired, code: 65001, fixHints: "vso.pats and vso.pats_manage",
		},
		"a network failure is not a sign-in problem": {
			err: errors.New("dial tcp: connection refused"), kind: Other,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := classify("svc@contoso.com", tc.err)
			if got.Kind != tc.kind || got.Code != tc.code {
				t.Fatalf("classify = kind %v code %d, want %v %d", got.Kind, got.Code, tc.kind, tc.code)
			}
			msg := got.Error()
			if !strings.Contains(msg, "svc@contoso.com") || !strings.Contains(msg, tc.fixHints) {
				t.Fatalf("message %q does not name the account and the fix %q", msg, tc.fixHints)
			}
			if strings.Contains(msg, "Trace ID") {
				t.Fatalf("message %q copies Entra's raw answer", msg)
			}
		})
	}
}

func TestTokenNeverPrintsItsValue(t *testing.T) {
	tok := Token{value: "eyJhbGciOi.secret.value"}
	for _, s := range []string{tok.String(), fmt.Sprint(tok), fmt.Sprintf("%v %+v", tok, tok), tok.LogValue().String()} {
		if strings.Contains(s, "secret") {
			t.Fatalf("token value printed: %q", s)
		}
	}
}
