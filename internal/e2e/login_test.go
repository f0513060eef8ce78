package e2e

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/patrol-dev/patrol/internal/cli"
	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/local/emulator/entra"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

// patrolWithBrowser runs the CLI like env.patrol, with open playing the person at the
// browser that `patrol login` opens.
func (e *env) patrolWithBrowser(open func(string) error, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRoot()
	root.SetArgs(append([]string{"--env-file", e.envFile}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx := cli.WithBrowser(cli.WithWiringOptions(e.ctx, e.opts), open)
	if err := root.ExecuteContext(ctx); err != nil {
		errOut.WriteString("patrol: " + err.Error() + "\n")
		code = cli.ExitCode(err)
	}
	return out.String(), errOut.String(), code
}

// browserAs signs in at the Entra emulator's page as upn, as a person would.
func (e *env) browserAs(upn string) entra.Browser {
	u, ok := e.st.Entra.User(upn)
	if !ok {
		e.t.Fatalf("no user %s in the stack", upn)
	}
	return entra.Browser{HTTP: &http.Client{Transport: e.st.HTTP.Transport}, Account: upn, Password: u.Password}
}

func TestLoginInTheBrowser(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	var opened string
	b := e.browserAs(stack.ServiceAccount)
	out, errOut, code := e.patrolWithBrowser(func(u string) error { opened = u; return b.Open(u) }, "login", "--service-account", stack.ServiceAccount)
	if code != 0 || !strings.Contains(out, "Opening your browser") || !strings.Contains(out, "Signed in "+stack.ServiceAccount) {
		t.Fatalf("login: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, opened) || !strings.Contains(opened, "/oauth2/v2.0/authorize?") {
		t.Errorf("login did not print the URL it opened (%q):\n%s", opened, out)
	}
	// The cache went to Key Vault: patrol's own services, which share nothing with the
	// CLI's but the vault, now get a token for the account.
	if _, err := e.svc.Accounts.Token(e.ctx, stack.ServiceAccount); err != nil {
		t.Errorf("after a browser login the service account has no token: %v", err)
	}
}

func TestLoginInTheBrowserAsAnotherAccountIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	b := e.browserAs(stack.Person)
	out, errOut, code := e.patrolWithBrowser(b.Open, "login", "--service-account", stack.ServiceAccount)
	if code == 0 || strings.Contains(out, "Signed in") {
		t.Fatalf("a browser sign-in as %s was accepted for %s: exit %d\n%s", stack.Person, stack.ServiceAccount, code, out)
	}
	for _, want := range []string{"signed in as another account", "completed as " + stack.Person, "sign in as " + stack.ServiceAccount} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, errOut)
		}
	}
	_, err := e.svc.Accounts.Token(e.ctx, stack.ServiceAccount)
	var se *identity.SignInError
	if !errors.As(err, &se) || se.Kind != identity.NotSignedIn {
		t.Errorf("after a refused login the service account should still be not signed in, got %v", err)
	}
}

func TestLoginInTheBrowserThatIsCancelled(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	b := e.browserAs(stack.ServiceAccount)
	b.Deny = true
	_, errOut, code := e.patrolWithBrowser(b.Open, "login", "--service-account", stack.ServiceAccount)
	if code == 0 || !strings.Contains(errOut, "AADSTS65004") || !strings.Contains(errOut, "browser sign-in was cancelled or refused") {
		t.Errorf("a cancelled sign-in: exit %d\n%s", code, errOut)
	}
}

func TestLoginHelpExplainsBothFlows(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	out, _, code := e.patrol("login", "--help")
	for _, want := range []string{"--device-code", "browser", "Conditional Access", "http://localhost", "without a browser"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("login --help lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}

// codeRecorder remembers the authorization codes a browser posts to a client's redirect
// URI, so the leak test can search the output for them.
type codeRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	codes []string
}

func (c *codeRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		if v, err := url.ParseQuery(string(b)); err == nil && v.Get("code") != "" {
			c.mu.Lock()
			c.codes = append(c.codes, v.Get("code"))
			c.mu.Unlock()
		}
	}
	return c.next.RoundTrip(r)
}

func (c *codeRecorder) values() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.codes...)
}
