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
// BenchmarkRotation measures one manual rotation without process start-up.
//
// The package has no non-test code; this file exists for the package comment.
package e2e
