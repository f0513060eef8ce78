// Package systemtest holds patrol's end-to-end tests and benchmarks: the real `patrol
// serve` process (built once per test binary) under the local Functions host
// (internal/local/devhost), against the emulators, with the real SDKs on every hop — Event
// Grid deliveries, Service Bus sessions and dead-letter queues, HTTP functions, timers,
// and a handler killed and restarted mid-rotation. The package has no exported API; its
// tests start the same assembly as `patrol-dev local` (internal/local/demo).
package systemtest
