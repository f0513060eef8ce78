package devhost

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPatrolsOwnHandlerRunsUnderDevhost starts the real `patrol serve` from the repo's
// own host.json and function.json files, with the settings of
// local.settings.json.example, and checks the host contract end to end: readiness,
// the handler's logs reaching the host's logger, and an HTTP trigger answered in the
// handler's own words (no emulator runs here, so the answer is the 503 the handler
// chose, carried in its res output, not devhost's 404/401/500).
func TestPatrolsOwnHandlerRunsUnderDevhost(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "patrol")
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/patrol")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build patrol: %v\n%s", err, out)
	}
	raw, err := os.ReadFile("../../../local.settings.json.example")
	if err != nil {
		t.Fatal(err)
	}
	var ls struct{ Values map[string]string }
	if err := json.Unmarshal(raw, &ls); err != nil {
		t.Fatal(err)
	}
	app, err := LoadAppDefinition("../../..")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logCapture{}
	// No emulator runs here: a CA file that does not exist makes the handler's
	// dependencies fail at once, so the invocation ends in the handler's own 503.
	ls.Values["PATROL_CA_FILE"] = filepath.Join(t.TempDir(), "missing-ca.pem")
	h, err := Start(context.Background(), Options{
		Definition: app, Settings: ls.Values, Command: []string{bin, "serve"}, Logger: slogOf(logs),
		DisableTriggers: []string{"Offboarding", "Rotate", "Revoke", "Sweep"},
		// A stand-in identity endpoint keeps ManagedIdentityCredential off IMDS
		// (169.254.169.254), which must never be reached from a test.
		ManagedIdentity: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-IDENTITY-HEADER") != "test-header" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			_, _ = io.WriteString(w, `{"access_token":"not-a-real-token","expires_on":"4102444800","token_type":"Bearer","resource":"`+r.URL.Query().Get("resource")+`"}`)
		}),
		IdentityHeader: "test-header",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := h.FunctionURL("SecretStatus", map[string]string{"secret": "pat-demo"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("x-functions-key", h.FunctionKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		logs.mu.Lock()
		for _, r := range logs.records {
			t.Log(r)
		}
		logs.mu.Unlock()
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "PATROL_CA_FILE") {
		t.Errorf("SecretStatus answered %d %s, want the handler's 503 naming PATROL_CA_FILE", resp.StatusCode, body)
	}
	if c := h.Counts("SecretStatus"); c.Succeeded != 1 {
		t.Errorf("SecretStatus counts = %+v, want one successful invocation (the 503 is the handler's res output)", c)
	}
	found := false
	logs.mu.Lock()
	for _, r := range logs.records {
		found = found || strings.Contains(r["msg"], "patrol handler listening")
	}
	logs.mu.Unlock()
	if !found {
		t.Error("the handler's startup log line did not reach the logger")
	}
}
