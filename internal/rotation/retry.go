package rotation

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Decision: one retry layer per kind of failure (docs/architecture.md, "Retries").
//
//   - A transient failure of a Key Vault, Azure DevOps or sign-in call (a dropped
//     connection, 408, 429, 5xx) is retried here, per protocol step, and nowhere else:
//     at most RetryAttempts attempts, waiting the server's Retry-After when it sent one
//     and a jittered 1s, 2s back-off otherwise. The core is the layer that knows what a
//     repeat means (a create whose answer was lost is cleaned up before the next create;
//     a write whose answer was lost is looked at before anything is revoked), so those
//     clients make one try per call: the Key Vault SDK client is built with MaxRetries
//     -1 ("one try and no retries" in azcore; 0 would mean its default of 3) and the
//     Azure DevOps client has no retry loop. A persistent 503 from either therefore
//     costs exactly RetryAttempts requests per step.
//   - Service Bus operations (the Effects of steps 7–8) are called once here: the
//     azservicebus client retries them, because only its retry loop recovers a lost
//     AMQP connection or link (package servicebus). Their idempotence comes from the
//     broker's duplicate detection, not from anything the core would add.
//   - A short throttle is sat out here, up to MaxRetryWait in all (throttles do not
//     count against RetryAttempts), rather than handed to the
//     trigger: a failed invocation makes the host abandon its message, and Service Bus
//     redelivers an abandoned message at once, burning MaxDeliveryCount in seconds.
//     A longer Retry-After (Azure DevOps throttles per identity over a sliding 5
//     minutes) is not waited out inside the invocation, which would hold the message's
//     session and the instance for minutes: the step fails with an error carrying it
//     (RetryAfter), and the function app reschedules the command as a scheduled message
//     at now + Retry-After and completes the one it holds (functionapp's reschedule.go).
//     No wait runs past the caller's deadline (less deadlineMargin, to report the
//     failure).
//   - What outlasts that fails the invocation, and the trigger's redelivery is the
//     retry: Service Bus redelivers the command (every step is idempotent per operation
//     id), Event Grid retries its delivery, the next Sweep repeats the sweep, an HTTP
//     caller repeats its request under the same operation id. Key Vault calls made
//     outside the core (the function app listing the vault) make one try and rely on
//     that alone.
const (
	// RetryAttempts is how many times the core tries one step, the first included.
	RetryAttempts = 3
	// MaxRetryWait is the longest Retry-After the core waits for inside one
	// invocation; a longer one is surfaced as a retryable error carrying it, and the
	// function app reschedules the command. 30s keeps a throttled invocation short
	// next to the Functions timeout and the 5-minute session lock, while a Retry-After
	// of a few seconds (Key Vault's usual) is still sat out in place.
	MaxRetryWait = 30 * time.Second

	retryBase      = time.Second
	deadlineMargin = 30 * time.Second
)

// do calls f, retrying transient errors (see the Decision above). A throttle (an error
// carrying a Retry-After) does not use up an attempt: it is sat out while the waits add
// up to no more than MaxRetryWait, so a busy vault slows a step down instead of failing
// it; past that the error goes back with its Retry-After and the function app
// reschedules the command.
func do[T any](ctx context.Context, r *Rotator, f func() (T, error)) (T, error) {
	var throttled time.Duration
	for attempt := 1; ; {
		v, err := f()
		if err == nil || IsPermanent(err) || errors.Is(err, ErrNotFound) || ctx.Err() != nil {
			return v, err
		}
		wait := RetryAfter(err)
		switch {
		case wait > 0:
			if throttled+wait > MaxRetryWait {
				return v, err
			}
			throttled += wait
		case attempt >= RetryAttempts:
			return v, err
		default:
			wait = retryBase << (attempt - 1)
			// ±20% jitter so throttled callers do not retry in step; scheduling only,
			// never a decision.
			wait += time.Duration((rand.Float64()*0.4 - 0.2) * float64(wait))
			attempt++
		}
		if !fitsDeadline(ctx, wait) {
			return v, err
		}
		if serr := r.clock.Sleep(ctx, wait); serr != nil {
			return v, err
		}
	}
}

func doErr(ctx context.Context, r *Rotator, f func() error) error {
	_, err := do(ctx, r, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// fitsDeadline: waiting d leaves the caller time to report. Deadlines are wall-clock
// instants whatever the Clock says, so this reads the real time.
func fitsDeadline(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) >= d+deadlineMargin
}
