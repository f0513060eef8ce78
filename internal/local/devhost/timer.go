package devhost

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// timerTriggers runs every timerTrigger function on the host's clock. Like the host's
// singleton timer, a function never runs twice at once: a tick that falls due while
// the previous run is still going is dropped.
type timerTriggers struct {
	h      *Host
	timers map[string]*timerState // by lower-case function name
}

type timerState struct {
	fn    Function
	sched Schedule
	auto  bool // driven by the schedule (not disabled)

	mu      sync.Mutex
	last    time.Time // scheduled time of the previous run
	pending *clock.Timer
	ticks   chan tick
	running sync.Mutex // serialises runs (schedule and TriggerTimer)
}

type tick struct {
	scheduled time.Time // zero for runOnStartup
	firedAt   time.Time
}

func newTimerTriggers(h *Host) (*timerTriggers, error) {
	t := &timerTriggers{h: h, timers: map[string]*timerState{}}
	for _, f := range h.def.Functions {
		b := f.TriggerBinding()
		if b.Type != TypeTimerTrigger {
			continue
		}
		s, err := ParseSchedule(b.Schedule)
		if err != nil {
			return nil, fmt.Errorf("devhost: %s: function %s: %w", f.File, f.Name, err)
		}
		t.timers[strings.ToLower(f.Name)] = &timerState{
			fn: f, sched: s, auto: !slices.ContainsFunc(h.opts.DisableTriggers, func(n string) bool { return strings.EqualFold(n, f.Name) }),
			ticks: make(chan tick, 1),
		}
	}
	return t, nil
}

func (t *timerTriggers) start() {
	for _, ts := range t.timers {
		if !ts.auto {
			continue
		}
		t.h.wg.Add(1)
		go t.worker(ts)
		if ts.fn.TriggerBinding().RunOnStartup {
			ts.enqueue(tick{firedAt: t.h.clk.Now()})
		}
		t.arm(ts, t.h.clk.Now())
	}
}

// arm schedules the next occurrence after from.
func (t *timerTriggers) arm(ts *timerState, from time.Time) {
	at := ts.sched.Next(from)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.h.ctx.Err() != nil {
		return
	}
	ts.pending = t.h.clk.At(at, func() {
		now := t.h.clk.Now()
		ts.enqueue(tick{scheduled: at, firedAt: now})
		// The host computes the next occurrence from now, so a clock that jumps over
		// several occurrences yields one (past-due) run, not a burst.
		t.arm(ts, maxTime(at, now))
	})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (ts *timerState) enqueue(tk tick) {
	select {
	case ts.ticks <- tk:
	default: // a run is already waiting: drop, like the host's singleton lock
	}
}

func (t *timerTriggers) worker(ts *timerState) {
	defer t.h.wg.Done()
	for {
		select {
		case <-t.h.ctx.Done():
			return
		case tk := <-ts.ticks:
			if t.h.workerFor(ts.fn).waitHandler(t.h.ctx) != nil {
				return
			}
			if err := t.run(t.h.ctx, ts, tk); err != nil {
				// Timers are not retried without a retry policy; the next occurrence runs.
				t.h.log.Debug("devhost: timer run failed", "function", ts.fn.Name, "err", err)
			}
		}
	}
}

// run invokes the function for one tick.
func (t *timerTriggers) run(ctx context.Context, ts *timerState, tk tick) error {
	ts.running.Lock()
	defer ts.running.Unlock()
	ref := tk.scheduled
	if ref.IsZero() {
		ref = tk.firedAt
	}
	next := ts.sched.Next(ref)
	ts.mu.Lock()
	last := ts.last
	ts.last = ref
	ts.mu.Unlock()
	info := TimerTick{Last: last, Next: next, IsPastDue: isPastDue(ts.sched, tk)}
	ictx, cancel := t.h.invocationContext(ctx)
	defer cancel()
	_, err := t.h.invoke(ictx, ts.fn, uuid.NewString(), BuildTimer(ts.fn, info, NewStamp(t.h.clk.Now())))
	return err
}

// isPastDue reports whether the tick fired after the occurrence following its own:
// at least one run was missed (the clock jumped, or the host was down).
func isPastDue(s Schedule, tk tick) bool {
	if tk.scheduled.IsZero() {
		return false
	}
	return !s.Next(tk.scheduled).After(tk.firedAt)
}

func (t *timerTriggers) stop() {
	for _, ts := range t.timers {
		ts.mu.Lock()
		if ts.pending != nil {
			ts.pending.Stop()
		}
		ts.mu.Unlock()
	}
}

// TriggerTimer runs a timer function now, as the admin API does, and waits for the
// invocation. It does not move the schedule.
func (h *Host) TriggerTimer(ctx context.Context, function string) error {
	ts, ok := h.timers.timers[strings.ToLower(function)]
	if !ok {
		return fmt.Errorf("devhost: %q is not a timer-triggered function", function)
	}
	return h.timers.run(ctx, ts, tick{firedAt: h.clk.Now()})
}

// NextTimer returns when a timer function is next due on the host's clock (zero if it
// is not scheduled).
func (h *Host) NextTimer(function string) time.Time {
	ts, ok := h.timers.timers[strings.ToLower(function)]
	if !ok {
		return time.Time{}
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.pending == nil {
		return time.Time{}
	}
	return ts.pending.When()
}
