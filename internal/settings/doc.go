// Package settings holds no code, only the agreement test that keeps patrol's names
// from drifting apart. The same setting, queue, topic and function names live in six
// places: docs/architecture.md (the contract), internal/config (the code),
// local.settings.json.example (the local stack), every functions/<Name>/function.json
// (bindings), host.json (the handler's start-up), and infra/ (Bicep app settings,
// Service Bus entities, the Event Grid subscription). A rename in one of them that
// misses another deploys fine and then fails at run time, in Azure, with an error that
// names neither; the test fails at `go test` instead, naming the file and the name.
//
// Run it with: go test ./internal/settings/
package settings
