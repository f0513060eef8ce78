package entra

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
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
	Code         string // authorization_code grant (authorize.go)
	CodeVerifier string
	RedirectURI  string
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
		Code:         v.Get("code"),
		CodeVerifier: v.Get("code_verifier"),
		RedirectURI:  v.Get("redirect_uri"),
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

// AADSTS codes the emulator answers with. The texts follow the ones Entra returns
// (protocols.md §4.7 and the public error-code reference); clients must branch on the
// numbers and the OAuth error, never on the prose.
const (
	CodeUserNotFound          = 50034   // invalid_grant
	CodeUserDisabled          = 50057   // invalid_grant
	CodeMFARequired           = 50076   // invalid_grant, suberror basic_action
	CodeInvalidPassword       = 50126   // invalid_grant
	CodeRefreshTokenRevoked   = 50173   // invalid_grant (password reset, RevokeRefreshTokens)
	CodeRefreshTokenExpired   = 700082  // invalid_grant (inactivity, ExpireRefreshTokens)
	CodeTenantNotFound        = 90002   // invalid_tenant
	CodeAppNotFound           = 700016  // unauthorized_client
	CodeInvalidClientSecret   = 7000215 // invalid_client, HTTP 401
	CodeClientAuthMissing     = 7000218 // invalid_client, HTTP 401
	CodePublicClientSecret    = 700025  // invalid_client, HTTP 401
	CodeAssertionRejected     = 700027  // invalid_client, HTTP 401
	CodeMissingParameter      = 900144  // invalid_request
	CodeMalformedRequest      = 9002313 // invalid_request, or invalid_grant for an unknown refresh token
	CodeUnsupportedGrantType  = 70003   // unsupported_grant_type
	CodeInvalidGrant          = 70000   // invalid_grant, authorization_declined, bad_verification_code
	CodeAuthorizationPending  = 70016   // authorization_pending
	CodeDeviceCodeExpired     = 70019   // expired_token
	CodeInvalidScopeValue     = 70011   // invalid_scope
	CodeClientCredentialScope = 1002012 // invalid_scope
	CodeMultipleResources     = 28000   // invalid_scope
	CodeThrottled             = 90055   // temporarily_unavailable (fault injection, 429)
	CodeServiceUnavailable    = 90033   // temporarily_unavailable (fault injection, 5xx)
)

// aadError is one Entra token-endpoint failure before it is dressed with the per-request
// trace/correlation ids and timestamp.
type aadError struct {
	Status      int    // HTTP status: 400, or 401 for invalid_client
	Err         string // OAuth error ("invalid_grant", …)
	Code        int    // AADSTS number
	Description string // text after "AADSTS<code>: "
	Suberror    string // e.g. basic_action for MFA
}

func (e *aadError) Error() string { return fmt.Sprintf("AADSTS%d: %s", e.Code, e.Description) }

func invalidGrant(code int, format string, args ...any) *aadError {
	return &aadError{Status: http.StatusBadRequest, Err: "invalid_grant", Code: code, Description: fmt.Sprintf(format, args...)}
}

func invalidRequest(code int, format string, args ...any) *aadError {
	return &aadError{Status: http.StatusBadRequest, Err: "invalid_request", Code: code, Description: fmt.Sprintf(format, args...)}
}

func invalidClient(code int, format string, args ...any) *aadError {
	return &aadError{Status: http.StatusUnauthorized, Err: "invalid_client", Code: code, Description: fmt.Sprintf(format, args...)}
}

func invalidScope(code int, format string, args ...any) *aadError {
	return &aadError{Status: http.StatusBadRequest, Err: "invalid_scope", Code: code, Description: fmt.Sprintf(format, args...)}
}

func missingParameter(name string) *aadError {
	return invalidRequest(CodeMissingParameter, "The request body must contain the following parameter: '%s'.", name)
}

func tenantNotFound(tenant string) *aadError {
	return &aadError{Status: http.StatusBadRequest, Err: "invalid_tenant", Code: CodeTenantNotFound,
		Description: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant)}
}

func appNotFound(clientID, tenant string) *aadError {
	return &aadError{Status: http.StatusBadRequest, Err: "unauthorized_client", Code: CodeAppNotFound,
		Description: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant)}
}

// faultError is the body an injected fault carries: Entra's throttling and transient
// shapes, so clients see the same JSON they would see from the service.
func faultError(status int) *aadError {
	switch {
	case status == http.StatusTooManyRequests:
		return &aadError{Status: status, Err: "temporarily_unavailable", Code: CodeThrottled,
			Description: "TenantThrottlingError - There are too many incoming requests. This exception is thrown for blocked tenants."}
	case status >= 500:
		return &aadError{Status: status, Err: "temporarily_unavailable", Code: CodeServiceUnavailable,
			Description: "A transient error has occurred. Please try again."}
	default:
		return &aadError{Status: status, Err: "invalid_request", Code: CodeMalformedRequest,
			Description: "Invalid request. Request is malformed or invalid."}
	}
}

// aadErrorBody is the JSON Entra returns on a failed token request (protocols.md §4.7).
type aadErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
	Suberror         string `json:"suberror,omitempty"`
}

// aadTimestamp is Entra's error timestamp format ("2025-02-27 22:38:35Z").
const aadTimestamp = "2006-01-02 15:04:05Z"

// render builds the wire body. Entra echoes the client's client-request-id as the
// correlation id, which lets MSAL users match a failure to their own logs.
func (e *aadError) render(now time.Time, correlationID, errorURIBase string) aadErrorBody {
	if _, err := uuid.Parse(correlationID); err != nil {
		correlationID = uuid.NewString()
	}
	trace := uuid.NewString()
	ts := now.UTC().Format(aadTimestamp)
	return aadErrorBody{
		Error: e.Err,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			e.Code, e.Description, trace, correlationID, ts),
		ErrorCodes:    []int{e.Code},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: correlationID,
		ErrorURI:      errorURIBase + "?code=" + strconv.Itoa(e.Code),
		Suberror:      e.Suberror,
	}
}

// writeJSON answers with Entra's JSON conventions: no caching of anything token-related.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	// The client may have gone; there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}
