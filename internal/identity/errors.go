package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// Kind says why a service account could not get a token.
type Kind int

// The kinds of sign-in failure, each with its own fix.
const (
	Other           Kind = iota
	NotSignedIn          // no cached sign-in for the account
	SignInExpired        // the refresh token expired or was revoked (AADSTS700082, 50173, 70043)
	MFARequired          // Conditional Access demands MFA (AADSTS50076, 50079)
	Disabled             // the account is disabled (AADSTS50057)
	BadPassword          // the stored password is wrong (AADSTS50126)
	PasswordExpired      // AADSTS50055
	Locked               // AADSTS50053
	WrongAccount         // a sign-in (browser or device code) completed as someone else
)

func (k Kind) String() string {
	return [...]string{"sign-in failed", "not signed in", "sign-in expired", "MFA required", "account disabled",
		"wrong password", "password expired", "account locked", "signed in as another account"}[k]
}

// SignInError says which service account cannot get a token, why, and what fixes it. It
// never carries token or password values, nor MSAL's raw response text.
type SignInError struct {
	Account string
	Kind    Kind
	Code    int    // AADSTS code when Entra answered with one
	Detail  string // safe, short context
}

func (e *SignInError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "service account %s: %s", e.Account, e.Kind)
	if e.Code != 0 {
		fmt.Fprintf(&b, " (AADSTS%d)", e.Code)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if fix := e.Fix(); fix != "" {
		b.WriteString("; " + fix)
	}
	return b.String()
}

// Fix is the operator's next step.
func (e *SignInError) Fix() string {
	login := fmt.Sprintf("run `patrol login --service-account %s`", e.Account)
	switch e.Kind {
	case NotSignedIn, SignInExpired:
		return login
	case WrongAccount:
		return login + " and sign in as " + e.Account + " (in the browser, choose \"Use another account\" if another one is offered)"
	case MFARequired:
		return "exclude the service account from MFA Conditional Access for Azure DevOps, or sign it in with MFA: " + login
	case Disabled:
		return "the account is disabled in Entra ID: enable it or set another patrol-service-account"
	case BadPassword, PasswordExpired:
		return "update its password secret in Key Vault or " + login
	case Locked:
		return "unlock the account in Entra ID"
	}
	return ""
}

// Permanent reports that retrying without an operator's action cannot help.
func (e *SignInError) Permanent() bool { return e.Kind != Other }

// classify maps an MSAL error to a SignInError by the AADSTS code in Entra's answer.
func classify(account string, err error) *SignInError {
	var se *SignInError
	if errors.As(err, &se) {
		return se
	}
	out := &SignInError{Account: account, Kind: Other}
	var ce msalerrors.CallErr
	if !errors.As(err, &ce) || ce.Resp == nil {
		out.Detail = "no answer from Entra ID"
		if strings.Contains(err.Error(), "no account") {
			out.Kind = NotSignedIn
			out.Detail = ""
		}
		return out
	}
	var body struct {
		Error      string `json:"error"`
		ErrorCodes []int  `json:"error_codes"`
	}
	if ce.Resp.Body != nil {
		if b, rerr := io.ReadAll(io.LimitReader(ce.Resp.Body, 1<<16)); rerr == nil {
			_ = json.Unmarshal(b, &body)
		}
	}
	// MSAL has already read the body into its own error text; that text is never copied
	// here because it echoes Entra's full answer.
	if len(body.ErrorCodes) == 0 && ce.Err != nil {
		// MSAL drained the body into its error text: "... reply status code was 400:\n{json}".
		text := ce.Err.Error()
		if i := strings.Index(text, "{"); i >= 0 {
			_ = json.Unmarshal([]byte(text[i:]), &body)
		}
		if len(body.ErrorCodes) == 0 {
			body.ErrorCodes = codesIn(text)
		}
	}
	out.Detail = body.Error
	if len(body.ErrorCodes) > 0 {
		out.Code = body.ErrorCodes[0]
	}
	switch out.Code {
	case 50057:
		out.Kind = Disabled
	case 50076, 50079, 50158:
		out.Kind = MFARequired
	case 700082, 50173, 70043, 700084, 50132:
		out.Kind = SignInExpired
	case 50126:
		out.Kind = BadPassword
	case 50055:
		out.Kind = PasswordExpired
	case 50053:
		out.Kind = Locked
	case 70000:
		out.Kind = SignInExpired
	}
	if out.Kind == Other && body.Error == "invalid_grant" {
		out.Kind = SignInExpired
	}
	return out
}

// codesIn finds "AADSTS<digits>" codes in MSAL's error text (it holds the response body).
func codesIn(s string) []int {
	var out []int
	for {
		i := strings.Index(s, "AADSTS")
		if i < 0 {
			return out
		}
		s = s[i+6:]
		n, j := 0, 0
		for j < len(s) && j < 9 && s[j] >= '0' && s[j] <= '9' {
			n = n*10 + int(s[j]-'0')
			j++
		}
		if j > 0 {
			out = append(out, n)
		}
	}
}
