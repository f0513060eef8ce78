package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/keyvault"
)

// identityVault builds the store of the service accounts' token caches and passwords.
//
// Decision: an empty PATROL_IDENTITY_KEYVAULT_URL does not stop patrol. A deployment
// made before the setting existed keeps rotating, with its caches in the secrets vault,
// and says so loudly: a warning each time the services are built (every `patrol serve`
// start and CLI command) and "needs attention" in `patrol status`/`plan`. Refusing to
// start would turn an upgrade into an outage of every PAT's renewal.
//
// With the setting, caches are read from and written to the identity vault; one not yet
// moved there is still read from the secrets vault (with a warning naming
// `patrol migrate-identity`), so deploying the new vault and moving the caches need not
// happen in the same minute. Its first refresh writes it to the identity vault.
func (s *Services) identityVault(cfg config.Config, o keyvault.Options) (identity.CacheStore, error) {
	if cfg.IdentityKeyVaultURL == "" {
		s.IdentityStore = s.Store
		s.Logger.Warn("needs attention: "+cfg.IdentityVaultProblem(), "setting", config.SettingIdentityKeyVaultURL)
		return s.Store, nil
	}
	st, err := keyvault.New(cfg.IdentityKeyVaultURL, s.Credential, o)
	if err != nil {
		return nil, fmt.Errorf("wiring: %s: %w", config.SettingIdentityKeyVaultURL, err)
	}
	s.IdentityStore = st
	return &unmovedCaches{CacheStore: st, secretsVault: s.Store, log: s.Logger.With("component", "identity")}, nil
}

// unmovedCaches is the identity vault, falling back to the secrets vault for a cache or
// password that `patrol migrate-identity` has not moved yet.
type unmovedCaches struct {
	identity.CacheStore
	secretsVault identity.CacheStore
	log          *slog.Logger
	warned       sync.Map // account → struct{}
}

// LoadCache reads the identity vault; when it has no cache for the account, the secrets
// vault's is returned as "not stored yet" (version ""), so the next save writes the
// first version to the identity vault.
func (u *unmovedCaches) LoadCache(ctx context.Context, account string) (identity.StoredCache, error) {
	sc, err := u.CacheStore.LoadCache(ctx, account)
	if err != nil || sc.Version != "" {
		return sc, err
	}
	old, err := u.secretsVault.LoadCache(ctx, account)
	if err != nil || old.Version == "" {
		return sc, nil //nolint:nilerr // the secrets vault is only a fallback
	}
	u.warn(ctx, account, keyvault.CacheSecretName(account))
	return identity.StoredCache{Blob: old.Blob}, nil
}

// Password reads the identity vault, then the secrets vault.
func (u *unmovedCaches) Password(ctx context.Context, account string) (string, bool, error) {
	pw, ok, err := u.CacheStore.Password(ctx, account)
	if err != nil || ok {
		return pw, ok, err
	}
	pw, ok, err = u.secretsVault.Password(ctx, account)
	if err != nil || !ok {
		return "", false, nil //nolint:nilerr // the secrets vault is only a fallback
	}
	u.warn(ctx, account, keyvault.PasswordSecretName(account))
	return pw, true, nil
}

func (u *unmovedCaches) warn(ctx context.Context, account, name string) {
	if _, seen := u.warned.LoadOrStore(account+"/"+name, struct{}{}); seen {
		return
	}
	u.log.WarnContext(ctx, "needs attention: "+name+" is still in the secrets vault, where PAT readers may reach it; move it with `patrol migrate-identity`",
		"serviceAccount", account, "setting", config.SettingIdentityKeyVaultURL)
}
