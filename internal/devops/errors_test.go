package devops

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
)

func TestDecodeResponseClassifies(t *testing.T) {
	now := time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		status     int
		retryAfter string
		body       string
		want       []error // errors.Is must hold for each
		retry      time.Duration
	}{
		"429 is transient with its Retry-After seconds":   {429, "12", "", []error{ErrTransient}, 12 * time.Second},
		"503 with an HTTP-date Retry-After":               {503, "Fri, 27 Nov 2026 23:00:30 GMT", "", []error{ErrTransient}, 30 * time.Second},
		"500 without Retry-After leaves back-off to us":   {500, "", "", []error{ErrTransient}, 0},
		"a nonsense Retry-After is ignored":               {429, "soon", "", []error{ErrTransient}, 0},
		"401 is an unauthorized permanent failure":        {401, "", `{"message":"TF400813","typeKey":"UnauthorizedRequestException"}`, []error{ErrPermanent, ErrUnauthorized}, 0},
		"404 is not found":                                {404, "", "", []error{ErrPermanent, rotation.ErrNotFound}, 0},
		"400 is permanent":                                {400, "", "", []error{ErrPermanent}, 0},
		"203 is the sign-in page":                         {203, "", "<html/>", []error{ErrPermanent, ErrUnauthorized}, 0},
		"a Retry-After on a permanent failure is ignored": {400, "5", "", []error{ErrPermanent}, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			if tc.retryAfter != "" {
				h.Set("Retry-After", tc.retryAfter)
			}
			err := decodeResponse("op", "org", tc.status, h, []byte(tc.body), nil, now)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("%v is not %v", err, w)
				}
			}
			var e *Error
			if !errors.As(err, &e) || e.RetryAfter() != tc.retry {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter(), tc.retry)
			}
		})
	}
}

func TestPatTokenErrorsAreFailures(t *testing.T) {
	cases := map[string]struct {
		code      string
		permanent bool
		notFound  bool
	}{
		"a lifespan policy violation is permanent": {"patLifespanPolicyViolation", true, false},
		"a global policy violation is permanent":   {"globalPatPolicyViolation", true, false},
		"access denied is permanent":               {"accessDenied", true, false},
		"invalid validTo is permanent":             {"invalidValidTo", true, false},
		"an unknown future code is permanent":      {"somethingNew", true, false},
		"a failure to issue is transient":          {"failedToIssueAccessToken", false, false},
		"authorization not found is not found":     {"authorizationNotFound", true, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := patTokenResult{PatTokenError: tc.code}.pat("create PAT", "org", true)
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Fatalf("err = %v, want an *Error with code %s", err, tc.code)
			}
			if e.Permanent() != tc.permanent || errors.Is(err, rotation.ErrNotFound) != tc.notFound {
				t.Errorf("permanent %v notFound %v", e.Permanent(), errors.Is(err, rotation.ErrNotFound))
			}
		})
	}
}
