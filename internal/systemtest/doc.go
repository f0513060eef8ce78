// Package systemtest tests patrol as it is deployed: the real `patrol serve` binary
// (built once per test binary from ./cmd/patrol) running as a custom handler under the
// local Functions host (internal/local/devhost), against the emulators, started as the
// same assembly as `patrol-dev local` (internal/local/demo). Work reaches the handler
// only the way Azure delivers it: Event Grid deliveries, Service Bus queue and session
// messages, HTTP function calls and timer ticks, each in the payload shape the real
// host sends.
//
// What it covers that internal/e2e does not: the custom-handler protocol and the
// function.json bindings; Service Bus sessions serialising a secret's rotations and
// dead-lettering a malformed message; the same Event Grid event delivered twice; the
// Sweep timer rotating what is due and revoking orphaned PATs; RotateNow's HTTP errors;
// offboarding at scale (fifty of five hundred secrets); the handler process killed and
// restarted mid-rotation; the scripted demo tour with every invariant checked after
// it; and the handler's start-up time, queue throughput and peak memory as benchmarks.
// It does not exercise the operator CLI, sign-in failures or crashes at each protocol
// step; internal/e2e does.
//
// The package has no exported API.
package systemtest
