package e2e

import (
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// minimum is what one rotation of a warm process cannot do without, per service:
//   - Key Vault: read the current version (gather) and write the new one.
//   - Azure DevOps: list the account's PATs (revoke an earlier attempt's leftover:
//     crash safety), create, and verify as the new PAT.
//   - Entra ID: nothing while the access token is cached (one refresh an hour).
//   - Service Bus: schedule the revocation, schedule the wake-up, publish the outcome.
var minimum = map[string]int{"keyvault": 2, "devops": 3, "entra": 0, "servicebus": 3}

var services = []string{"entra", "keyvault", "devops", "servicebus"}

// requestCounts reads the emulators' journals (and, for the broker, which keeps no
// journal, the messages its entities accepted).
func (e *env) requestCounts() map[string]int {
	out := map[string]int{
		"entra":    len(e.st.Entra.Journal().Entries()),
		"keyvault": len(e.st.KV.Journal().Entries()),
		"devops":   len(e.st.DevOps.Journal().Entries()),
	}
	for _, ent := range e.st.SB.Store().Snapshot() {
		switch ent.Path {
		case "pat-revocations", "pat-rotations", "pat-events/Subscriptions/all":
			c := ent.Counts
			out["servicebus"] += c.Active + c.Locked + c.Deferred + c.Scheduled + c.DeadLettered
		}
	}
	return out
}

// BenchmarkRotation measures one manual rotation of an adopted secret through the
// real clients and adapters, with 10 ms of latency injected into every request of
// every emulator, and prints the requests per service next to the protocol's minimum
// and the time per rotation next to the sum of the unavoidable round trips.
func BenchmarkRotation(b *testing.B) { benchmarkRotation(b, false) }

// BenchmarkColdRotation is the same with a new process for every rotation (a Functions
// instance that just started): the workload and service-account tokens, the Key Vault
// challenge and the AMQP connection are paid again.
func BenchmarkColdRotation(b *testing.B) { benchmarkRotation(b, true) }

func benchmarkRotation(b *testing.B, cold bool) {
	const latency = 10 * time.Millisecond
	e := newEnv(b, envOptions{})
	const secret = "bench"
	e.mustAdopt(secret)
	// Warm up: challenge, links and token caches are per process, not per rotation.
	if _, err := e.rotate(secret, rotation.NewOpID()); err != nil {
		b.Fatal(err)
	}
	for _, f := range e.allFaults() {
		f.Set("*", faultLatency(latency))
	}
	before := e.requestCounts()
	b.ResetTimer()
	for b.Loop() {
		if cold {
			e.rebuild(e.cfg)
		}
		o, err := e.rotate(secret, rotation.NewOpID())
		if err != nil || o.Status != rotation.StatusRotated {
			b.Fatalf("rotation: %s %v", o.Status, err)
		}
	}
	b.StopTimer()
	after := e.requestCounts()
	n := b.N
	per := b.Elapsed() / time.Duration(n)

	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "service\trequests/rotation\tminimum\t\n")
	unavoidable := 0
	for _, s := range services {
		got := float64(after[s]-before[s]) / float64(n)
		b.ReportMetric(got, s+"-req/op")
		fmt.Fprintf(tw, "%s\t%.2f\t%d\t\n", s, got, minimum[s])
		unavoidable += minimum[s]
	}
	_ = tw.Flush()
	floor := time.Duration(unavoidable) * latency
	fmt.Fprintf(&sb, "time/rotation with %v per request: %v; sum of the %d unavoidable round trips: %v (%.2fx)\n",
		latency, per.Round(100*time.Microsecond), unavoidable, floor, float64(per)/float64(floor))
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/rotation")
	b.ReportMetric(float64(floor.Microseconds())/1000, "floor-ms")
	if cold {
		sb.WriteString("(cold: every rotation in a new process; the minimum is a warm process's)\n")
	}
	b.Log("\n" + sb.String())
}
