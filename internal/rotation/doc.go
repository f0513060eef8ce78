// Package rotation is patrol's core: it decides whether a managed Key Vault secret's
// PAT must be replaced (Decide, pure, with `now` passed in) and runs the crash-safe
// rotation protocol of docs/design.md (Rotator) behind small interfaces it owns
// (SecretStore, PATs, Identities, Effects). Adapters for Key Vault, Azure DevOps,
// MSAL and Service Bus implement those interfaces; this package imports no Azure SDK
// so that every decision and every protocol step is testable without I/O.
//
// The shape follows cert-manager: gather a plain Input, parse its tags once into Facts,
// evaluate an ordered Chain of named checks that yields a Decision with an exported
// Reason, then act. The admission checks form their own exported sub-chain
// (Admission), which the function handlers run before they enqueue a command. Token
// values only ever travel as secret.Value, whose every formatting method redacts.
//
// The core is also patrol's one retry layer for transient failures (retry.go, whose
// Decision note fixes the bounds) and owns the one time seam, Clock.
package rotation
