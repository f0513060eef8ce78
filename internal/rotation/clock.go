package rotation

import (
	"context"
	"time"
)

// Clock is patrol's one time source: what time it is (every decision takes `now` from
// it) and how to wait (back-off between retries). Production uses SystemClock; the local
// stack passes the emulators' time (its waits stay real: back-off is about the server,
// not about the emulated calendar); tests pass a clock whose Sleep does not wait.
//
// It is defined once, here, and built once, by the composition root (wiring), which
// hands the same value to the core, the adapters and the function app.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, whichever comes first, and returns ctx's error
	// in the second case.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
var SystemClock Clock = NowFunc(time.Now)

// NowFunc is a Clock that reads the time from the function and waits in real time:
// the system clock, or a clock offset from it such as the local stack's emulated time.
type NowFunc func() time.Time

// Now calls f.
func (f NowFunc) Now() time.Time { return f() }

// Sleep waits d in real time or until ctx ends.
func (NowFunc) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
