// Package keyvault is a local Azure Key Vault (secrets only) that the real azsecrets
// client talks to unchanged: HTTPS only, the bearer challenge azsecrets needs before it
// will send a token, Entra tokens checked for signature, audience and expiry, Azure RBAC
// roles per principal, Azure's limits, error bodies and throttling, soft delete, and the
// Key Vault secret events delivered to webhooks the way Event Grid delivers them
// (validation handshake, Event Grid or CloudEvents schema, retries, dead letters).
//
// Vaults are addressed as https://<vault>.vault.localhost:<port>: the vault name is the
// first label of the Host header, and the challenge resource is the rest of the host
// with its port, because azsecrets checks that the vault host ends with "."+resource
// host (ports included). Time, including secret expiry and Event Grid retry back-off,
// comes from the shared emulator clock so tests and demos reach expiry by advancing it.
//
// Layout (the convention of package emulator): store.go holds the vault model and its
// rules as functions of `now` with no I/O, and the Go inspection API tests and the
// local stack use; wire.go decodes requests and encodes Azure's JSON; server.go is the
// HTTP edge (host, challenge auth, api-version, faults, throttling, RBAC, journal) and
// ops.go runs the operations; auth.go and throttle.go hold the auth and rate-limit
// rules; events.go turns secret changes and the clock into Key Vault events;
// eventgrid.go delivers them to subscriptions.
//
// Deliberate differences from Azure: natural throttling is exact on the emulator clock
// (Azure's is approximate); Event Grid retries follow the documented schedule without
// Azure's randomisation; versions created before a subscription still raise expiry
// events; deletion is instant unless Options.DeleteWindow is set; an access token expired
// on the emulator clock is answered with a CAE claims challenge (Azure answers a plain
// 401 [TokenExpired]), so clients whose token caches run on the wall clock recover
// after the clock jumps (docs/emulator-fidelity.md D6). The real challenge, with
// xms_caeerror 10012, comes from RevokeSessions (Options.Sessions, shared with the
// Azure DevOps emulator).
package keyvault
