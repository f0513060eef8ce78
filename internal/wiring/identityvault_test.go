package wiring

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/config"
)

func TestTheIdentityVaultIsASecondStoreOrALoudFallback(t *testing.T) {
	cases := map[string]struct {
		identityURL string
		separate    bool
		warns       bool
	}{
		"a configured identity vault is a store of its own":                    {identityURL: "https://patrol-id.vault.azure.net", separate: true},
		"without one the caches stay in the secrets vault, and patrol says so": {warns: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := settings(t, map[string]string{config.SettingIdentityKeyVaultURL: tc.identityURL})
			s, err := Build(context.Background(), cfg, Options{
				HTTPClient: &http.Client{Transport: failTransport{t}}, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			if s.IdentityStore == nil || (s.IdentityStore != s.Store) != tc.separate {
				t.Errorf("identity store separate = %v, want %v", s.IdentityStore != s.Store, tc.separate)
			}
			if warned := strings.Contains(logs.String(), "needs attention") && strings.Contains(logs.String(), config.SettingIdentityKeyVaultURL); warned != tc.warns {
				t.Errorf("warned = %v, want %v; logs:\n%s", warned, tc.warns, logs.String())
			}
		})
	}
}
