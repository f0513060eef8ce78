package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

// withoutServiceBus points the CLI at a copy of the stack's dotenv file that has no
// Service Bus setting: what an operator's laptop knows when it was given only the vault.
func (e *env) withoutServiceBus() {
	e.t.Helper()
	b, err := os.ReadFile(e.envFile)
	if err != nil {
		e.t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, config.SettingServiceBusConnection+"=") || strings.HasPrefix(line, config.SettingServiceBusNamespace+"=") {
			continue
		}
		kept = append(kept, line)
	}
	path := filepath.Join(e.t.TempDir(), "no-bus.env")
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.envFile = path
}

func TestCommandsNeedOnlyTheSettingsTheyUse(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	e.approveDeviceSignIns(ctx)
	out, errOut, code := e.patrol("login", "--service-account", stack.ServiceAccount, "--device-code")
	if code != 0 {
		t.Fatalf("login with every setting: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := e.patrol("adopt", "feed", "--org", stack.Organization, "--scopes", "vso.packaging"); code != 0 {
		t.Fatalf("adopt with every setting: exit %d\n%s\n%s", code, out, errOut)
	}

	e.withoutServiceBus()
	for name, tc := range map[string]struct {
		args []string
		want string // in stdout when it runs; "" = it must refuse, naming the setting
	}{
		"login never sends a message":       {[]string{"login", "--service-account", stack.ServiceAccount, "--device-code"}, "Signed in " + stack.ServiceAccount},
		"status only reads the vault":       {[]string{"status"}, "feed"},
		"plan only reads the vault":         {[]string{"plan"}, "of 1 managed secret(s)"},
		"migrate-identity only uses vaults": {[]string{"migrate-identity"}, "Nothing to move"},
		"adopt publishes its outcome":       {[]string{"adopt", "other", "--org", stack.Organization, "--scopes", "vso.code"}, ""},
		"rotate schedules the revocation":   {[]string{"rotate", "feed"}, ""},
		"offboard sends to hr-offboarding":  {[]string{"offboard", "--upn", stack.Person}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := e.patrol(tc.args...)
			if tc.want != "" {
				if code != 0 || !strings.Contains(out, tc.want) || strings.Contains(errOut, config.SettingServiceBusConnection) {
					t.Errorf("exit %d, want 0 and %q without asking for Service Bus:\n%s\n%s", code, tc.want, out, errOut)
				}
				return
			}
			if code != 1 || !strings.Contains(errOut, config.SettingServiceBusConnection) || strings.Contains(out, "rotated") {
				t.Errorf("exit %d, want 1 naming %s before anything is done:\n%s\n%s", code, config.SettingServiceBusConnection, out, errOut)
			}
		})
	}
}
