package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/cli"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// patrol runs the operator CLI as `patrol --env-file <stack's dotenv> args...`, with
// the test's credential and logger handed over through the context.
func (e *env) patrol(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRoot()
	root.SetArgs(append([]string{"--env-file", e.envFile}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx := cli.WithWiringOptions(e.ctx, e.opts)
	if e.plainCLI {
		ctx = e.ctx
	}
	err := root.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString("patrol: " + err.Error() + "\n")
		code = cli.ExitCode(err)
	}
	return out.String(), errOut.String(), code
}

// isolateSDKVariables lets the CLI export AZURE_* from the dotenv file (as it does for
// the Azure SDK's credentials) without leaking them into other tests.
func isolateSDKVariables(t *testing.T, envFile string) {
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "AZURE_") {
			t.Setenv(k, os.Getenv(k))
		}
	}
}

// approveDeviceSignIns plays the person at the browser: every device code that shows
// up is approved as the service account, until ctx ends.
func (e *env) approveDeviceSignIns(ctx context.Context) {
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				for _, p := range e.st.Entra.PendingDeviceSignIns() {
					_ = e.st.Entra.ApproveDeviceCode(p.UserCode, stack.ServiceAccount)
				}
			}
		}
	}()
}

func TestOperatorCLIEndToEnd(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	e.approveDeviceSignIns(ctx)

	out, errOut, code := e.patrol("login", "--service-account", stack.ServiceAccount, "--device-code")
	if code != 0 || !strings.Contains(out, "enter the code") || !strings.Contains(out, "Signed in "+stack.ServiceAccount) {
		t.Fatalf("login: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = e.patrol("adopt", "feed", "--org", stack.Organization, "--scopes", "vso.packaging", "--lifetime", "30d")
	if code != 0 || !strings.Contains(out, "feed: rotated (adopt)") {
		t.Fatalf("adopt: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = e.patrol("rotate", "feed", "--op", "cli-op-1", "--revoke-now")
	if code != 0 || !strings.Contains(out, "feed: rotated (manual)") || !strings.Contains(out, "operation cli-op-1") {
		t.Fatalf("rotate: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = e.patrol("rotate", "feed", "--op", "cli-op-1")
	if code != 0 || !strings.Contains(out, "already-done") {
		t.Fatalf("rotate again with the same --op: exit %d\n%s", code, out)
	}
	e.assertConverged("feed")

	out, errOut, code = e.patrol("status")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "SECRET") {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"feed", stack.Organization, stack.ServiceAccount, "rotate in"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("status row %q lacks %q", lines[1], want)
		}
	}
	out, _, code = e.patrol("status", "--output", "json")
	var doc struct {
		Secrets []contract.SecretStatus `json:"secrets"`
	}
	if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil || len(doc.Secrets) != 1 || doc.Secrets[0].Action != string(rotation.ActionWait) || doc.Secrets[0].RenewAt.IsZero() {
		t.Fatalf("status --output json: exit %d, %v\n%s", code, err, out)
	}
	out, _, code = e.patrol("plan")
	if code != 0 || !strings.Contains(out, "would enqueue 0 rotation(s) of 1 managed secret(s)") {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	out, errOut, code = e.patrol("offboard", "--upn", stack.Person)
	if code != 0 || !strings.Contains(out, "hr-offboarding") {
		t.Fatalf("offboard: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(e.messages("hr-offboarding")); n != 1 {
		t.Errorf("hr-offboarding holds %d messages, want 1", n)
	}

	// As an operator runs it: nothing but the dotenv file (PATROL_CA_FILE for trust,
	// AZURE_* for DefaultAzureCredential).
	e.plainCLI = true
	out, errOut, code = e.patrol("status")
	if code != 0 || !strings.Contains(out, "feed") {
		t.Fatalf("status with only --env-file: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestOperatorCLIExitCodes(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	for name, tc := range map[string]struct {
		args []string
		code int
		want string
	}{
		"rotate without a secret is a usage error":           {[]string{"rotate"}, 2, "accepts 1 arg"},
		"an unknown flag is a usage error":                   {[]string{"status", "--bogus"}, 2, "unknown flag"},
		"adopt without --org is a usage error":               {[]string{"adopt", "s", "--scopes", "vso.code"}, 2, "--org is required"},
		"adopt with a non-vso scope names the flag":          {[]string{"adopt", "s", "--org", "contoso", "--scopes", "code"}, 2, "--scopes"},
		"adopt of full scope without allowing it is refused": {[]string{"adopt", "s", "--org", "contoso", "--scopes", "app_token"}, 2, "--allow-full-scope"},
		"status with an unknown output format":               {[]string{"status", "-o", "yaml"}, 2, "want table or json"},
		"rotate with a bad operation id":                     {[]string{"rotate", "s", "--op", "Bad Op"}, 2, "--op"},
		"rotate of a secret nobody adopted fails":            {[]string{"rotate", "ghost"}, 1, "secret-missing"},
		"adopt while the account is not signed in names it":  {[]string{"adopt", "s", "--org", "contoso", "--scopes", "vso.code"}, 1, "patrol login --service-account " + stack.ServiceAccount},
		"login with something that is not a UPN":             {[]string{"login", "--service-account", "nobody"}, 2, "user principal name"},
		"a missing env file is named":                        {[]string{"--env-file", "/nonexistent/patrol.env", "status"}, 1, "/nonexistent/patrol.env"},
		"offboard without anyone is a usage error":           {[]string{"offboard"}, 2, "--upn or --object-id"},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := e.patrol(tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

func TestSettingsErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	envFile := dir + "/bad.env"
	if err := os.WriteFile(envFile, []byte("PATROL_KEYVAULT_URL=http://vault.example\nPATROL_TENANT_ID=contoso.com\nPATROL_CLIENT_ID=not-a-guid\nServiceBusConnection=Endpoint=sb://localhost/;UseDevelopmentEmulator=true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	root := cli.NewRoot()
	root.SetArgs([]string{"--env-file", envFile, "status"})
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(context.Background())
	if err == nil || cli.ExitCode(err) != 1 {
		t.Fatalf("bad settings: err %v", err)
	}
	for _, want := range []string{"PATROL_KEYVAULT_URL", "https", "PATROL_CLIENT_ID"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
