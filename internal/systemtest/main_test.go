package systemtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/local/demo"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// Built once in TestMain.
var (
	patrolBin string // the real `patrol` binary: the handler under test
	bareBin   string // bench/bareserver: the start-up baseline
	appRoot   string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "patrol-systemtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if appRoot, err = demo.FindAppRoot("."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	patrolBin, bareBin = filepath.Join(dir, "patrol"), filepath.Join(dir, "bareserver")
	// Both are built as the deployment package builds the handler (packaging.GoBuild:
	// static, -trimpath, symbols stripped), so the tests run, and the start-to-ready
	// benchmark measures, the binary that ships.
	for bin, pkg := range map[string]string{patrolBin: "./cmd/patrol", bareBin: "./bench/bareserver"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
		cmd.Dir = appRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "systemtest: go build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	// The handler inherits this environment, as under the real host: no AZURE_*
	// credentials may steer it away from the managed identity.
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"} {
		_ = os.Unsetenv(k)
	}
	return m.Run()
}

type options struct {
	seed     bool
	disable  []string
	settings map[string]string
	// sessionIdle overrides host.json's sessionIdleTimeout (30 s): with 8 session slots
	// and one message per session, 50 sessions would otherwise take 50/8 × 30 s.
	sessionIdle time.Duration
}

// start runs patrol locally for one test: emulators, devhost, the handler process.
func start(tb testing.TB, o options) *demo.System {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out io.Writer = io.Discard
	if testing.Verbose() && os.Getenv("PATROL_SYSTEMTEST_LOG") != "" {
		out = os.Stderr
	}
	sys, err := demo.Start(ctx, demo.Options{
		AppRoot: appRoot, Dir: tb.TempDir(), Command: []string{patrolBin, "serve"}, Seed: o.seed,
		Logger: slog.New(slog.NewTextHandler(out, nil)), HandlerLog: out, DisableTriggers: o.disable, Settings: o.settings,
		SessionIdleTimeout: o.sessionIdle,
	})
	if err != nil {
		cancel()
		tb.Fatalf("start the local system: %v", err)
	}
	if err := sys.WatchOutcomes(ctx); err != nil {
		cancel()
		sys.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cancel()
		sys.Close()
	})
	return sys
}

// waitOutcome waits for an outcome on pat-events.
func waitOutcome(tb testing.TB, sys *demo.System, what string, match func(rotation.Outcome) bool) rotation.Outcome {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, _, err := sys.Outcomes.Wait(ctx, 0, match)
	if err != nil {
		tb.Fatalf("%s: %v\noutcomes so far: %s", what, err, summarize(sys.Outcomes.All()))
	}
	return o
}

func summarize(all []rotation.Outcome) string {
	var b strings.Builder
	for _, o := range all {
		fmt.Fprintf(&b, "\n  %s %s %s %s %s", o.Secret, o.Trigger, o.Status, o.Reason, o.Op)
	}
	return b.String()
}

// settle waits until no invocation is in flight and the queues are drained, twice in
// a row (an invocation may enqueue more work).
func settle(tb testing.TB, sys *demo.System) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := 0
	for quiet < 3 {
		if err := sys.Host.WaitIdle(ctx); err != nil {
			tb.Fatalf("settle: %v", err)
		}
		if active(sys) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("settle: queues still busy: %d active messages", active(sys))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// active counts messages waiting or locked in patrol's queues (not scheduled ones).
func active(sys *demo.System) int {
	n := 0
	for _, e := range sys.Stack.SB.Store().Snapshot() {
		switch e.Path {
		case "hr-offboarding", "pat-rotations", "pat-revocations":
			if e.Kind != "deadletter" {
				n += e.Counts.Active + e.Counts.Locked
			}
		}
	}
	return n
}

// requireInvariants checks docs/design.md's invariants after a test.
func requireInvariants(tb testing.TB, sys *demo.System) {
	tb.Helper()
	checks, err := sys.CheckInvariants(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range checks {
		for _, f := range c.Failures {
			tb.Errorf("invariant %q: %s", c.Name, f)
		}
	}
}

func countOutcomes(all []rotation.Outcome, match func(rotation.Outcome) bool) int {
	n := 0
	for _, o := range all {
		if match(o) {
			n++
		}
	}
	return n
}

var serviceAccount = stack.ServiceAccount
