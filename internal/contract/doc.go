// Package contract is patrol's message contract: the words and shapes that cross a
// process boundary and must mean the same on both sides. It holds the Service Bus
// entity names, the rotation and revocation commands, the HR offboarding message (with
// its JSON Schema in schema/), the outcome published on pat-events (body, subject and
// application properties), the status of a secret as `patrol status` and the
// SecretStatus function report it, and the decoders and validators of those bodies.
//
// It is a leaf: it imports nothing of patrol's, so the core (internal/rotation), the
// custom-handler protocol (handlers), the Service Bus adapter and the CLI can all
// import it without importing each other. Transport quirks (the Functions host's
// envelope, double-encoded strings) are not here; package handlers unwraps those and
// hands the plain body to the decoders here.
//
// Decoders are strict about meaning and name the field at fault: every error of
// outside input is a *FieldError matching ErrMalformed, and never quotes more than a
// clipped fragment of the input.
package contract
