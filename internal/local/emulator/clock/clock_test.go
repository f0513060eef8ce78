package clock

import (
	"sync/atomic"
	"testing"
	"time"
)

var start = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestManualClock(t *testing.T) {
	tests := map[string]struct {
		schedule []time.Duration // timers relative to start
		stop     map[int]bool    // indexes stopped before advancing
		advance  time.Duration
		want     []int // indexes fired, in order
	}{
		"a manual clock fires nothing until it is advanced": {
			schedule: []time.Duration{time.Second}, advance: 0, want: nil,
		},
		"timers fire in time order, not in scheduling order": {
			schedule: []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour}, advance: 4 * time.Hour, want: []int{1, 2, 0},
		},
		"a timer beyond the advanced span stays pending": {
			schedule: []time.Duration{time.Hour, 48 * time.Hour}, advance: 24 * time.Hour, want: []int{0},
		},
		"a stopped timer never fires": {
			schedule: []time.Duration{time.Hour, 2 * time.Hour}, stop: map[int]bool{0: true}, advance: 3 * time.Hour, want: []int{1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := NewManual(start)
			var got []int
			timers := make([]*Timer, len(tc.schedule))
			for i, d := range tc.schedule {
				timers[i] = c.AfterFunc(d, func() { got = append(got, i) })
			}
			for i := range tc.stop {
				if !timers[i].Stop() {
					t.Fatalf("Stop(%d) = false for a pending timer", i)
				}
			}
			c.Advance(tc.advance)
			if len(got) != len(tc.want) {
				t.Fatalf("fired %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("fired %v, want %v", got, tc.want)
				}
			}
			if now := c.Now(); !now.Equal(start.Add(tc.advance)) {
				t.Fatalf("Now() = %v, want %v", now, start.Add(tc.advance))
			}
		})
	}
}

func TestTimerScheduledByACallbackWithinTheSpanAlsoFires(t *testing.T) {
	c := NewManual(start)
	var second atomic.Bool
	c.AfterFunc(time.Hour, func() {
		c.AfterFunc(time.Hour, func() { second.Store(true) })
	})
	c.Advance(3 * time.Hour)
	if !second.Load() {
		t.Fatal("a timer scheduled by a callback for a time inside the advanced span did not fire")
	}
}

func TestWallClockAdvanceMovesTimeAndFiresTimers(t *testing.T) {
	c := New()
	before := c.Now()
	fired := make(chan struct{})
	c.AfterFunc(30*24*time.Hour, func() { close(fired) })
	c.Advance(31 * 24 * time.Hour)
	select {
	case <-fired:
	default:
		t.Fatal("advancing a wall clock past a timer did not fire it")
	}
	if got := c.Since(before); got < 31*24*time.Hour {
		t.Fatalf("after advancing 31 days, Since = %v", got)
	}
}

func TestWallClockTimerFiresWithRealTime(t *testing.T) {
	c := New()
	select {
	case <-c.After(10 * time.Millisecond):
	case <-time.After(5 * time.Second):
		t.Fatal("a wall-clock timer did not fire as real time passed")
	}
}

func TestAtInThePastRunsPromptlyOnAManualClock(t *testing.T) {
	c := NewManual(start)
	done := make(chan struct{})
	c.At(start.Add(-time.Minute), func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a timer for a past time did not run")
	}
}
