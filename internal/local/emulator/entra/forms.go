package entra

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxFormBytes bounds a token or device-code request body. Entra's requests are a few
// kilobytes at most (a claims challenge is the largest part).
const maxFormBytes = 64 << 10

// tokenRequest is a decoded POST to /{tenant}/oauth2/v2.0/token.
type tokenRequest struct {
	GrantType    string
	ClientID     string
	ClientSecret string
	Scope        string
	Username     string
	Password     string
	DeviceCode   string
	RefreshToken string
	Claims       string
	ClientInfo   bool // client_info=1: answer with client_info so MSAL can key its cache
	Assertion    bool // a client_assertion was sent (certificate/federated credential)
}

// deviceCodeRequest is a decoded POST to /{tenant}/oauth2/v2.0/devicecode.
type deviceCodeRequest struct {
	ClientID string
	Scope    string
	Claims   string
}

// approvalForm is a decoded POST to the /devicelogin page.
type approvalForm struct {
	UserCode string
	Username string
	Password string
	Deny     bool
}

// parseForm checks the content type and decodes a urlencoded body. Entra reads only
// urlencoded bodies; a parameter given twice is ambiguous and refused rather than
// resolved by position.
func parseForm(contentType string, body []byte) (url.Values, *aadError) {
	if len(body) > maxFormBytes {
		return nil, invalidRequest(CodeMalformedRequest, "Invalid request. Request is malformed or invalid. The request body exceeds %d bytes.", maxFormBytes)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest(CodeMalformedRequest, "Invalid request. Request is malformed or invalid. The body must be application/x-www-form-urlencoded.")
	}
	if !utf8.Valid(body) {
		return nil, invalidRequest(CodeMalformedRequest, "Invalid request. Request is malformed or invalid. The body is not UTF-8.")
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, invalidRequest(CodeMalformedRequest, "Invalid request. Request is malformed or invalid. The body is not a valid form.")
	}
	for k, vs := range v {
		if len(vs) > 1 {
			return nil, invalidRequest(CodeMalformedRequest, "Invalid request. Request is malformed or invalid. The parameter '%s' appears more than once.", sanitize(k))
		}
	}
	return v, nil
}

// decodeTokenForm decodes the token endpoint's form. Grant-specific required fields are
// checked by the grant handlers, which know which ones apply.
func decodeTokenForm(contentType string, body []byte) (tokenRequest, *aadError) {
	v, aerr := parseForm(contentType, body)
	if aerr != nil {
		return tokenRequest{}, aerr
	}
	req := tokenRequest{
		GrantType:    v.Get("grant_type"),
		ClientID:     v.Get("client_id"),
		ClientSecret: v.Get("client_secret"),
		Scope:        v.Get("scope"),
		Username:     v.Get("username"),
		Password:     v.Get("password"),
		DeviceCode:   v.Get("device_code"),
		RefreshToken: v.Get("refresh_token"),
		Claims:       v.Get("claims"),
		ClientInfo:   v.Get("client_info") == "1",
		Assertion:    v.Get("client_assertion") != "",
	}
	if req.GrantType == "" {
		return tokenRequest{}, missingParameter("grant_type")
	}
	if req.ClientID == "" {
		return tokenRequest{}, missingParameter("client_id")
	}
	if aerr := checkClaims(req.Claims); aerr != nil {
		return tokenRequest{}, aerr
	}
	return req, nil
}

// decodeDeviceCodeForm decodes the device authorization request.
func decodeDeviceCodeForm(contentType string, body []byte) (deviceCodeRequest, *aadError) {
	v, aerr := parseForm(contentType, body)
	if aerr != nil {
		return deviceCodeRequest{}, aerr
	}
	req := deviceCodeRequest{ClientID: v.Get("client_id"), Scope: v.Get("scope"), Claims: v.Get("claims")}
	if req.ClientID == "" {
		return deviceCodeRequest{}, missingParameter("client_id")
	}
	if strings.TrimSpace(req.Scope) == "" {
		return deviceCodeRequest{}, missingParameter("scope")
	}
	if aerr := checkClaims(req.Claims); aerr != nil {
		return deviceCodeRequest{}, aerr
	}
	return req, nil
}

// decodeApprovalForm decodes the approval page's form. Its errors are shown to a person.
func decodeApprovalForm(contentType string, body []byte) (approvalForm, error) {
	v, aerr := parseForm(contentType, body)
	if aerr != nil {
		return approvalForm{}, fmt.Errorf("the form could not be read: %s", aerr.Description)
	}
	f := approvalForm{
		UserCode: normalizeUserCode(v.Get("user_code")),
		Username: strings.TrimSpace(v.Get("username")),
		Password: v.Get("password"),
		Deny:     v.Get("action") == "deny",
	}
	if f.UserCode == "" {
		return approvalForm{}, fmt.Errorf("enter the code shown on your device")
	}
	if !f.Deny && f.Username == "" {
		return approvalForm{}, fmt.Errorf("enter the account to sign in with")
	}
	return f, nil
}

// checkClaims accepts an absent claims parameter or a JSON object (a CAE "xms_cc"
// capability or a claims challenge). The emulator does not act on it.
func checkClaims(claims string) *aadError {
	if claims == "" {
		return nil
	}
	var m map[string]any
	if json.Unmarshal([]byte(claims), &m) != nil {
		return invalidRequest(CodeMalformedRequest, "Invalid request. Request is malformed or invalid. The 'claims' parameter is not a JSON object.")
	}
	return nil
}

// sanitize makes client-supplied text safe to quote in an error: printable, short.
func sanitize(s string) string {
	const max = 64
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= max {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
