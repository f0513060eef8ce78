package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Adapters translate their transport errors into these at the edge (an HTTP 404 from
// Key Vault becomes ErrNotFound) and implement Permanent/RetryAfter on their own error
// types; the core classifies errors only through those methods.
var (
	// ErrNotFound: the secret (SecretStore) or the PAT (PATs.Revoke: treat as done)
	// does not exist.
	ErrNotFound error = &sentinel{msg: "not found", permanent: true}
	// ErrNotPermitted: the caller may not do this, e.g. revoke another user's PAT
	// through the token administration API without that permission.
	ErrNotPermitted error = &sentinel{msg: "not permitted", permanent: true}
	// ErrUnmanaged: an adapter refused to write a secret version without
	// patrol-managed=true.
	ErrUnmanaged error = &sentinel{msg: "secret is not managed by patrol (tag " + TagManaged + "=true missing)", permanent: true}
	// ErrFullScopeRefused: patrol-scopes asks for full access without
	// patrol-allow-full-scope=true (wrapped in a *TagError).
	ErrFullScopeRefused error = &sentinel{msg: "full-scope PAT refused", permanent: true}
)

type sentinel struct {
	msg       string
	permanent bool
}

func (e *sentinel) Error() string   { return e.msg }
func (e *sentinel) Permanent() bool { return e.permanent }

// Classification is what the core needs to know about an adapter error. Errors that
// implement neither method are treated as transient: an unknown failure (a reset
// connection, a timeout) is more often worth a retry than not, and a retry of any
// protocol step is safe.
type Classification interface {
	// Permanent reports that retrying cannot help (policy violation, bad request,
	// access denied, not signed in).
	Permanent() bool
}

// RetryAfterer is implemented by errors that carry the server's Retry-After.
type RetryAfterer interface {
	RetryAfter() time.Duration
}

// IsPermanent reports whether err is classified permanent. Cancellation is never
// permanent: the work was interrupted, not refused.
func IsPermanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var c Classification
	if errors.As(err, &c) {
		return c.Permanent()
	}
	return false
}

// RetryAfter returns the delay the server asked for, or 0.
func RetryAfter(err error) time.Duration {
	var r RetryAfterer
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	return 0
}

// Step names a protocol step in errors and logs.
type Step string

// Protocol steps (docs/design.md "The rotation protocol").
const (
	StepGather             Step = "gather"
	StepSignIn             Step = "sign in"
	StepCleanup            Step = "revoke leftovers"
	StepCreate             Step = "create PAT"
	StepVerify             Step = "verify PAT"
	StepStore              Step = "store version"
	StepScheduleRevocation Step = "schedule revocation"
	StepScheduleWakeup     Step = "schedule wake-up"
	StepPublish            Step = "publish outcome"
	StepRevoke             Step = "revoke PAT"
)

// StepError is the error Rotator returns: which secret, which step, what went wrong.
// It keeps the wrapped error's classification.
type StepError struct {
	Secret string
	Step   Step
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("rotation: secret %q: %s: %v", e.Secret, e.Step, e.Err)
}
func (e *StepError) Unwrap() error             { return e.Err }
func (e *StepError) Permanent() bool           { return IsPermanent(e.Err) }
func (e *StepError) RetryAfter() time.Duration { return RetryAfter(e.Err) }

// TagError names a bad tag and its value (tag values are policy, never secrets).
type TagError struct {
	Tag     string
	Value   string
	Problem string
	// Err is a sentinel for callers that branch on the kind (ErrFullScopeRefused).
	Err error
}

// Unwrap returns the sentinel, if any.
func (e *TagError) Unwrap() error { return e.Err }

func (e *TagError) Error() string {
	return fmt.Sprintf("tag %s=%q: %s", e.Tag, e.Value, e.Problem)
}

// Permanent: a retry reads the same tags.
func (e *TagError) Permanent() bool { return true }

// permanentError marks an error the core itself decided cannot be retried.
type permanentError struct{ error }

func (e permanentError) Unwrap() error   { return e.error }
func (e permanentError) Permanent() bool { return true }

func permanent(format string, a ...any) error { return permanentError{fmt.Errorf(format, a...)} }
