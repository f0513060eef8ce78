package contract

import "fmt"

// MaxAttempt bounds a command's Attempt: patrol stops rescheduling a throttled command
// well before it (functionapp.MaxReschedules), so a larger value was not sent by patrol.
const MaxAttempt = 100

func checkAttempt(doc string, n int) error {
	if n < 0 || n > MaxAttempt {
		return Malformed(doc, "attempt", "%d is not between 0 and %d", n, MaxAttempt)
	}
	return nil
}

// ThrottledMessageID is the MessageId of a command rescheduled after throttling: the
// command's own id (its operation id, or revoke-<patId>) and the attempt it becomes.
// Two copies of one delivery rescheduled alike collapse in duplicate detection; the
// next reschedule of the same operation is a new message.
func ThrottledMessageID(id string, attempt int) string {
	return fmt.Sprintf("%s-throttled-%d", id, attempt)
}
