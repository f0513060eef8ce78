package rotation_test

import (
	"fmt"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// A PAT shorter than Key Vault's 30-day SecretNearExpiry lead triggers the event as
// soon as it is written. Decide answers "wait" with the time to wake up, instead of
// rotating again (which would loop).
func ExampleDecide() {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	in := rotation.Input{
		Exists: true,
		Current: rotation.Version{
			Name: "pat-build", ID: "v7", Enabled: true,
			Created: now, Expires: now.Add(7 * 24 * time.Hour),
			Tags: map[string]string{
				"patrol-managed": "true", "patrol-org": "contoso", "patrol-scopes": "vso.code",
				"patrol-service-account": "svc-build@contoso.com",
				"patrol-pat-id":          "4ab5764f-4193-4f1d-b995-64144880b7d7",
			},
		},
		Defaults: rotation.Defaults{
			Lifetime: 90 * 24 * time.Hour, RenewBefore: 14 * 24 * time.Hour,
			// The operator's bounds (PATROL_ALLOWED_* and PATROL_MAX_*): tags only narrow within them.
			Bounds: rotation.Bounds{
				Orgs: []string{"contoso"}, ServiceAccounts: map[string][]string{"svc-build@contoso.com": {"contoso"}},
				Scopes: []string{"vso.*"}, MaxLifetime: 90 * 24 * time.Hour, MaxGrace: 7 * 24 * time.Hour,
			},
		},
	}
	d := rotation.Decide(in, rotation.Trigger{Kind: rotation.TriggerNearExpiry, Version: "v7", Op: "e1"}, now)
	fmt.Println(d.Action, d.Reason, d.At.Format(time.RFC3339))
	// Output: wait not-due 2026-12-02T04:00:00Z
}
