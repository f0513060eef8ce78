package demo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/patrol-dev/patrol/internal/config"
)

func TestHandlerSettings(t *testing.T) {
	env := map[string]string{
		"PATROL_KEYVAULT_URL": "https://patrol.vault.localhost:1", "ServiceBusConnection": "Endpoint=sb://localhost:2;SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true",
		"AZURE_CLIENT_ID": "22222222-2222-4222-8222-222222222222", "AZURE_CLIENT_SECRET": "secret", "AZURE_TENANT_ID": "t",
		"PATROL_LOCAL_SERVICE_ACCOUNT_PWD": "pw", "NODE_EXTRA_CA_CERTS": "/ca.pem", config.LocalAdminToken: "admintoken",
	}
	got := HandlerSettings(env, "http://127.0.0.1:9")
	tests := map[string]struct {
		key     string
		present bool
		want    string
	}{
		"the vault URL is passed on":                                                 {key: "PATROL_KEYVAULT_URL", present: true, want: env["PATROL_KEYVAULT_URL"]},
		"the Service Bus connection is passed on":                                    {key: "ServiceBusConnection", present: true, want: env["ServiceBusConnection"]},
		"the operator's client secret is not (the app uses its managed identity)":    {key: "AZURE_CLIENT_SECRET"},
		"the operator's client id is not (it would select a user-assigned identity)": {key: "AZURE_CLIENT_ID"},
		"the service account's password is not":                                      {key: "PATROL_LOCAL_SERVICE_ACCOUNT_PWD"},
		"the handler is told where the emulated clock is":                            {key: config.LocalClockURL, present: true, want: "http://127.0.0.1:9/clock"},
		"the handler gets the admin token reading the clock needs":                   {key: config.LocalAdminToken, present: true, want: "admintoken"},
		"the sweep schedule defaults to the documented one":                          {key: "PATROL_SWEEP_SCHEDULE", present: true, want: "0 0 */6 * * *"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, ok := got[tc.key]
			if ok != tc.present || v != tc.want {
				t.Errorf("%s = %q (present %v), want %q (present %v)", tc.key, v, ok, tc.want, tc.present)
			}
		})
	}
}

func TestFindAppRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "functions", "Rotate"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := FindAppRoot(filepath.Join(root, "functions", "Rotate"))
	if err != nil || got != root {
		t.Errorf("from a subfolder: %q, %v; want %q", got, err, root)
	}
	if _, err := FindAppRoot(t.TempDir()); err == nil {
		t.Error("a folder without host.json above it was accepted")
	}
}
