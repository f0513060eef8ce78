package servicebus

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestJavaScriptClientFidelity runs the official @azure/service-bus client (on rhea, a
// second AMQP implementation) against the broker: it sends the session filter as a bare
// string, routes CBS replies by link name and uses drain, which the Go SDK does not.
// npm installs the pinned client into testdata/js on first use (registry access needed).
func TestJavaScriptClientFidelity(t *testing.T) {
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		t.Skip("node or npm is not on PATH")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@azure", "service-bus")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "fidelity.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SB_CONNECTION="+f.broker.ConnectionString())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("JavaScript client: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
