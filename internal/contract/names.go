package contract

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
)

// SchemaVersion is the only version of patrol's message formats so far. Decoders refuse
// other versions rather than guess at their meaning.
const SchemaVersion = "1"
