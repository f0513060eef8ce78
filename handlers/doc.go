// Package handlers is patrol's Azure Functions custom-handler protocol layer and nothing
// else: it answers the host's readiness probe, decodes the host's `{Data, Metadata}`
// invocation envelope into typed inputs, calls the business logic through the App
// interface it owns, and encodes `{Outputs, Logs, ReturnValue}`. Each function has its
// own file (rotate.go, sweep.go, …) holding its entry of the function table and its
// decode-and-invoke. Service Bus message bodies are patrol's message contract: this
// package unwraps them from the host's encoding and internal/contract decodes them.
//
// The host's payloads are not what a reader of the docs expects (see
// shared/reference/protocols.md §1): string trigger values and string metadata arrive
// JSON-encoded a second time, integers arrive as strings, Event Grid data may be an
// object or a string, and dates lose their zone. Every decoder here is tolerant of those
// shapes and strict about meaning: a value that cannot be understood yields an error
// naming the field.
//
// Failure semantics follow the host: a non-2xx answer fails the invocation, so the
// trigger retries (Service Bus abandons the message, Event Grid redelivers). That is
// right for transient errors too. patrol never settles a message itself: the host owns
// the lock (a settlement from patrol's own connection is refused for session entities,
// and the host's completion then fails). A message that can never succeed is reported
// once, at its first delivery (an error log and a failed outcome on pat-events naming
// its message id and reason), and its invocation fails every time, so Service Bus moves
// it to the entity's dead-letter queue after MaxDeliveryCount: nothing is lost and it
// ends where an operator looks for it (docs/design.md, "A message patrol cannot
// process").
//
// The protocol is written by hand: it is small (one JSON envelope each way), Microsoft
// ships no Go library for it, and the third-party ones (e.g. KarlGW/azfunc) decide
// failure semantics for the caller, which is exactly what patrol must control here.
package handlers
