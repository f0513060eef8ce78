package devops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// Sentinels to test errors with errors.Is. Every *Error matches exactly one of
// ErrPermanent and ErrTransient, and possibly ErrUnauthorized or rotation.ErrNotFound:
// a PAT (or identity) that does not exist is the core's one not-found, translated here
// at the edge like Key Vault's 404.
var (
	// ErrPermanent: retrying the same request cannot help (policy violation, invalid
	// input, refused credential, not found).
	ErrPermanent = errors.New("devops: permanent failure")
	// ErrTransient: throttling, 5xx or a network failure; retry later (RetryAfter).
	ErrTransient = errors.New("devops: transient failure")
	// ErrUnauthorized: the service refused the credential (401, or a 203/3xx sign-in
	// redirect): a revoked/expired PAT, or a service-account token the API won't take.
	ErrUnauthorized = errors.New("devops: unauthorized")
)

// Error is a failed Azure DevOps call. It never holds a token value.
type Error struct {
	Op         string // e.g. "create PAT"
	Org        string
	StatusCode int    // 0 when no response arrived
	Code       string // patTokenError, when the service answered with one
	TypeKey    string // VSS exception type key, when present
	Message    string // the service's message (X-TFS-ServiceError or the error body)
	Err        error  // underlying transport error, if any
	// Claims is a 401's Continuous Access Evaluation claims challenge (JSON, for MSAL's
	// WithClaims), when the service sent one (challenge.go).
	Claims string

	transient  bool
	kind       error
	retryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "devops: %s", e.Op)
	if e.Org != "" {
		fmt.Fprintf(&b, " in %s", e.Org)
	}
	b.WriteString(": ")
	switch {
	case e.Code != "":
		fmt.Fprintf(&b, "patTokenError %s", e.Code)
	case e.StatusCode != 0:
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	}
	if e.TypeKey != "" {
		fmt.Fprintf(&b, " %s", e.TypeKey)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.retryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.retryAfter)
	}
	return b.String()
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrPermanent/ErrTransient and ErrUnauthorized/rotation.ErrNotFound.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrPermanent:
		return !e.transient
	case ErrTransient:
		return e.transient
	}
	return e.kind != nil && target == e.kind
}

// Permanent reports whether retrying cannot help.
func (e *Error) Permanent() bool { return !e.transient }

// RetryAfter is the wait the service asked for (Retry-After), or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// transientPatErrors are patTokenError codes for server-side failures, not for the
// request: worth retrying.
var transientPatErrors = map[string]bool{
	"failedToIssueAccessToken":  true,
	"failedToUpdateAccessToken": true,
	"failedToReadTenantPolicy":  true,
}

func patTokenError(op, org, code string) *Error {
	e := &Error{Op: op, Org: org, StatusCode: http.StatusOK, Code: code, transient: transientPatErrors[code]}
	switch code {
	case "authorizationNotFound", "tokenNotFound", "hostAuthorizationNotFound":
		e.kind = rotation.ErrNotFound
	case "accessDenied":
		e.Message = "the service account may not create PATs here (is it on the organization's PAT creation allow-list?)"
	case "fullScopePatPolicyViolation", "globalPatPolicyViolation", "patLifespanPolicyViolation":
		e.Message = "refused by an organization PAT policy"
	}
	return e
}

func invalid(op, org, msg string) *Error { return &Error{Op: op, Org: org, Message: msg} }

func decodeError(op, org string, err error) *Error {
	return &Error{Op: op, Org: org, Message: "unexpected response", Err: err}
}

// decodeResponse turns a response into out or an *Error. It is pure (now is the time
// the response arrived) so it can be fuzzed: it strips a UTF-8 BOM, refuses redirects and the 203 sign-in page, reads
// X-TFS-ServiceError and the VSS error body, and classifies the failure.
func decodeResponse(op, org string, status int, h http.Header, raw []byte, out any, now time.Time) error {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	switch {
	case status == http.StatusNonAuthoritativeInfo || status >= 300 && status < 400:
		msg := "the service answered with a sign-in page instead of data: the credential was refused"
		if loc := h.Get("Location"); loc != "" {
			if u, err := url.Parse(loc); err == nil {
				msg = fmt.Sprintf("redirected to %s (not followed): the credential was refused", u.Host+u.Path)
			}
		}
		return &Error{Op: op, Org: org, StatusCode: status, Message: msg, kind: ErrUnauthorized}
	case status >= 200 && status < 300:
		if out == nil || len(bytes.TrimSpace(raw)) == 0 {
			if out != nil && status != http.StatusNoContent {
				return decodeError(op, org, errors.New("empty response body"))
			}
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return decodeError(op, org, fmt.Errorf("response is not the expected JSON: %w", err))
		}
		return nil
	}
	e := &Error{Op: op, Org: org, StatusCode: status}
	var vss struct {
		Message string `json:"message"`
		TypeKey string `json:"typeKey"`
	}
	if json.Unmarshal(raw, &vss) == nil {
		e.Message, e.TypeKey = vss.Message, vss.TypeKey
	}
	if se := h.Get("X-TFS-ServiceError"); se != "" && e.Message == "" {
		if m, err := url.QueryUnescape(se); err == nil {
			e.Message = m
		} else {
			e.Message = se
		}
	}
	if len(e.Message) > 500 {
		e.Message = e.Message[:500] + "…"
	}
	switch {
	case status == http.StatusTooManyRequests:
		e.transient = true
	case status >= 500:
		e.transient = true
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.kind = ErrUnauthorized
		e.Claims = claimsChallenge(h)
	case status == http.StatusNotFound:
		e.kind = rotation.ErrNotFound
	case status == http.StatusRequestTimeout:
		e.transient = true
	}
	if e.transient {
		e.retryAfter = parseRetryAfter(h.Get("Retry-After"), now)
	}
	return e
}

// parseRetryAfter reads delay-seconds (the form Azure DevOps sends) or an HTTP date
// (relative to now).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 || s > 24*3600 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 && d <= 24*time.Hour {
			return d
		}
	}
	return 0
}
