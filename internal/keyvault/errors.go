package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// Error is a failed Key Vault call, translated at this edge so the core can classify
// it (Permanent, RetryAfter, errors.Is(err, rotation.ErrNotFound)). It holds the
// status, Key Vault's error codes and a summary of the message — never the request
// URL's query, headers or any secret value (error bodies carry none, but azcore's own
// ResponseError text dumps the whole response, so it is not kept).
type Error struct {
	Status int
	// Code and Inner are Key Vault's error.code and error.innererror.code
	// (e.g. Forbidden / ForbiddenByRbac).
	Code, Inner string
	Message     string
	// Err is the transport error when no response arrived.
	Err error

	permanent  bool
	retryAfter time.Duration
	kind       error // rotation.ErrNotFound, rotation.ErrUnmanaged or nil
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	code := e.Code
	if e.Inner != "" {
		code += " (" + e.Inner + ")"
	}
	if code != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(code)
	}
	if e.Message != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	if e.retryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.retryAfter)
	}
	return b.String()
}

// Unwrap exposes the sentinel (rotation.ErrNotFound…) or the transport error.
func (e *Error) Unwrap() error {
	if e.kind != nil {
		return e.kind
	}
	return e.Err
}

// Permanent reports that retrying the same call cannot help.
func (e *Error) Permanent() bool { return e.permanent }

// RetryAfter is the wait the service asked for (429/503 Retry-After), or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// translate turns what azsecrets returned into an *Error (or passes cancellation
// through untouched, so the core sees context.Canceled as such).
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// No answer (refused or dropped connection, TLS failure after azcore's own
		// retries): worth another attempt later.
		return &Error{Err: err}
	}
	var body []byte
	var header http.Header
	if re.RawResponse != nil {
		body, _ = runtime.Payload(re.RawResponse)
		header = re.RawResponse.Header
	}
	e := classify(re.StatusCode, body, header, time.Now())
	if e.Code == "" {
		e.Code = code(re.ErrorCode)
	}
	return e
}

// classify is the pure part of translate: status, body and headers of an error
// response → *Error. It is fuzzed.
func classify(status int, body []byte, h http.Header, now time.Time) *Error {
	e := &Error{Status: status}
	var w struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &w) == nil {
		e.Code, e.Message = code(w.Error.Code), w.Error.Message
		if w.Error.InnerError != nil {
			e.Inner = code(w.Error.InnerError.Code)
		}
	}
	switch {
	case status == http.StatusNotFound:
		e.kind, e.permanent = rotation.ErrNotFound, true
		e.Message = clip(oneLine(e.Message), 200)
	case status == http.StatusForbidden:
		e.permanent = true
		e.Message = summariseForbidden(e.Inner, e.Message)
	case status == http.StatusUnauthorized:
		e.permanent = true
		e.Message = "the vault refused patrol's credential (check the workload identity and its tenant)"
	case status == http.StatusTooManyRequests || status >= 500:
		e.retryAfter = retryAfter(h, now)
		e.Message = clip(oneLine(e.Message), 200)
	case status == http.StatusRequestTimeout:
		e.Message = clip(oneLine(e.Message), 200)
	default:
		// 400 (bad parameter), 409 (deleted but recoverable) and the rest: the same
		// request gets the same answer.
		e.permanent = true
		e.Message = clip(oneLine(e.Message), 300)
	}
	return e
}

// Compiled on first use: they only read refusals, and the handler's start-up counts.
var (
	rbacAction = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`Action: '([^']+)'`) })
	rbacCaller = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`oid=([0-9A-Fa-f-]{1,64})`) })
)

// summariseForbidden turns Key Vault's multi-line RBAC refusal into one line naming
// the caller, the action and the fix.
func summariseForbidden(inner, msg string) string {
	switch inner {
	case "ForbiddenByRbac":
		s := "access denied by Azure RBAC"
		if m := rbacCaller().FindStringSubmatch(msg); m != nil {
			s += ": principal " + m[1]
		}
		if m := rbacAction().FindStringSubmatch(msg); m != nil {
			s += " may not " + m[1]
		}
		return s + " (assign it Key Vault Secrets Officer on the vault)"
	case "SecretDisabled":
		return "the secret's current version is disabled"
	case "ForbiddenByFirewall", "ForbiddenByConnection":
		return "the vault's network rules refuse this client (" + inner + ")"
	}
	return clip(oneLine(msg), 300)
}

func retryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if v := h.Get(name); v != "" {
			if ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && ms > 0 && ms < 86400000 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s > 0 && s < 86400 {
			return time.Duration(s) * time.Second
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 && d < 24*time.Hour {
			return d
		}
	}
	return 0
}

// code keeps an error code to the characters codes are made of, so a hostile body
// cannot put anything else into patrol's messages.
func code(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return -1
	}, s)
	return clip(s, 64)
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
