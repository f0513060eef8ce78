package systemtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/demo"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// peakRSS reads a process's peak resident set size (VmHWM) in KiB from /proc.
// largestPeakRSS is the largest peak RSS (KiB) of the handler processes, one per scale
// group: what one instance of the busiest function needed.
func largestPeakRSS(tb testing.TB, sys *demo.System) int {
	tb.Helper()
	most := 0
	for _, pid := range sys.Host.HandlerPIDs() {
		most = max(most, peakRSS(tb, pid))
	}
	return most
}

func peakRSS(tb testing.TB, pid int) int {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Logf("peak RSS unavailable: %v", err)
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// startToReady starts bin the way the Functions host does (a free port in
// FUNCTIONS_CUSTOMHANDLER_PORT) and measures the time until GET / answers.
func startToReady(tb testing.TB, bin string, args []string, env []string) time.Duration {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), env...), handlers.EnvPort+"="+strconv.Itoa(port))
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	for {
		if res, err := client.Get(url); err == nil {
			res.Body.Close()
			return time.Since(begin)
		}
		if time.Since(begin) > 10*time.Second {
			tb.Fatalf("%s never became ready", bin)
		}
		time.Sleep(time.Millisecond) // finer than the host's 25 ms poll, to measure
	}
}

// handlerEnv is a valid configuration that points nowhere: readiness must not need
// any network call.
var handlerEnv = []string{
	"PATROL_KEYVAULT_URL=https://nowhere.vault.azure.net",
	"ServiceBusConnection__fullyQualifiedNamespace=nowhere.servicebus.windows.net",
	"PATROL_TENANT_ID=11111111-1111-4111-8111-111111111111",
	"PATROL_CLIENT_ID=33333333-3333-4333-8333-333333333333",
	"ServiceBusConnection=",
}

// BenchmarkHandlerStartToReady: process start to the first answered GET /, for
// `patrol serve` and for a bare Go HTTP server (bench/bareserver), started alternately
// so both see the same machine load. Reports each median and their ratio (the goal is
// at most 1.2: the deployed binary links nothing a handler does not need).
func BenchmarkHandlerStartToReady(b *testing.B) {
	var patrol, bare []time.Duration
	for b.Loop() {
		patrol = append(patrol, startToReady(b, patrolBin, []string{"serve"}, handlerEnv))
		bare = append(bare, startToReady(b, bareBin, nil, handlerEnv))
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	p, q := median(patrol), median(bare)
	b.ReportMetric(float64(p.Microseconds())/1000, "patrol-ms-median")
	b.ReportMetric(float64(q.Microseconds())/1000, "bare-ms-median")
	b.ReportMetric(float64(p)/float64(q), "ratio")
}

// BenchmarkRotationsThroughTheQueue: manual rotation commands sent to pat-rotations
// (one session per secret), each rotated by the handler end to end (token, PAT create,
// verify, Key Vault write, revocation scheduled, outcome published), timed until every
// outcome arrived on pat-events.
//
// Keep -benchtime at 30x or less: the Azure DevOps emulator enforces the service's
// per-identity budget (200 units per sliding 5 minutes), a rotation spends about four,
// and the adoptions here spend some already. Past the budget, rotations wait for
// Retry-After and the figure measures the throttle, not patrol.
func BenchmarkRotationsThroughTheQueue(b *testing.B) {
	// Back-to-back manual rotations of one secret: no cooldown.
	sys := start(b, options{sessionIdle: 500 * time.Millisecond, settings: map[string]string{"PATROL_MANUAL_COOLDOWN": "0"}})
	ctx := context.Background()
	const secrets = 8
	if err := sys.SignIn(ctx, stack.ServiceAccount); err != nil {
		b.Fatal(err)
	}
	for i := range secrets {
		if _, err := sys.Adopt(ctx, fmt.Sprintf("bench-%02d", i), svcPolicy); err != nil {
			b.Fatal(err)
		}
	}
	settle(b, sys)
	// Manual commands must be signed (docs/security.md); the operator's side reads the
	// same key the handler does.
	key, err := sys.Ops.IdentityStore.CommandKeys().SigningKey(ctx)
	if err != nil {
		b.Fatal(err)
	}
	from := sys.Outcomes.Len()
	n := 0
	begin := time.Now()
	for b.Loop() {
		cmd := contract.RotationCommand{SchemaVersion: contract.SchemaVersion, Secret: fmt.Sprintf("bench-%02d", n%secrets),
			OperationID: rotation.NewOpID(), Trigger: contract.TriggerManual, RequestedBy: "bench", RequestedAt: sys.Stack.Clock.Now()}
		if err := cmd.Sign(key); err != nil {
			b.Fatal(err)
		}
		if err := sys.Ops.Bus.SendRotation(ctx, cmd, time.Time{}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for got := 0; got < n; got++ {
		var err error
		if _, from, err = sys.Outcomes.Wait(wctx, from, func(o rotation.Outcome) bool {
			return o.Trigger == rotation.TriggerManual && o.Status == rotation.StatusRotated
		}); err != nil {
			b.Fatalf("%d of %d rotations: %v", got, n, err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(begin).Seconds(), "rotations/s")
}

// BenchmarkOffboardingPeakRSS: the handler's peak resident memory (VmHWM) while it
// offboards a person owning 50 PATs among 500 managed secrets.
func BenchmarkOffboardingPeakRSS(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		sys := start(b, options{sessionIdle: 500 * time.Millisecond})
		owned := seedOffboarding(b, sys, 500, 50)
		b.StartTimer()
		msg := contract.OffboardingMessage{SchemaVersion: contract.SchemaVersion, EventID: "hr-" + rotation.NewOpID(), Person: contract.Person{UPN: stack.Person}}
		if err := sys.Ops.Bus.SendOffboarding(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
		waitOffboarded(b, sys, owned)
		b.ReportMetric(float64(largestPeakRSS(b, sys))/1024, "MiB-peak-RSS")
	}
}
