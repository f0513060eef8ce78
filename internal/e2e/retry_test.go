package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/local/emulator/journal"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The retry layering (rotation's retry.go, docs/architecture.md "Retries"), through the
// real clients: the core tries a Key Vault or Azure DevOps step three times and their
// clients make one request per try, so a persistent 503 costs exactly three requests per
// step (while azcore retried inside the core's retries the same outage cost twelve);
// Service Bus operations are retried by the SDK alone, the first send and three retries.
func TestAPersistent503CostsABoundedNumberOfRequestsPerStep(t *testing.T) {
	e := newEnv(t, envOptions{})
	// failed counts the journal's 503 answers to op, on the secret's path when named.
	failed := func(j *journal.Journal, op, secret string) func() int {
		return func() int {
			n := 0
			for _, en := range j.Entries() {
				if en.Operation == op && en.Status == http.StatusServiceUnavailable &&
					(secret == "" || strings.HasSuffix(strings.TrimSuffix(en.Path, "/"), "/secrets/"+secret)) {
					n++
				}
			}
			return n
		}
	}
	for name, tc := range map[string]struct {
		emulator, op string
		count        func(secret string) func() int
		wantStep     rotation.Step
		want         int
	}{
		"Key Vault reads, in the gather step: three": {
			emulator: "keyvault", op: "GetSecret", wantStep: rotation.StepGather, want: 3,
			count: func(s string) func() int { return failed(e.st.KV.Journal(), "GetSecret", s) }},
		"Key Vault writes, in the store step: three": {
			emulator: "keyvault", op: "SetSecret", wantStep: rotation.StepStore, want: 3,
			count: func(s string) func() int { return failed(e.st.KV.Journal(), "SetSecret", s) }},
		"Azure DevOps creates, in the create step: three": {
			emulator: "devops", op: "CreatePat", wantStep: rotation.StepCreate, want: 3,
			count: func(string) func() int { return failed(e.st.DevOps.Journal(), "CreatePat", "") }},
		"Service Bus sends, in the schedule-revocation step: four": {
			emulator: "servicebus", op: "send", wantStep: rotation.StepScheduleRevocation, want: 4,
			count: func(string) func() int { return func() int { return e.st.SBFaults.Hits("send") } }},
	} {
		t.Run(name, func(t *testing.T) {
			secret := "attempts-" + slug(name)
			e.mustAdopt(secret)
			count := tc.count(secret)
			before := count()
			inj := e.allFaults()[tc.emulator]
			inj.Set(tc.op, fault.Fault{Status: http.StatusServiceUnavailable})
			o, err := e.rotate(secret, rotation.NewOpID())
			got := count() - before
			inj.Reset()
			if err == nil || rotation.IsPermanent(err) || !o.Retryable || o.Step != tc.wantStep {
				t.Fatalf("Run = %s at %q retryable=%v, %v; want a retryable failure at %s", o.Status, o.Step, o.Retryable, err, tc.wantStep)
			}
			if got != tc.want {
				t.Errorf("%d %s requests answered 503, want %d", got, tc.op, tc.want)
			}
		})
	}
}
