// Package e2e holds patrol's end-to-end tests and the rotation benchmark: the real
// Azure SDK clients and patrol's real adapters (Key Vault, Azure DevOps, MSAL, Service
// Bus) wired by internal/wiring, against every emulator started in-process by
// internal/local/stack. Crashes are injected with the emulators' fault injection and
// with a context cancelled at a protocol step boundary; the emulators' inspection APIs
// are the ground truth for "exactly one working PAT stored, no orphan left active".
//
// The package has no non-test code; this file exists for the package comment.
package e2e
