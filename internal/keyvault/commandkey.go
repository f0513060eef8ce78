package keyvault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// CommandKeyTTL is how long a read key version is trusted without reading it again:
// long enough that signing and verifying cost no vault call per command, short enough
// that disabling a key version (the way to withdraw it) takes effect within minutes.
const CommandKeyTTL = 5 * time.Minute

// ErrNoCommandKey is matched by a key version that does not exist, is disabled, or is
// not patrol's: a command signed with it cannot be trusted. It is
// contract.ErrUnauthenticated, so the refusal is permanent and reported as such.
var ErrNoCommandKey = contract.ErrUnauthenticated

// CommandKeys reads the command-signing key (contract.CommandKeySecret) and creates it
// on first use. Only the function app's identity (and operators) can read the vault's
// secrets directly; consumers are granted per-secret access (docs/security.md).
type CommandKeys struct {
	s   *Store
	ttl time.Duration

	mu     sync.Mutex
	latest cachedKey
	byVer  map[string]cachedKey
}

type cachedKey struct {
	key contract.CommandKey
	at  time.Time
}

// CommandKeys returns the store's command-key reader.
func (s *Store) CommandKeys() *CommandKeys {
	return &CommandKeys{s: s, ttl: CommandKeyTTL, byVer: map[string]cachedKey{}}
}

// SigningKey returns the current key version, creating the key when the vault has
// none. Two instances creating it at once both read back the newest version, and a
// command names the version that signed it, so either converges.
func (k *CommandKeys) SigningKey(ctx context.Context) (contract.CommandKey, error) {
	now := k.s.clock.Now()
	k.mu.Lock()
	c := k.latest
	k.mu.Unlock()
	if c.key.Usable() && now.Sub(c.at) < k.ttl {
		return c.key, nil
	}
	key, err := k.read(ctx, "")
	if errors.Is(err, rotation.ErrNotFound) {
		if err := k.create(ctx); err != nil {
			return contract.CommandKey{}, err
		}
		key, err = k.read(ctx, "")
	}
	if err != nil {
		return contract.CommandKey{}, err
	}
	k.mu.Lock()
	k.latest = cachedKey{key: key, at: now}
	k.byVer[key.Version] = cachedKey{key: key, at: now}
	k.mu.Unlock()
	return key, nil
}

// VerifyingKey returns one version of the key. A version that is missing, disabled or
// not tagged as patrol's command key is ErrNoCommandKey; other errors are the vault's
// (transient ones are worth a retry).
func (k *CommandKeys) VerifyingKey(ctx context.Context, version string) (contract.CommandKey, error) {
	if !contract.ValidVersion(version) {
		return contract.CommandKey{}, fmt.Errorf("keyvault: command key version %q: %w", contract.Clip(version), ErrNoCommandKey)
	}
	now := k.s.clock.Now()
	k.mu.Lock()
	c, ok := k.byVer[version]
	k.mu.Unlock()
	if ok && now.Sub(c.at) < k.ttl {
		return c.key, nil
	}
	key, err := k.read(ctx, version)
	if err != nil {
		var ke *Error
		if errors.Is(err, rotation.ErrNotFound) || errors.As(err, &ke) && ke.Inner == "SecretDisabled" {
			return contract.CommandKey{}, fmt.Errorf("keyvault: command key version %s: %w", version, ErrNoCommandKey)
		}
		return contract.CommandKey{}, err
	}
	k.mu.Lock()
	k.byVer[version] = cachedKey{key: key, at: now}
	k.mu.Unlock()
	return key, nil
}

// read gets one version ("" = current) and checks it is patrol's key.
func (k *CommandKeys) read(ctx context.Context, version string) (contract.CommandKey, error) {
	name := contract.CommandKeySecret
	res, err := k.s.c.GetSecret(ctx, name, version, nil)
	if err != nil {
		return contract.CommandKey{}, fmt.Errorf("keyvault: get %q: %w", name, translate(err))
	}
	tags := tagsIn(res.Tags)
	if tags[TagKind] != contract.KindCommandKey {
		// Someone else's secret under patrol's name: a key its writer knows.
		return contract.CommandKey{}, fmt.Errorf("keyvault: %q is not tagged %s=%s, so it is not patrol's command key; delete it so patrol can create one: %w",
			name, TagKind, contract.KindCommandKey, ErrNoCommandKey)
	}
	if res.Attributes != nil && res.Attributes.Enabled != nil && !*res.Attributes.Enabled {
		return contract.CommandKey{}, fmt.Errorf("keyvault: %q version is disabled: %w", name, ErrNoCommandKey)
	}
	if res.Value == nil || res.ID == nil {
		return contract.CommandKey{}, fmt.Errorf("keyvault: %q has no value: %w", name, ErrNoCommandKey)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*res.Value))
	key := contract.NewCommandKey(res.ID.Version(), raw)
	if err != nil || !key.Usable() {
		return contract.CommandKey{}, fmt.Errorf("keyvault: %q does not hold %d base64 bytes: %w", name, contract.CommandKeySize, ErrNoCommandKey)
	}
	return key, nil
}

// create writes a fresh random key (first use).
func (k *CommandKeys) create(ctx context.Context) error {
	raw := make([]byte, contract.CommandKeySize)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("keyvault: command key: %w", err)
	}
	_, err := k.s.c.SetSecret(ctx, contract.CommandKeySecret, azsecrets.SetSecretParameters{
		Value:       to(base64.StdEncoding.EncodeToString(raw)),
		ContentType: to("application/octet-stream; encoding=base64"),
		Tags:        tagsOut(map[string]string{TagKind: contract.KindCommandKey}),
	}, nil)
	if err != nil {
		return fmt.Errorf("keyvault: create %q: %w", contract.CommandKeySecret, translate(err))
	}
	return nil
}

// Versions returns the metadata (tags, times; no values) of every version of a secret,
// in no particular order: the record of which PATs patrol stored in it.
func (s *Store) Versions(ctx context.Context, name string) ([]rotation.Version, error) {
	var out []rotation.Version
	p := s.c.NewListSecretPropertiesVersionsPager(name, nil)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("keyvault: list versions of %q: %w", name, translate(err))
		}
		for _, sp := range page.Value {
			if sp != nil {
				out = append(out, versionOf(name, sp.ID, sp.Attributes, sp.Tags))
			}
		}
	}
	return out, nil
}
