package keyvault

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
)

var rbacBody = `{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=abc;oid=00000000-0000-0000-0000-0000000000d4;iss=https://sts.windows.net/t/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'\r\nResource: '/subscriptions/x'\r\n","innererror":{"code":"ForbiddenByRbac"}}}`

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		status     int
		body       string
		header     http.Header
		permanent  bool
		notFound   bool
		retryAfter time.Duration
		msg        []string // substrings of Error()
	}{
		"a missing secret is not-found and permanent": {
			status: 404, body: `{"error":{"code":"SecretNotFound","message":"A secret with (name/id) x was not found in this key vault."}}`,
			permanent: true, notFound: true, msg: []string{"HTTP 404", "SecretNotFound"},
		},
		"an RBAC refusal is summarised on one line naming the principal and action": {
			status: 403, body: rbacBody, permanent: true,
			msg: []string{"ForbiddenByRbac", "00000000-0000-0000-0000-0000000000d4", "setSecret/action", "Key Vault Secrets Officer"},
		},
		"a disabled secret says so": {
			status: 403, body: `{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}`,
			permanent: true, msg: []string{"disabled"},
		},
		"a refused credential is permanent": {
			status: 401, body: `{"error":{"code":"Unauthorized","message":"AKV10022: Invalid audience."}}`, permanent: true,
			msg: []string{"HTTP 401", "workload identity"},
		},
		"throttling is transient with the server's Retry-After": {
			status: 429, body: `{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}`,
			header: http.Header{"Retry-After": {"7"}}, retryAfter: 7 * time.Second, msg: []string{"retry after 7s"},
		},
		"a 503 with an HTTP-date Retry-After is transient": {
			status: 503, body: `{}`, header: http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, retryAfter: 90 * time.Second,
		},
		"a 500 without a body is transient": {status: 500},
		"a deleted-but-recoverable conflict is permanent": {
			status: 409, body: `{"error":{"code":"Conflict","message":"Secret x is currently in a deleted but recoverable state"}}`, permanent: true,
			msg: []string{"deleted but recoverable"},
		},
		"an absurd Retry-After is ignored": {status: 429, header: http.Header{"Retry-After": {"99999999"}}},
	} {
		t.Run(name, func(t *testing.T) {
			e := classify(tc.status, []byte(tc.body), tc.header, now)
			if e.Permanent() != tc.permanent {
				t.Errorf("Permanent() = %v, want %v", e.Permanent(), tc.permanent)
			}
			if got := errors.Is(e, rotation.ErrNotFound); got != tc.notFound {
				t.Errorf("errors.Is(ErrNotFound) = %v, want %v", got, tc.notFound)
			}
			if e.RetryAfter() != tc.retryAfter {
				t.Errorf("RetryAfter() = %v, want %v", e.RetryAfter(), tc.retryAfter)
			}
			for _, m := range tc.msg {
				if !strings.Contains(e.Error(), m) {
					t.Errorf("%q lacks %q", e.Error(), m)
				}
			}
			if strings.ContainsAny(e.Error(), "\r\n") {
				t.Errorf("message spans lines: %q", e.Error())
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	f.Add(404, []byte(`{"error":{"code":"SecretNotFound","message":"x"}}`), "")
	f.Add(403, []byte(rbacBody), "")
	f.Add(429, []byte(`{"error":{"code":"Throttled"}}`), "5")
	f.Add(500, []byte(`not json`), "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Fuzz(func(t *testing.T, status int, body []byte, retry string) {
		e := classify(status, body, http.Header{"Retry-After": {retry}}, time.Unix(0, 0))
		if e.RetryAfter() < 0 || e.RetryAfter() > 24*time.Hour {
			t.Fatalf("RetryAfter %v out of range", e.RetryAfter())
		}
		if strings.ContainsAny(e.Error(), "\r\n") {
			t.Fatalf("multi-line error %q", e.Error())
		}
		if status == 404 && !errors.Is(e, rotation.ErrNotFound) {
			t.Fatal("404 is not ErrNotFound")
		}
	})
}

func TestAccountSlug(t *testing.T) {
	for upn, want := range map[string]string{
		"svc-build@contoso.com":      "svc-build-contoso-com",
		"SVC.Build@Contoso.COM":      "svc-build-contoso-com",
		"a__b@@c.d":                  "a-b-c-d",
		"ünïcode@contoso.com":        "-n-code-contoso-com",
		"build+ci@sub.contoso.co.uk": "build-ci-sub-contoso-co-uk",
	} {
		if got := AccountSlug(upn); got != want {
			t.Errorf("AccountSlug(%q) = %q, want %q", upn, got, want)
		}
	}
	if got := CacheSecretName("svc-build@contoso.com"); got != "patrol-msal-svc-build-contoso-com" {
		t.Errorf("CacheSecretName = %q", got)
	}
	if got := PasswordSecretName("svc-build@contoso.com"); got != "patrol-password-svc-build-contoso-com" {
		t.Errorf("PasswordSecretName = %q", got)
	}
}
