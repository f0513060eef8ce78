package devhost

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	entraemu "github.com/patrol-dev/patrol/internal/local/emulator/entra"
)

// echoBin is the scripted test handler, built once by TestMain.
var echoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "devhost-echo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	echoBin = filepath.Join(dir, "echohandler")
	build := exec.Command("go", "build", "-o", echoBin, "./testdata/echohandler")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build echohandler:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testAppFiles is a small app with one function per trigger kind and auth level.
var testAppFiles = map[string]string{
	"host.json": `{
  "version": "2.0",
  "customHandler": {"description": {"defaultExecutablePath": "handler", "arguments": ["serve"]}},
  "functionTimeout": "00:01:00",
  "extensions": {"http": {"routePrefix": "api"}}
}`,
	"functions/RotateNow/function.json":      `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["post"],"route":"rotate/{secret}"},{"type":"http","direction":"out","name":"res"}]}`,
	"functions/SecretStatus/function.json":   `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["get"],"route":"status/{secret?}"},{"type":"http","direction":"out","name":"res"}]}`,
	"functions/Open/function.json":           `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},{"type":"http","direction":"out","name":"res"}]}`,
	"functions/AdminOnly/function.json":      `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"admin","route":"admin-only"},{"type":"http","direction":"out","name":"res"}]}`,
	"functions/NoOutput/function.json":       `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","route":"no-output"}]}`,
	"functions/KeyVaultEvents/function.json": `{"bindings":[{"type":"eventGridTrigger","direction":"in","name":"event"}]}`,
	"functions/Sweep/function.json":          `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"%SWEEP%"}]}`,
	"functions/Warmup/function.json":         `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 0 0 1 1 *","runOnStartup":true}]}`,
}

// logCapture is a slog.Handler keeping records for assertions.
type logCapture struct {
	mu      sync.Mutex
	records []map[string]string
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "time": r.Time.Format("05.000"), "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	c.mu.Lock()
	c.records = append(c.records, m)
	c.mu.Unlock()
	return nil
}
func (c *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{c: c, attrs: as}
}
func (c *logCapture) WithGroup(string) slog.Handler { return c }

func (c *logCapture) find(msg string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.records {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

type attrHandler struct {
	c     *logCapture
	attrs []slog.Attr
}

func (a *attrHandler) Enabled(context.Context, slog.Level) bool { return true }
func (a *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(a.attrs...)
	return a.c.Handle(ctx, r)
}
func (a *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{c: a.c, attrs: append(append([]slog.Attr(nil), a.attrs...), as...)}
}
func (a *attrHandler) WithGroup(string) slog.Handler { return a }

type testHost struct {
	*Host
	root   string
	record string
	logs   *logCapture
	clk    *clock.Clock
}

// startTestHost starts devhost over the echo handler; mutate adjusts the options.
func startTestHost(t *testing.T, files map[string]string, mutate func(*Options)) *testHost {
	t.Helper()
	root := writeApp(t, files)
	app, err := LoadAppDefinition(root)
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(t.TempDir(), "record.jsonl")
	logs := &logCapture{}
	clk := clock.NewManual(time.Date(2026, 11, 27, 10, 3, 0, 0, time.UTC))
	opts := Options{
		Definition: app,
		Settings:   map[string]string{"SWEEP": "0 */5 * * * *", "ECHO_RECORD": record, "SETTING_X": "x-value"},
		Command:    []string{echoBin},
		// These tests look at one handler's view (its environment, its concurrency);
		// TestEachScaleGroupRunsInItsOwnProcess covers the default.
		OneProcess: true,
		Clock:      clk,
		Logger:     slog.New(logs),
	}
	if mutate != nil {
		mutate(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testHost{Host: h, root: root, record: record, logs: logs, clk: clk}
}

type recorded struct {
	Function     string `json:"function"`
	InvocationID string `json:"invocationId"`
	HostVersion  string `json:"hostVersion"`
	UserAgent    string `json:"userAgent"`
	ContentType  string `json:"contentType"`
	Body         struct {
		Data     map[string]json.RawMessage `json:"Data"`
		Metadata map[string]json.RawMessage `json:"Metadata"`
	} `json:"body"`
	Event string `json:"event"`
}

// invocations reads what the echo handler recorded, optionally for one function.
func (th *testHost) invocations(t *testing.T, function string) []recorded {
	t.Helper()
	f, err := os.Open(th.record)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r recorded
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("record line %q: %v", sc.Text(), err)
		}
		if function == "" || r.Function == function {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls cond until it holds or 10 s pass (a bound on a hang, not a timing
// assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandlerStartsWithTheHostEnvironment(t *testing.T) {
	// The Entra emulator's App Service style endpoint, so the handler's
	// ManagedIdentityCredential gets a token exactly as a Function app does in Azure.
	const miClientID = "8f1c2d3e-0000-4000-8000-00000000f00d"
	entraEmu, err := entraemu.New(entraemu.Options{Directory: entraemu.Directory{
		TenantID:               "11111111-1111-4111-8111-111111111111",
		AppRegistrations:       []entraemu.AppRegistration{{ClientID: miClientID, ManagedIdentity: true, DisplayName: "patrol-func"}},
		SystemAssignedIdentity: miClientID,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := entraEmu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = entraEmu.Close() })
	msi, err := entraEmu.ManagedIdentityHandler("the-identity-header")
	if err != nil {
		t.Fatal(err)
	}
	th := startTestHost(t, testAppFiles, func(o *Options) {
		o.ManagedIdentity = msi
		o.IdentityHeader = "the-identity-header"
	})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/env", th.HandlerPort()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(th.HandlerPort())
	checks := map[string]struct{ got, want string }{
		"the custom handler port is the port devhost polls": {env[EnvCustomHandlerPort], port},
		"the legacy port variable has the same value":       {env[EnvHTTPWorkerPort], port},
		"both worker id variables agree":                    {env[EnvHTTPWorkerID], env[EnvCustomHandlerWorkerID]},
		"the app root is the folder holding host.json":      {env[EnvAppRootPath], th.root},
		"the handler runs in the app root":                  {env["PWD"], th.root},
		"app settings become environment variables":         {env["SETTING_X"], "x-value"},
		"the identity endpoint is devhost's MSI listener":   {env["IDENTITY_ENDPOINT"], th.IdentityEnv()["IDENTITY_ENDPOINT"]},
		"the identity header is the configured one":         {env["IDENTITY_HEADER"], "the-identity-header"},
	}
	for name, c := range checks {
		if c.got != c.want || c.got == "" {
			t.Errorf("%s: got %q, want %q", name, c.got, c.want)
		}
	}
	if !strings.HasPrefix(env["IDENTITY_ENDPOINT"], "http://127.0.0.1:") {
		t.Errorf("IDENTITY_ENDPOINT = %q, want a loopback http URL", env["IDENTITY_ENDPOINT"])
	}
	resp2, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/msi", th.HandlerPort()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "token for") {
		t.Errorf("the handler's ManagedIdentityCredential got %d %s, want a token", resp2.StatusCode, b)
	}
	if th.logs.find("handler: echohandler: listening on 127.0.0.1:"+port) == nil {
		t.Error("the handler's stdout was not forwarded to the logger")
	}
}

func TestStartFailsClearly(t *testing.T) {
	cases := map[string]struct {
		mutate func(*Options)
		want   []string
	}{
		"a handler that never listens times out naming the command": {
			mutate: func(o *Options) {
				o.Settings["ECHO_NO_LISTEN"] = "1"
				o.ReadyTimeout = 300 * time.Millisecond
				o.StopTimeout = time.Second
			},
			want: []string{echoBin, "did not answer GET /", "300ms"},
		},
		"a handler that exits at once is reported with its exit status": {
			mutate: func(o *Options) { o.Settings["ECHO_EXIT"] = "1" },
			want:   []string{echoBin, "exited before it listened", "exit status 4"},
		},
		"a missing executable names the host.json field": {
			mutate: func(o *Options) { o.Command = nil },
			want:   []string{"defaultExecutablePath", `"handler"`},
		},
		"an unset schedule setting names the function file": {
			mutate: func(o *Options) { delete(o.Settings, "SWEEP") },
			want:   []string{"Sweep", "%SWEEP%"},
		},
		"a managed identity handler without a header is refused": {
			mutate: func(o *Options) { o.ManagedIdentity = http.NotFoundHandler() },
			want:   []string{"IdentityHeader"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			app, err := LoadAppDefinition(writeApp(t, testAppFiles))
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{Definition: app, Settings: map[string]string{"SWEEP": "0 */5 * * * *"}, Command: []string{echoBin}}
			tc.mutate(&opts)
			h, err := Start(context.Background(), opts)
			if err == nil {
				_ = h.Close(context.Background())
				t.Fatal("Start succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestHTTPTriggers(t *testing.T) {
	th := startTestHost(t, testAppFiles, func(o *Options) { o.DisableTriggers = []string{"Warmup", "Sweep"} })
	fk, mk := th.FunctionKey(), th.MasterKey()
	cases := map[string]struct {
		method, path, key, query string
		status                   int
		function                 string            // expected invocation, if any
		params                   map[string]string // expected Data.req.Params
	}{
		"a function key in the header runs the function":    {method: "POST", path: "/api/rotate/pat-1", key: fk, status: 201, function: "RotateNow", params: map[string]string{"secret": "pat-1"}},
		"a function key as ?code= runs the function":        {method: "POST", path: "/api/rotate/pat-2", query: "code=" + fk, status: 201, function: "RotateNow", params: map[string]string{"secret": "pat-2"}},
		"the master key also opens function-level triggers": {method: "POST", path: "/api/rotate/pat-3", key: mk, status: 201, function: "RotateNow"},
		"no key is 401":      {method: "POST", path: "/api/rotate/pat-1", status: 401},
		"a wrong key is 401": {method: "POST", path: "/api/rotate/pat-1", key: "nope", status: 401},
		"a method the function does not accept is 404":            {method: "GET", path: "/api/rotate/pat-1", key: fk, status: 404},
		"an unknown route is 404":                                 {method: "POST", path: "/api/nothing-here", key: fk, status: 404},
		"a path outside the route prefix is 404":                  {method: "POST", path: "/rotate/pat-1", key: fk, status: 404},
		"an optional route parameter may be left out":             {method: "GET", path: "/api/status", key: fk, status: 201, function: "SecretStatus", params: map[string]string{}},
		"routes match case-insensitively and decode parameters":   {method: "GET", path: "/API/Status/pat%20x", key: fk, status: 201, function: "SecretStatus", params: map[string]string{"secret": "pat x"}},
		"an anonymous function needs no key":                      {method: "GET", path: "/api/Open", status: 201, function: "Open"},
		"an admin function refuses the function key":              {method: "GET", path: "/api/admin-only", key: fk, status: 401},
		"an admin function accepts the master key":                {method: "GET", path: "/api/admin-only", key: mk, status: 201, function: "AdminOnly"},
		"a handler failure is 500 for the caller":                 {method: "POST", path: "/api/rotate/fail-always", key: fk, status: 500, function: "RotateNow"},
		"a handler answer that is not JSON is 500 for the caller": {method: "POST", path: "/api/rotate/bad-json", key: fk, status: 500, function: "RotateNow"},
		"a function without an http output answers 204":           {method: "GET", path: "/api/no-output", status: 204, function: "NoOutput"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := len(th.invocations(t, ""))
			url := th.URL() + tc.path
			if tc.query != "" {
				url += "?" + tc.query
			}
			req, _ := http.NewRequest(tc.method, url, strings.NewReader(""))
			if tc.method == "POST" {
				req, _ = http.NewRequest(tc.method, url, strings.NewReader(`{"reason":"test"}`))
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.key != "" {
				req.Header.Set("x-functions-key", tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			all := th.invocations(t, "")
			if tc.function == "" {
				if len(all) != before {
					t.Fatalf("the handler was invoked %d time(s), want none", len(all)-before)
				}
				return
			}
			if len(all) != before+1 {
				t.Fatalf("the handler was invoked %d time(s), want once", len(all)-before)
			}
			inv := all[len(all)-1]
			if inv.Function != tc.function || inv.InvocationID == "" || inv.HostVersion != HostVersion ||
				inv.UserAgent != "Azure-Functions-Host/"+HostVersion || inv.ContentType != "application/json; charset=utf-8" {
				t.Errorf("invocation = %+v", inv)
			}
			var req2 struct {
				Method  string
				Params  map[string]string
				Headers map[string][]string
				Body    *string
			}
			if err := json.Unmarshal(inv.Body.Data["req"], &req2); err != nil {
				t.Fatal(err)
			}
			if req2.Method != tc.method {
				t.Errorf("Data.req.Method = %q", req2.Method)
			}
			if _, leaked := req2.Headers["X-Functions-Key"]; leaked {
				t.Error("the function key was passed to the handler")
			}
			if tc.params != nil && fmt.Sprint(req2.Params) != fmt.Sprint(tc.params) {
				t.Errorf("Data.req.Params = %v, want %v", req2.Params, tc.params)
			}
			if tc.status == 201 {
				if resp.Header.Get("X-Echo-Function") != tc.function || !strings.Contains(string(body), `"Data"`) {
					t.Errorf("the handler's res output was not returned: headers %v body %s", resp.Header, body)
				}
				if r := th.logs.find("echo " + tc.function); r == nil || r["function"] != tc.function || r["invocationId"] == "" {
					t.Errorf("the handler's Logs were not routed with function and invocation id: %v", r)
				}
			}
		})
	}
	if c := th.Counts("RotateNow"); c.Succeeded != 3 || c.Failed != 2 {
		t.Errorf("RotateNow counts = %+v, want 3 succeeded, 2 failed", c)
	}
}

func TestFunctionURLFillsTheRoute(t *testing.T) {
	th := startTestHost(t, testAppFiles, nil)
	u, err := th.FunctionURL("RotateNow", map[string]string{"secret": "pat 1"})
	if err != nil || u != th.URL()+"/api/rotate/pat%201" {
		t.Errorf("FunctionURL = %q, %v", u, err)
	}
	if u, err := th.FunctionURL("SecretStatus", nil); err != nil || u != th.URL()+"/api/status" {
		t.Errorf("FunctionURL without the optional parameter = %q, %v", u, err)
	}
	if _, err := th.FunctionURL("RotateNow", nil); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("FunctionURL without a required parameter: err = %v", err)
	}
}

func TestEventGridWebhook(t *testing.T) {
	th := startTestHost(t, testAppFiles, nil)
	event := func(subject string) string {
		return `{"id":"` + subject + `","topic":"/vaults/kv","subject":"` + subject + `","eventType":"Microsoft.KeyVault.SecretNearExpiry","eventTime":"2026-11-27T01:08:33Z","data":{"ObjectName":"` + subject + `","Version":"v1"},"dataVersion":"1","metadataVersion":"1"}`
	}
	cases := map[string]struct {
		method, path, eventType, body, origin string
		status                                int
		wantBody                              string
		invocations                           int
	}{
		"an Event Grid schema validation answers the code": {
			eventType: "SubscriptionValidation", status: 200, wantBody: `{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}`,
			body: `[{"id":"2d1781af","topic":"/vaults/kv","subject":"","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"https://rp-eastus2.eventgrid.azure.net:553/x"},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-11-27T01:08:33Z","metadataVersion":"1","dataVersion":"1"}]`,
		},
		"a CloudEvents validation with string data answers the code": {
			eventType: "SubscriptionValidation", status: 200, wantBody: `{"validationResponse":"abc"}`,
			body: `{"id":"1","source":"x","type":"Microsoft.EventGrid.SubscriptionValidationEvent","specversion":"1.0","data":"{\"validationCode\":\"abc\"}"}`,
		},
		"a validation without a code is 400": {
			eventType: "SubscriptionValidation", status: 400, body: `[{"data":{}}]`,
		},
		"a notification batch invokes once per event": {
			eventType: "Notification", status: 202, body: "[" + event("pat-a") + "," + event("pat-b") + "]", invocations: 2,
		},
		"a single-object notification invokes once": {
			eventType: "Notification", status: 202, body: event("pat-c"), invocations: 1,
		},
		"a failing event fails the whole delivery with 500": {
			eventType: "Notification", status: 500, body: "[" + event("pat-d") + "," + event("fail-always") + "]", invocations: 2,
		},
		"an unsubscribe is accepted": {eventType: "Unsubscribe", status: 202, body: `[]`},
		"a missing aeg-event-type is 400": {
			status: 400, body: "[" + event("pat-e") + "]",
		},
		"a body that is not events is 400": {eventType: "Notification", status: 400, body: `"hello"`},
		"an unknown function is 404": {
			path: "/runtime/webhooks/eventgrid?functionName=Nope&code=" + th.EventGridKey(), eventType: "Notification", status: 404,
			body: "[" + event("pat-f") + "]", wantBody: "cannot find function: 'Nope'",
		},
		"a wrong system key is 401": {
			path: "/runtime/webhooks/eventgrid?functionName=KeyVaultEvents&code=" + th.FunctionKey(), eventType: "Notification", status: 401, body: "[]",
		},
		"the path is case-insensitive": {
			path: "/runtime/webhooks/EventGrid?functionName=keyvaultevents&code=" + th.EventGridKey(), eventType: "Notification", status: 202,
			body: "[" + event("pat-g") + "]", invocations: 1,
		},
		"the CloudEvents OPTIONS handshake allows the origin": {
			method: "OPTIONS", origin: "eventgrid.azure.net", status: 200,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := len(th.invocations(t, "KeyVaultEvents"))
			path := tc.path
			if path == "" {
				path = strings.TrimPrefix(th.EventGridURL("KeyVaultEvents"), th.URL())
			}
			method := tc.method
			if method == "" {
				method = "POST"
			}
			req, _ := http.NewRequest(method, th.URL()+path, strings.NewReader(tc.body))
			if tc.eventType != "" {
				req.Header.Set("aeg-event-type", tc.eventType)
			}
			if tc.origin != "" {
				req.Header.Set("WebHook-Request-Origin", tc.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if tc.wantBody != "" && strings.TrimSpace(string(body)) != tc.wantBody {
				t.Errorf("body = %s, want %s", body, tc.wantBody)
			}
			if tc.origin != "" && resp.Header.Get("WebHook-Allowed-Origin") != tc.origin {
				t.Errorf("WebHook-Allowed-Origin = %q", resp.Header.Get("WebHook-Allowed-Origin"))
			}
			invs := th.invocations(t, "KeyVaultEvents")
			if got := len(invs) - before; got != tc.invocations {
				t.Fatalf("invocations = %d, want %d", got, tc.invocations)
			}
			for _, inv := range invs[before:] {
				var ev map[string]any
				if err := json.Unmarshal(inv.Body.Data["event"], &ev); err != nil || ev["eventType"] != "Microsoft.KeyVault.SecretNearExpiry" {
					t.Errorf("Data.event is not the event object: %s", inv.Body.Data["event"])
				}
				if _, ok := inv.Body.Metadata["data"]; !ok {
					t.Error("Metadata.data is missing")
				}
			}
		})
	}
}

func TestTimerTriggers(t *testing.T) {
	th := startTestHost(t, testAppFiles, nil)
	// runOnStartup fires at start.
	waitFor(t, "the runOnStartup timer", func() bool { return len(th.invocations(t, "Warmup")) == 1 })
	if err := th.TriggerTimer(context.Background(), "Sweep"); err != nil {
		t.Fatal(err)
	}
	next := th.NextTimer("Sweep")
	if want := time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("NextTimer = %s, want %s", next, want)
	}
	th.clk.Advance(2 * time.Minute)
	waitFor(t, "the scheduled sweep", func() bool { return len(th.invocations(t, "Sweep")) == 2 })
	invs := th.invocations(t, "Sweep")
	var timer struct {
		Schedule       struct{ AdjustForDST bool }
		ScheduleStatus struct{ Last, Next, LastUpdated string }
		IsPastDue      bool
	}
	if err := json.Unmarshal(invs[1].Body.Data["timer"], &timer); err != nil {
		t.Fatal(err)
	}
	if !timer.Schedule.AdjustForDST || timer.IsPastDue || timer.ScheduleStatus.Next != "2026-11-27T10:10:00.0000000+00:00" || timer.ScheduleStatus.Last != "2026-11-27T10:03:00.0000000+00:00" {
		t.Errorf("timer payload = %+v", timer)
	}
	if err := th.TriggerTimer(context.Background(), "RotateNow"); err == nil {
		t.Error("TriggerTimer on an HTTP function succeeded")
	}
	// The admin API runs a timer too.
	req, _ := http.NewRequest("POST", th.URL()+"/admin/functions/Sweep", strings.NewReader(`{"input":""}`))
	req.Header.Set("x-functions-key", th.MasterKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("admin invoke status = %d", resp.StatusCode)
	}
	waitFor(t, "the admin-run sweep", func() bool { return len(th.invocations(t, "Sweep")) == 3 })
}

func TestRestartAfterKill(t *testing.T) {
	th := startTestHost(t, testAppFiles, nil)
	ctx := context.Background()
	if _, err := th.Invoke(ctx, "Open", map[string]any{"req": map[string]any{"Method": "GET"}}, nil); err != nil {
		t.Fatal(err)
	}
	pid := th.HandlerPID()
	if err := th.Kill(); err != nil {
		t.Fatal(err)
	}
	res, err := th.Invoke(ctx, "Open", map[string]any{}, nil)
	var ie *InvocationError
	if err == nil || !errors.As(err, &ie) || res.Status != 0 {
		t.Fatalf("invoke after kill: res %+v err %v, want an unreachable handler", res, err)
	}
	if err := th.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if th.HandlerPID() == pid || th.HandlerPID() == 0 {
		t.Errorf("the restarted handler has pid %d (was %d)", th.HandlerPID(), pid)
	}
	res, err = th.Invoke(ctx, "Open", map[string]any{"req": map[string]any{"Method": "GET"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 1 || res.Logs[0] != "echo Open" || res.Outputs["res"] == nil {
		t.Errorf("result = %+v", res)
	}
	if c := th.Counts("Open"); c.Succeeded != 2 || c.Failed != 1 {
		t.Errorf("counts = %+v", c)
	}
	if err := th.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsTheHandlerGracefully(t *testing.T) {
	th := startTestHost(t, testAppFiles, nil)
	if err := th.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var terminated bool
	for _, r := range th.invocations(t, "") {
		terminated = terminated || r.Event == "terminated"
	}
	if !terminated {
		t.Error("the handler did not see SIGTERM")
	}
	if _, err := http.Get(th.URL()); err == nil {
		t.Error("the HTTP endpoint still answers after Close")
	}
}

func TestWaitIdleWaitsForInFlightInvocations(t *testing.T) {
	th := startTestHost(t, testAppFiles, nil)
	done := make(chan error, 1)
	// The handler sleeps 200 ms before it answers, so a WaitIdle that waited for the
	// invocation returns at least that long after it was sent. (Receiving from done
	// right after WaitIdle would race: Invoke returns after the host counts the
	// invocation finished.)
	const sleep = 200 * time.Millisecond
	sent := time.Now()
	go func() {
		_, err := th.Invoke(context.Background(), "Open", map[string]any{"marker": "sleep-ms-200"}, nil)
		done <- err
	}()
	waitFor(t, "the invocation to start", func() bool { return len(th.invocations(t, "Open")) == 1 })
	if err := th.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(sent); waited < sleep {
		t.Fatalf("WaitIdle returned %s after the invocation was sent, before the handler's %s sleep ended", waited, sleep)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the invocation never returned")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := th.WaitIdle(ctx); err != nil {
		t.Errorf("WaitIdle on an idle host: %v", err)
	}
}

func slogOf(c *logCapture) *slog.Logger { return slog.New(c) }

func TestRestartOnExitRestartsACrashedHandler(t *testing.T) {
	th := startTestHost(t, testAppFiles, func(o *Options) { o.RestartOnExit = true; o.DisableTriggers = []string{"Warmup", "Sweep"} })
	pid := th.HandlerPID()
	if _, err := th.Invoke(context.Background(), "Open", map[string]any{"m": "crash-now"}, nil); err == nil {
		t.Fatal("an invocation that crashed the handler succeeded")
	}
	waitFor(t, "the automatic restart", func() bool { return th.Restarts() == 1 })
	if th.HandlerPID() == pid {
		t.Fatal("the handler was not replaced")
	}
	if _, err := th.Invoke(context.Background(), "Open", map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	// A deliberate Kill is not a crash: the supervisor sees it marked as expected.
	p := th.workers[0].current()
	if err := th.Kill(); err != nil {
		t.Fatal(err)
	}
	if !p.expected.Load() {
		t.Error("a killed handler is not marked as stopped on purpose; RestartOnExit would restart it")
	}
}

// By default devhost runs each Flex Consumption scale group in its own handler process:
// the HTTP functions together, every other function alone, so no function can lean on
// another's memory.
func TestEachScaleGroupRunsInItsOwnProcess(t *testing.T) {
	th := startTestHost(t, testAppFiles, func(o *Options) { o.OneProcess = false })
	want := map[string][]string{
		"http":                    {"AdminOnly", "NoOutput", "Open", "RotateNow", "SecretStatus"},
		"function:KeyVaultEvents": {"KeyVaultEvents"},
		"function:Sweep":          {"Sweep"},
		"function:Warmup":         {"Warmup"},
	}
	got := th.Groups()
	for _, fns := range got {
		sort.Strings(fns)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups = %v, want %v", got, want)
	}
	pids := map[int]bool{}
	for g, pid := range th.HandlerPIDs() {
		if pid == 0 || pids[pid] {
			t.Errorf("group %s runs in pid %d, shared or missing", g, pid)
		}
		pids[pid] = true
	}
	if len(pids) != len(want) {
		t.Errorf("%d handler processes, want %d", len(pids), len(want))
	}
	if th.HandlerPortOf("Open") != th.HandlerPortOf("RotateNow") || th.HandlerPortOf("Open") == th.HandlerPortOf("KeyVaultEvents") {
		t.Errorf("ports: Open %d, RotateNow %d, KeyVaultEvents %d; want the HTTP functions together and the event function apart",
			th.HandlerPortOf("Open"), th.HandlerPortOf("RotateNow"), th.HandlerPortOf("KeyVaultEvents"))
	}
	ctx := context.Background()
	for _, fn := range []string{"Open", "KeyVaultEvents"} {
		if _, err := th.Invoke(ctx, fn, map[string]any{}, nil); err != nil {
			t.Errorf("invoke %s: %v", fn, err)
		}
	}
}
