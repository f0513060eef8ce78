package wiring

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// failTransport fails the test on any request: Build must not touch the network.
type failTransport struct{ t *testing.T }

func (f failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("Build made a request to %s", r.URL.Host)
	return nil, errors.New("no network in this test")
}

func settings(t *testing.T, extra map[string]string) config.Config {
	t.Helper()
	env := map[string]string{
		config.SettingKeyVaultURL:          "https://patrol.vault.azure.net",
		config.SettingServiceBusConnection: "Endpoint=sb://localhost:1/;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
		config.SettingTenantID:             "11111111-1111-4111-8111-111111111111",
		config.SettingClientID:             "33333333-3333-4333-8333-333333333333",
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestBuildWiresEverythingWithoutTouchingTheNetwork(t *testing.T) {
	for name, extra := range map[string]map[string]string{
		"with a connection string": nil,
		"with an identity-based namespace": {
			config.SettingServiceBusConnection: "", config.SettingServiceBusNamespace: "patrol.servicebus.windows.net",
		},
		"for the local stack": {
			config.SettingAuthorityHost: "https://localhost:1", config.SettingDevOpsURL: "https://localhost:2",
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Build(context.Background(), settings(t, extra), Options{HTTPClient: &http.Client{Transport: failTransport{t}}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			if s.Rotator == nil || s.Store == nil || s.Bus == nil || s.Effects == nil || s.Accounts == nil || s.DevOps == nil {
				t.Fatalf("incomplete services: %+v", s)
			}
			if s.Defaults.Lifetime != config.DefaultLifetime {
				t.Errorf("defaults = %+v", s.Defaults)
			}
		})
	}
}

func TestBuildNamesABadCAFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), settings(t, map[string]string{config.SettingCAFile: bad}), Options{})
	if err == nil || !strings.Contains(err.Error(), config.SettingCAFile) {
		t.Fatalf("err = %v", err)
	}
}

func TestTheDevOpsClientGetsTheTokenOfTheCall(t *testing.T) {
	if _, err := TokenFromContext(context.Background()); err == nil {
		t.Fatal("a call without a token got one")
	}
	tok, err := TokenFromContext(withAuth(context.Background(), secret.New("t1")))
	if err != nil || tok != "t1" {
		t.Fatalf("token = %q, %v", tok, err)
	}
}

func TestBuildWithoutServiceBusGivesEffectsThatNameTheSetting(t *testing.T) {
	env := map[string]string{
		config.SettingKeyVaultURL: "https://patrol.vault.azure.net",
		config.SettingTenantID:    "11111111-1111-4111-8111-111111111111",
		config.SettingClientID:    "33333333-3333-4333-8333-333333333333",
	}
	cfg, err := config.LoadFor(func(k string) string { return env[k] }, config.Needs{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(context.Background(), cfg, Options{HTTPClient: &http.Client{Transport: failTransport{t}}})
	if err != nil {
		t.Fatalf("Build without Service Bus (patrol status, plan, login): %v", err)
	}
	defer s.Close(context.Background())
	if s.Bus != nil || s.Store == nil || s.Accounts == nil {
		t.Fatalf("services: bus %v, store %v, accounts %v", s.Bus, s.Store, s.Accounts)
	}
	if err := s.Effects.Publish(context.Background(), rotation.Outcome{}); !errors.Is(err, ErrNoServiceBus) || !strings.Contains(err.Error(), config.SettingServiceBusConnection) {
		t.Errorf("Publish without a bus: %v, want ErrNoServiceBus naming the setting", err)
	}
}
