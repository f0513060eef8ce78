package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// plantMany stores n managed secrets under the service account straight into the
// emulator (their values are not PATs: a sweep reads tags, not values); the first due
// were issued 85 days before and expire inside the renew window, the rest in 60 days.
func (e *env) plantMany(n, due int) {
	e.t.Helper()
	now := e.st.Clock.Now()
	for i := range n {
		tags := rotation.Policy{Org: org, Scopes: strings.Fields(scopes), ServiceAccount: account}.Tags()
		tags[rotation.TagOwner], tags[rotation.TagPATID] = account, fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		exp, nbf := now.Add(60*24*time.Hour), now.Add(-30*24*time.Hour)
		if i < due {
			exp, nbf = now.Add(5*24*time.Hour), now.Add(-85*24*time.Hour)
		}
		if _, err := e.st.KV.Put(stack.Vault, fmt.Sprintf("scale-%05d", i), kvemu.NewSecret{Value: "placeholder-value", Tags: tags, Expires: &exp, NotBefore: &nbf}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// sweepRequests runs one sweep and returns the Key Vault requests it made and the
// rotation commands on the queue after it.
func (e *env) sweepOnce() (lists, gets, queued int, took time.Duration) {
	e.t.Helper()
	j := e.st.KV.Journal()
	l0, g0 := j.Count(kvemu.OpListSecrets), j.Count(kvemu.OpGetSecret)
	start := time.Now()
	if err := e.app().Sweep(e.ctx, handlers.SweepTick{}); err != nil {
		e.t.Fatalf("sweep: %v", err)
	}
	return j.Count(kvemu.OpListSecrets) - l0, j.Count(kvemu.OpGetSecret) - g0, len(e.messages(contract.QueueRotations)), time.Since(start)
}

// The sweep over more secrets than Key Vault serves reads in 10 seconds (4,000 per
// vault, which the emulator enforces) plans over the list pages and reads only the due
// secrets: one GET each, for the version id their commands carry. Reading every secret,
// it was throttled part-way and failed.
func TestSweepOverMoreSecretsThanKeyVaultReadsIn10Seconds(t *testing.T) {
	e := newEnv(t, envOptions{})
	const total, due = 4500, 20
	e.plantMany(total, due)
	lists, gets, queued, took := e.sweepOnce()
	t.Logf("sweep over %d secrets: %d list pages, %d GETs (%.3f Key Vault requests per secret), %d commands, %v",
		total, lists, gets, float64(lists+gets)/total, queued, took.Round(time.Millisecond))
	if gets != due || queued != due {
		t.Errorf("%d GETs and %d commands; want one GET and one command per due secret (%d)", gets, queued, due)
	}
}

// BenchmarkSweepAtScale: the timer sweep over 10,000 managed secrets, 100 of them due,
// in process against the emulators (Key Vault's 4,000-reads-per-10s limit on). Metrics:
// Key Vault requests per secret and commands enqueued; ns/op is the sweep's time.
func BenchmarkSweepAtScale(b *testing.B) {
	e := newEnv(b, envOptions{})
	const total, due = 10000, 100
	e.plantMany(total, due)
	var lists, gets, queued int
	for b.Loop() {
		l, g, q, _ := e.sweepOnce()
		lists, gets, queued = lists+l, gets+g, q
	}
	b.ReportMetric(float64(lists+gets)/float64(total*b.N), "kv-requests/secret")
	b.ReportMetric(float64(queued), "enqueued")
}
