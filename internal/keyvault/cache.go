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

// LoadCache returns the account's MSAL cache blob, or nil when it has none. A secret of
// that name that is not tagged patrol-kind=msal-cache is refused rather than handed to
// MSAL: someone else owns it.
func (s *Store) LoadCache(ctx context.Context, account string) ([]byte, error) {
	name := CacheSecretName(account)
	res, err := s.c.GetSecret(ctx, name, "", nil)
	if err != nil {
		err = translate(err)
		if errors.Is(err, rotation.ErrNotFound) {
			s.remember(name, nil, false)
			return nil, nil
		}
		return nil, fmt.Errorf("keyvault: get %q: %w", name, err)
	}
	tags := tagsIn(res.Tags)
	s.remember(name, tags, true)
	if tags[TagKind] != KindMSALCache {
		return nil, fmt.Errorf("keyvault: get %q: it is not tagged %s=%s, so it is not patrol's token cache; rename or delete it", name, TagKind, KindMSALCache)
	}
	if res.Value == nil {
		return nil, nil
	}
	return []byte(*res.Value), nil
}

// SaveCache writes the account's MSAL cache as a new version of its cache secret. It
// never writes over a secret lacking patrol-kind=msal-cache.
func (s *Store) SaveCache(ctx context.Context, account string, blob []byte) error {
	name := CacheSecretName(account)
	ob, err := s.observe(ctx, name)
	if err != nil {
		return fmt.Errorf("keyvault: set %q: read current tags: %w", name, err)
	}
	if ob.exists && ob.kind != KindMSALCache {
		return fmt.Errorf("keyvault: set %q: it is not tagged %s=%s; refusing to overwrite it", name, TagKind, KindMSALCache)
	}
	tags := map[string]string{TagKind: KindMSALCache, TagAccount: account}
	_, err = s.c.SetSecret(ctx, name, azsecrets.SetSecretParameters{
		Value:       to(string(blob)),
		ContentType: to("application/json"),
		Tags:        tagsOut(tags),
	}, nil)
	if err != nil {
		s.forget(name)
		return fmt.Errorf("keyvault: set %q: %w", name, translate(err))
	}
	s.remember(name, tags, true)
	return nil
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
