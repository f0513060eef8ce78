package wiring

import (
	"slices"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// PolicyDefaults takes the policy defaults and the operator's bounds from the loaded
// settings. It lives in the composition root so that the core never imports config
// (and, through it, the settings' parsers).
func PolicyDefaults(c config.Config) rotation.Defaults {
	return rotation.Defaults{
		ServiceAccount: c.DefaultServiceAccount, Lifetime: c.Lifetime, Grace: c.Grace, RenewBefore: c.RenewBefore,
		Bounds: PolicyBounds(c),
	}
}

// PolicyBounds takes the operator's bounds from the loaded settings. The lists are
// copied: the core holds them for the life of the process.
func PolicyBounds(c config.Config) rotation.Bounds {
	accounts := make(map[string][]string, len(c.AllowedServiceAccounts))
	for upn, orgs := range c.AllowedServiceAccounts {
		accounts[upn] = slices.Clone(orgs)
	}
	return rotation.Bounds{
		Orgs: slices.Clone(c.AllowedOrgs), ServiceAccounts: accounts, Scopes: slices.Clone(c.AllowedScopes),
		MaxLifetime: c.MaxLifetime, MaxGrace: c.MaxGrace,
	}
}
