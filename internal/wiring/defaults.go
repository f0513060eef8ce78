package wiring

import (
	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// PolicyDefaults takes the policy defaults from the loaded settings. It lives in the
// composition root so that the core never imports config (and, through it, the
// settings' parsers).
func PolicyDefaults(c config.Config) rotation.Defaults {
	return rotation.Defaults{ServiceAccount: c.DefaultServiceAccount, Lifetime: c.Lifetime, Grace: c.Grace, RenewBefore: c.RenewBefore}
}
