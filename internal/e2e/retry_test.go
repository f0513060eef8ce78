package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/local/emulator/journal"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The retry layering (rotation's retry.go, docs/architecture.md "Retries"): the core
// tries a step three times and the real SDK clients under it make one request per try.
// A persistent 503 therefore costs exactly three requests per step; while azcore
// retried inside the core's retries the same outage cost twelve.
func TestAPersistent503CostsThreeRequestsPerStep(t *testing.T) {
	e := newEnv(t, envOptions{})
	for name, tc := range map[string]struct {
		emulator, op string
		journal      func() *journal.Journal
		ofSecret     bool // the op's path names the secret (Key Vault)
		wantStep     rotation.Step
	}{
		"Key Vault reads, in the gather step": {
			emulator: "keyvault", op: "GetSecret", journal: e.st.KV.Journal, ofSecret: true, wantStep: rotation.StepGather},
		"Key Vault writes, in the store step": {
			emulator: "keyvault", op: "SetSecret", journal: e.st.KV.Journal, ofSecret: true, wantStep: rotation.StepStore},
		"Azure DevOps creates, in the create step": {
			emulator: "devops", op: "CreatePat", journal: e.st.DevOps.Journal, wantStep: rotation.StepCreate},
	} {
		t.Run(name, func(t *testing.T) {
			secret := "attempts-" + slug(name)
			e.mustAdopt(secret)
			failed := func() int {
				n := 0
				for _, en := range tc.journal().Entries() {
					if en.Operation == tc.op && en.Status == http.StatusServiceUnavailable &&
						(!tc.ofSecret || strings.HasSuffix(strings.TrimSuffix(en.Path, "/"), "/secrets/"+secret)) {
						n++
					}
				}
				return n
			}
			inj := e.allFaults()[tc.emulator]
			inj.Set(tc.op, fault.Fault{Status: http.StatusServiceUnavailable})
			o, err := e.rotate(secret, rotation.NewOpID())
			inj.Reset()
			if err == nil || rotation.IsPermanent(err) || !o.Retryable || o.Step != tc.wantStep {
				t.Fatalf("Run = %s at %q retryable=%v, %v; want a retryable failure at %s", o.Status, o.Step, o.Retryable, err, tc.wantStep)
			}
			if got := failed(); got != 3 {
				t.Errorf("%d %s requests answered 503, want 3: one per attempt of the core, none from the SDK", got, tc.op)
			}
		})
	}
}
