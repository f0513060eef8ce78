//go:build !race

package e2e

// defaultFaultSeeds is TestFaultCampaign's default number of seeds (PATROL_FAULT_SEEDS
// sets another): a few seconds of `go test ./...`.
const defaultFaultSeeds = 16
