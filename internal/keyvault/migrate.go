package keyvault

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// Moved is what MoveIdentitySecrets did with one secret.
type Moved struct {
	Name string
	// Outcome: MovedCopied, MovedAlreadyThere or MovedSkipped.
	Outcome string
	// Why a secret was skipped.
	Why string
}

// Outcomes of MoveIdentitySecrets per secret.
const (
	MovedCopied       = "moved"
	MovedAlreadyThere = "removed (the identity vault already holds it)"
	MovedSkipped      = "left in place"
)

// Prefixes of the secrets that belong in the identity vault.
const (
	cachePrefix    = "patrol-msal-"
	passwordPrefix = "patrol-password-"
)

// belongsInIdentityVault reports whether a secret of this name is one of patrol's
// identity secrets: a token cache, a password or the command-signing key.
func belongsInIdentityVault(name string) bool {
	return strings.HasPrefix(name, cachePrefix) || strings.HasPrefix(name, passwordPrefix) || name == contract.CommandKeySecret
}

// IdentitySecretNames lists the secrets of this vault that belong in the identity
// vault: token caches (patrol-msal-*), passwords (patrol-password-*) and the
// command-signing key (patrol-command-key). One list, no values.
func (s *Store) IdentitySecretNames(ctx context.Context) ([]string, error) {
	var names []string
	err := s.eachSecret(ctx, func(sp *azsecrets.SecretProperties) {
		if n := sp.ID.Name(); belongsInIdentityVault(n) {
			names = append(names, n)
		}
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// MoveIdentitySecrets moves every token cache, password and the command key from the
// secrets vault to the identity vault: copy (value, content type, tags) unless the identity vault holds
// that name already — then its copy is the newer one (a sign-in or refresh since) and
// is kept — and delete the secrets vault's. Running it again moves nothing more, and a
// run cut short is finished by the next. It leaves in place a patrol-msal-* secret not
// tagged patrol-kind=msal-cache or a patrol-command-key not tagged
// patrol-kind=command-key (not patrol's), and a disabled one (its value cannot be read;
// delete it by hand if it was withdrawn). Commands signed with the old command key fail
// verification once the app reads the identity vault's (a new Key Vault version);
// `RotateNow` signs afresh, so only commands in flight at the upgrade are refused.
//
// Deletion is Key Vault's soft delete: with purge protection the old versions stay
// recoverable by the vault's Secrets Officers until the retention ends. Secrets Users
// (the PAT readers) cannot read deleted secrets.
func MoveIdentitySecrets(ctx context.Context, from, to *Store) ([]Moved, error) {
	names, err := from.IdentitySecretNames(ctx)
	if err != nil {
		return nil, err
	}
	var out []Moved
	for _, name := range names {
		m, err := moveOne(ctx, from, to, name)
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

func moveOne(ctx context.Context, from, to *Store, name string) (Moved, error) {
	src, err := from.c.GetSecret(ctx, name, "", nil)
	if err != nil {
		err = translate(err)
		var ke *Error
		switch {
		case errors.Is(err, rotation.ErrNotFound):
			return Moved{Name: name, Outcome: MovedSkipped, Why: "deleted since the list"}, nil
		case errors.As(err, &ke) && ke.Inner == "SecretDisabled":
			return Moved{Name: name, Outcome: MovedSkipped, Why: "it is disabled, so its value cannot be read; delete it if it was withdrawn"}, nil
		}
		return Moved{}, fmt.Errorf("keyvault: move %q: read: %w", name, err)
	}
	tags := tagsIn(src.Tags)
	if strings.HasPrefix(name, cachePrefix) && tags[TagKind] != KindMSALCache {
		return Moved{Name: name, Outcome: MovedSkipped, Why: "not tagged " + TagKind + "=" + KindMSALCache + ", so not patrol's"}, nil
	}
	if name == contract.CommandKeySecret && tags[TagKind] != contract.KindCommandKey {
		return Moved{Name: name, Outcome: MovedSkipped, Why: "not tagged " + TagKind + "=" + contract.KindCommandKey + ", so not patrol's"}, nil
	}
	outcome := MovedCopied
	_, err = to.c.GetSecret(ctx, name, "", nil)
	switch err = translate(err); {
	case err == nil:
		outcome = MovedAlreadyThere
	case errors.Is(err, rotation.ErrNotFound):
		_, err = to.c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: src.Value, ContentType: src.ContentType, Tags: src.Tags}, nil)
		if err != nil {
			return Moved{}, fmt.Errorf("keyvault: move %q: write to the identity vault: %w", name, translate(err))
		}
		to.forget(name)
	default:
		var ke *Error
		if !errors.As(err, &ke) || ke.Inner != "SecretDisabled" {
			return Moved{}, fmt.Errorf("keyvault: move %q: read the identity vault: %w", name, err)
		}
		outcome = MovedAlreadyThere // disabled there on purpose: keep it so
	}
	if _, err := from.c.DeleteSecret(ctx, name, nil); err != nil {
		if err = translate(err); !errors.Is(err, rotation.ErrNotFound) {
			return Moved{}, fmt.Errorf("keyvault: move %q: delete from the secrets vault: %w", name, err)
		}
	}
	from.forget(name)
	return Moved{Name: name, Outcome: outcome}, nil
}
