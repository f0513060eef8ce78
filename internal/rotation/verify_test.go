package rotation_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
	rt "github.com/patrol-dev/patrol/internal/rotation/rotationtest"
)

// A new PAT can take a moment to propagate: the core asks again after 1s and 2s before
// calling a refusal final and revoking the PAT.
func TestVerifyingARefusedNewPAT(t *testing.T) {
	refused := fmt.Errorf("401 Unauthorized: %w", rotation.ErrPATRefused)
	tests := map[string]struct {
		refusals  int
		rotated   bool
		wantSlept []time.Duration
	}{
		"refused once, accepted on the second try": {refusals: 1, rotated: true, wantSlept: []time.Duration{time.Second}},
		"refused twice, accepted on the third try": {refusals: 2, rotated: true, wantSlept: []time.Duration{time.Second, 2 * time.Second}},
		"refused three times: failed, PAT revoked": {refusals: 3, wantSlept: []time.Duration{time.Second, 2 * time.Second}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.w.Inject(rt.OpVerify, rt.Fault{Err: refused, Times: tc.refusals})
			o, err := f.run(manual("m1"))
			if fmt.Sprint(f.slept) != fmt.Sprint(tc.wantSlept) {
				t.Errorf("slept %v, want %v", f.slept, tc.wantSlept)
			}
			if tc.rotated {
				if err != nil || o.Status != rotation.StatusRotated {
					t.Fatalf("Run = %s, %v; want rotated", o.Status, err)
				}
				f.converged()
				return
			}
			if err == nil || o.Status != rotation.StatusFailed || o.Step != rotation.StepVerify {
				t.Fatalf("Run = %s at %q, %v; want failed at verify", o.Status, o.Step, err)
			}
			if n := f.w.Calls(rt.OpRevoke); n != 1 {
				t.Errorf("revocations = %d, want the refused PAT revoked once", n)
			}
		})
	}
}
