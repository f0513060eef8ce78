package cli

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/wiring"
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
		if r.Header.Get("Authorization") != "Bearer admintoken" { // the stack's admin API guard
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"now":"` + ahead.Format(time.RFC3339Nano) + `"}`))
	}))
	defer srv.Close()
	c := &localClock{url: srv.URL + "/clock", token: "admintoken", client: srv.Client()}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := c.Now().Sub(ahead); d < 0 || d > time.Minute {
		t.Errorf("Now is %s away from the emulated time", d)
	}
	if err := (&localClock{url: srv.URL + "/clock", client: srv.Client()}).Sync(context.Background()); err == nil {
		t.Error("a clock read without the admin token succeeded")
	}
	bad := &localClock{url: srv.URL + "/nope", token: "admintoken", client: srv.Client()}
	if err := bad.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "emulated clock") {
		t.Errorf("a wrong clock URL: err = %v, want one naming the emulated clock", err)
	}
}

func TestEveryInvocationReadsTheEmulatedClockFirst(t *testing.T) {
	ahead := time.Now().UTC().Add(72 * time.Hour)
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		_, _ = w.Write([]byte(`{"now":"` + ahead.Format(time.RFC3339Nano) + `"}`))
	}))
	defer srv.Close()
	f := newFunctionHost(config.Config{}, slog.New(slog.DiscardHandler), srv.URL+"/clock", wiring.Options{})
	if f.wo.Clock != rotation.Clock(f.clock) {
		t.Fatal("the emulated clock is not the clock wiring hands out")
	}
	var seen time.Time
	h := f.syncClock(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { seen = f.wo.Clock.Now() }))

	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if n := reads.Load(); n != 0 {
		t.Errorf("the readiness probe read the clock %d times, want none", n)
	}
	for i := 1; i <= 2; i++ {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/Rotate", strings.NewReader("{}")))
		if n := reads.Load(); n != int32(i) {
			t.Fatalf("after %d invocations the clock was read %d times", i, n)
		}
		if d := seen.Sub(ahead); d < 0 || d > time.Minute {
			t.Errorf("invocation %d saw a time %s away from the emulated one", i, d)
		}
	}

	down := newFunctionHost(config.Config{}, slog.New(slog.DiscardHandler), srv.URL+"/clock", wiring.Options{})
	srv.Close()
	down.syncClock(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/Rotate", nil))
	if _, err := down.deps(context.Background()); err == nil || !strings.Contains(err.Error(), "emulated clock") {
		t.Errorf("building the app before the emulated time was ever read: err = %v, want one naming the emulated clock", err)
	}

	plain := newFunctionHost(config.Config{}, slog.New(slog.DiscardHandler), "", wiring.Options{})
	if plain.clock != nil || plain.wo.Clock != nil {
		t.Error("without a clock URL serve must keep the system clock")
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
