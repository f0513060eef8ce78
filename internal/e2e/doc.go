// Package e2e tests the rotation protocol end to end inside one test process: patrol's
// real adapters (Key Vault, Azure DevOps, MSAL, Service Bus), wired by internal/wiring
// and driven through the real Azure SDK clients, against every emulator started
// in-process by internal/local/stack. It calls the rotation core (the wired Rotator)
// and the operator CLI (internal/cli's cobra root, run in process) directly; there is no
// Functions host, no handler process and no trigger payload on the way.
//
// What it covers that internal/systemtest does not: the operator commands (login, adopt,
// rotate, status, plan) and their exit codes; sign-in failures (MFA, disabled account,
// device code approved by someone else, password sign-in where allowed); a crash after
// every protocol step (a context cancelled at the step boundary) and injected faults
// followed by a rerun; throttling and server errors retried to completion; an access
// token refused before its cached expiry; and the search of every log line and CLI
// output for any credential that crossed the wire. The emulators' inspection APIs are
// the ground truth for "exactly one working PAT stored, no orphan left active".
// TestFaultCampaign plays seeded random schedules over every trigger (Key Vault events
// through the emulator's Event Grid dispatcher, HR messages, RotateNow, sweeps, wake-ups,
// revocations) through the function app, with a small stand-in for the Functions host
// settling Service Bus messages as the handlers do, injects crashes and faults of every
// kind into them, and checks the invariants after each (campaign_test.go).
// BenchmarkRotation measures one manual rotation without process start-up.
//
// The package has no non-test code; this file exists for the package comment.
package e2e
