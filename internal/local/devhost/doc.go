// Package devhost is the local stand-in for the Azure Functions host: it reads host.json
// and every function.json, starts the custom handler the way the host does (free port,
// FUNCTIONS_CUSTOMHANDLER_* environment, readiness polling of GET / every 25 ms), and
// drives every trigger with the payloads the real host sends (shared/reference/
// protocols.md §1): HTTP triggers under /{routePrefix} with function keys, Event Grid
// deliveries on /runtime/webhooks/eventgrid with the validation handshake, Service Bus
// triggers through real azservicebus receivers (sessions, peek-lock, complete on
// success, abandon on failure, lock renewal), and NCRONTAB timers on the shared
// emulator clock. It also serves an App Service style managed-identity endpoint
// (IDENTITY_ENDPOINT/IDENTITY_HEADER) so the app uses ManagedIdentityCredential exactly
// as it does in Azure.
//
// The point is fidelity, not convenience: the payload quirks the handler must survive
// in Azure (double-encoded strings, integers as strings, null metadata omitted, dates
// re-parsed without a zone) are reproduced on purpose, so a handler that passes here
// does not meet them for the first time in production. Payload building is pure
// (gather → build with an injected now and GUID) and covered by golden files.
//
// Usage:
//
//	def, err := devhost.LoadAppDefinition(".")
//	h, err := devhost.Start(ctx, devhost.Options{Definition: def, Settings: settings, Logger: log})
//	defer h.Close(context.Background())
//	fmt.Println(h.URL(), h.FunctionKey())
package devhost
