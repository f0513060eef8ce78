package contract

import "time"

// Service Bus entities (docs/architecture.md). Deployments (infra/), the local broker
// and function.json name the same ones; tests keep them in agreement.
const (
	// QueueOffboarding receives HR's OffboardingMessage.
	QueueOffboarding = "hr-offboarding"
	// QueueRotations receives RotationCommand; it requires sessions (session id = the
	// secret name) so one secret's commands run one at a time.
	QueueRotations = "pat-rotations"
	// QueueRevocations receives (usually scheduled) RevocationCommand.
	QueueRevocations = "pat-revocations"
	// TopicEvents carries every Outcome.
	TopicEvents = "pat-events"
	// QueueReplies carries the outcome that ends each rotation operation once more, for
	// whoever asks about that operation (RotateNow's ?wait=, SecretStatus's
	// ?operation=) on whatever instance: it requires sessions, and the session id is the
	// operation id, so a reader accepts exactly its operation's session and peeks
	// (never receives) its outcome. Replies expire after ReplyTTL; nobody consumes them.
	QueueReplies = "pat-replies"
)

// ReplyTTL is how long an outcome stays on QueueReplies: far longer than any wait, and
// long enough for an operator to look an operation up the same day.
const ReplyTTL = 24 * time.Hour

// SchemaVersion is the only version of patrol's message formats so far. Decoders refuse
// other versions rather than guess at their meaning.
const SchemaVersion = "1"
