//go:build race

package e2e

// defaultFaultSeeds is TestFaultCampaign's default: CI runs the whole suite again under
// the race detector, where a seed costs about five times as much.
const defaultFaultSeeds = 6
