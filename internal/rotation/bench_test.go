package rotation

import (
	"testing"
)

// BenchmarkDecide: the sweep evaluates every managed secret each run.
func BenchmarkDecide(b *testing.B) {
	in := managed()
	trig := Trigger{Kind: TriggerSweep}
	for b.Loop() {
		_ = Decide(in, trig, now)
	}
}
