// Package clock is the time source every emulator shares, so tests and demos can reach
// a PAT's expiry or a message's lock expiry by advancing time instead of waiting.
//
// A Clock is either wall time plus an offset (New: time passes on its own and Advance
// jumps ahead) or manual (NewManual: time stands still until Advance). Timers fire when
// the clock's time reaches them, whichever of the two moves it there.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is a controllable time source. The zero value is not usable; call New or
// NewManual.
type Clock struct {
	mu      sync.Mutex
	manual  bool
	base    time.Time     // manual: the current time
	offset  time.Duration // wall: added to time.Now
	timers  map[*Timer]struct{}
	advance sync.Mutex // serialises Advance so timers fire in order
}

// Timer is a pending callback scheduled on a Clock.
type Timer struct {
	c     *Clock
	at    time.Time
	f     func()
	real  *time.Timer
	fired bool
}

// New returns a clock that follows wall time; Advance moves it ahead of wall time.
func New() *Clock { return &Clock{timers: map[*Timer]struct{}{}} }

// NewManual returns a clock that stands at start until Advance moves it.
func NewManual(start time.Time) *Clock {
	return &Clock{manual: true, base: start, timers: map[*Timer]struct{}{}}
}

// Now returns the clock's current time (UTC).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *Clock) nowLocked() time.Time {
	if c.manual {
		return c.base
	}
	return time.Now().UTC().Add(c.offset)
}

// Since returns the time elapsed since t on this clock.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Advance moves the clock forward by d and runs, synchronously and in time order, every
// timer that became due. Callbacks run without the clock's lock held, so they may
// schedule further timers; one that falls due within the advanced span also runs.
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		d = 0
	}
	c.advance.Lock()
	defer c.advance.Unlock()
	c.mu.Lock()
	target := c.nowLocked().Add(d)
	if !c.manual {
		c.offset += d
	}
	c.mu.Unlock()
	c.runDue(target)
}

// runDue fires timers due by target one at a time, earliest first, re-reading the set
// after each callback because a callback may add or stop timers. A manual clock steps to
// each timer's time before running it, so callbacks see the time they were due at and a
// timer they schedule inside the span fires too.
func (c *Clock) runDue(target time.Time) {
	for {
		c.mu.Lock()
		var next *Timer
		for t := range c.timers {
			if !t.at.After(target) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			if c.manual {
				c.base = target
			}
			c.mu.Unlock()
			return
		}
		if c.manual && next.at.After(c.base) {
			c.base = next.at
		}
		c.takeLocked(next)
		c.mu.Unlock()
		next.f()
	}
}

// takeLocked removes t from the pending set and marks it fired. It reports whether t was
// still pending.
func (c *Clock) takeLocked(t *Timer) bool {
	if _, ok := c.timers[t]; !ok {
		return false
	}
	delete(c.timers, t)
	t.fired = true
	if t.real != nil {
		t.real.Stop()
	}
	return true
}

// AfterFunc runs f once the clock has moved d past now.
func (c *Clock) AfterFunc(d time.Duration, f func()) *Timer { return c.At(c.Now().Add(d), f) }

// At runs f once the clock's time reaches t. A time already past runs f at once, in its
// own goroutine, like time.AfterFunc(0).
func (c *Clock) At(at time.Time, f func()) *Timer {
	t := &Timer{c: c, at: at, f: f}
	c.mu.Lock()
	c.timers[t] = struct{}{}
	now := c.nowLocked()
	if !c.manual || !at.After(now) {
		// A wall clock needs a real timer; a manual one only for a time already past.
		wait := at.Sub(now)
		t.real = time.AfterFunc(max(wait, 0), func() { c.fireReal(t) })
	}
	c.mu.Unlock()
	return t
}

// fireReal is the real-timer path. A wall clock's offset may have changed since the
// real timer was armed, so it re-arms when the clock's time has not yet reached t.
func (c *Clock) fireReal(t *Timer) {
	c.mu.Lock()
	if _, ok := c.timers[t]; !ok {
		c.mu.Unlock()
		return
	}
	now := c.nowLocked()
	if t.at.After(now) {
		t.real = time.AfterFunc(t.at.Sub(now), func() { c.fireReal(t) })
		c.mu.Unlock()
		return
	}
	c.takeLocked(t)
	c.mu.Unlock()
	t.f()
}

// After returns a channel that receives the clock's time once d has passed on it.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.AfterFunc(d, func() { ch <- c.Now() })
	return ch
}

// Pending returns the due times of the timers not yet fired, earliest first (for tests
// and the inspection API).
func (c *Clock) Pending() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, 0, len(c.timers))
	for t := range c.timers {
		out = append(out, t.at)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// Stop cancels the timer. It reports whether the call stopped it before it fired.
func (t *Timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if _, ok := t.c.timers[t]; !ok {
		return false
	}
	delete(t.c.timers, t)
	if t.real != nil {
		t.real.Stop()
	}
	return true
}

// When returns the clock time at which the timer fires.
func (t *Timer) When() time.Time { return t.at }
