// Package emulator holds nothing but this comment: the emulators of the services patrol
// depends on live in its subpackages — entra, keyvault, devops and servicebus — beside the
// support packages they share: clock (the one controllable time source), fault (fault
// injection), journal (the request journal), authn (bearer-token checks) and tlsca (the
// local CA).
//
// Every service emulator follows one convention, so reading one teaches the others:
//
//   - Types: the emulator is the type Emulator, built by New(Options) (*Emulator, error)
//     without touching the network; Start(addr string) error listens ("127.0.0.1:0" for a
//     free port) and Close() error stops it. Options.Clock is a *clock.Clock: no
//     emulator declares a clock interface of its own, so advancing the one clock moves
//     every emulator together.
//   - Files: server.go holds Emulator, Options, New, Start, Close and request routing;
//     store.go the emulated state and the out-of-band methods tests and the local stack
//     use to seed, change and inspect it; wire.go the shapes on the wire and their
//     decoding. Other files are named after the feature they implement (tokens.go,
//     eventgrid.go, mgmt.go). servicebus keeps its wire codec in the amqp subpackage and
//     its state in the store subpackage.
//   - Tests: helpers_test.go builds the fixture; fuzz_test.go holds every fuzz target;
//     sdk_test.go drives the emulator through Microsoft's own client (devops has no such
//     client: patrol's internal/devops is tested against it instead); wire_test.go checks
//     raw requests and answers.
//   - Imports: outside its own package an emulator is imported as kvemu, devopsemu,
//     entraemu or sbemu, so it never reads as patrol's adapter of the same name.
package emulator
