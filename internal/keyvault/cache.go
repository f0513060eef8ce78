package keyvault

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/rotation"
)

var _ identity.CacheStore = (*Store)(nil)

// LoadCache returns the account's MSAL cache blob and its version, or a zero
// StoredCache when it has none. A secret of that name that is not tagged
// patrol-kind=msal-cache is refused rather than handed to MSAL: someone else owns it.
func (s *Store) LoadCache(ctx context.Context, account string) (identity.StoredCache, error) {
	name := CacheSecretName(account)
	sc, tags, err := s.readCache(ctx, name)
	if err != nil {
		return identity.StoredCache{}, fmt.Errorf("keyvault: get %q: %w", name, err)
	}
	if sc.Version != "" && tags[TagKind] != KindMSALCache {
		return identity.StoredCache{}, fmt.Errorf("keyvault: get %q: it is not tagged %s=%s, so it is not patrol's token cache; rename or delete it", name, TagKind, KindMSALCache)
	}
	return sc, nil
}

// readCache reads the current version of a cache secret: a zero StoredCache when it
// does not exist.
func (s *Store) readCache(ctx context.Context, name string) (identity.StoredCache, map[string]string, error) {
	res, err := s.c.GetSecret(ctx, name, "", nil)
	if err != nil {
		err = translate(err)
		if errors.Is(err, rotation.ErrNotFound) {
			s.remember(name, nil, false)
			return identity.StoredCache{}, nil, nil
		}
		return identity.StoredCache{}, nil, err
	}
	tags := tagsIn(res.Tags)
	s.remember(name, tags, true)
	sc := identity.StoredCache{Version: "-"}
	if res.ID != nil && res.ID.Version() != "" {
		sc.Version = res.ID.Version()
	}
	if res.Value != nil {
		sc.Blob = []byte(*res.Value)
	}
	return sc, tags, nil
}

// SaveCache writes the account's MSAL cache as a new version of its cache secret, in
// place of the version over (identity.CacheStore). It reads the current version just
// before writing — Key Vault has no conditional write — and answers
// identity.ErrCacheChanged when that is not over. It never writes over a secret lacking
// patrol-kind=msal-cache.
func (s *Store) SaveCache(ctx context.Context, account string, blob []byte, over string) (string, error) {
	name := CacheSecretName(account)
	cur, tags, err := s.readCache(ctx, name)
	if err != nil {
		return "", fmt.Errorf("keyvault: set %q: read the current version: %w", name, err)
	}
	if cur.Version != "" && tags[TagKind] != KindMSALCache {
		return "", fmt.Errorf("keyvault: set %q: it is not tagged %s=%s; refusing to overwrite it", name, TagKind, KindMSALCache)
	}
	if over != identity.Overwrite && cur.Version != over {
		return "", fmt.Errorf("keyvault: set %q: %w", name, identity.ErrCacheChanged)
	}
	tags = map[string]string{TagKind: KindMSALCache, TagAccount: account}
	res, err := s.c.SetSecret(ctx, name, azsecrets.SetSecretParameters{
		Value:       to(string(blob)),
		ContentType: to("application/json"),
		Tags:        tagsOut(tags),
	}, nil)
	res.Value = nil
	if err != nil {
		s.forget(name)
		return "", fmt.Errorf("keyvault: set %q: %w", name, translate(err))
	}
	s.remember(name, tags, true)
	if res.ID == nil || res.ID.Version() == "" {
		return "-", nil
	}
	return res.ID.Version(), nil
}

// Password returns the service account's stored password (patrol-password-<slug>) and
// whether one exists. A disabled password secret counts as absent: disabling it is
// how an operator withdraws it.
func (s *Store) Password(ctx context.Context, account string) (string, bool, error) {
	name := PasswordSecretName(account)
	res, err := s.c.GetSecret(ctx, name, "", nil)
	if err != nil {
		err = translate(err)
		var ke *Error
		if errors.Is(err, rotation.ErrNotFound) || errors.As(err, &ke) && ke.Inner == "SecretDisabled" {
			return "", false, nil
		}
		return "", false, fmt.Errorf("keyvault: get %q: %w", name, err)
	}
	if res.Value == nil || *res.Value == "" {
		return "", false, nil
	}
	return *res.Value, true, nil
}
