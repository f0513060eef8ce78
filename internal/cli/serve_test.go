package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestVaultName(t *testing.T) {
	tests := map[string]struct{ url, want string }{
		"an Azure vault URL gives its first label":  {"https://myvault.vault.azure.net", "myvault"},
		"the local stack's vault URL too":           {"https://patrol.vault.localhost:8443", "patrol"},
		"a URL without a vault label gives nothing": {"https://localhost:8443", ""},
		"something that is not a URL gives nothing": {"::", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := VaultName(tc.url); got != tc.want {
				t.Errorf("VaultName(%q) = %q, want %q", tc.url, got, tc.want)
			}
		})
	}
}

func TestLocalClockFollowsTheEmulatedTime(t *testing.T) {
	ahead := time.Now().UTC().Add(72 * time.Hour)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/clock" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"now":"` + ahead.Format(time.RFC3339Nano) + `"}`))
	}))
	defer srv.Close()
	c := &localClock{url: srv.URL + "/clock", client: srv.Client()}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := c.Now().Sub(ahead); d < 0 || d > time.Minute {
		t.Errorf("Now is %s away from the emulated time", d)
	}
	bad := &localClock{url: srv.URL + "/nope", client: srv.Client()}
	if err := bad.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "emulated clock") {
		t.Errorf("a wrong clock URL: err = %v, want one naming the emulated clock", err)
	}
}

func TestServeNamesTheMissingPort(t *testing.T) {
	t.Setenv("FUNCTIONS_CUSTOMHANDLER_PORT", "")
	t.Setenv("FUNCTIONS_HTTPWORKER_PORT", "")
	root := NewRoot()
	root.SetArgs([]string{"serve"})
	err := root.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "FUNCTIONS_CUSTOMHANDLER_PORT") {
		t.Errorf("err = %v, want one naming FUNCTIONS_CUSTOMHANDLER_PORT", err)
	}
}
