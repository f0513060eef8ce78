package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/identity"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The demo secrets.
const (
	// SecretBuild is adopted by patrol under the service account with the default
	// policy: 90-day PATs, replaced when Key Vault says they are near expiry (30 days
	// before exp), the old one revoked after the default grace (3 days).
	SecretBuild = "pat-build"
	// SecretLegacy holds a PAT a person (alice) created by hand long ago, tagged for
	// patrol: the offboarding part of the tour re-issues it under the service account.
	SecretLegacy = "pat-legacy"
	// UnmanagedPATName is the display name of a PAT alice made for a release pipeline
	// and pasted somewhere no secret of the vault holds: the offboarding report names it
	// as unmanaged.
	UnmanagedPATName = "release pipeline (pasted into a variable group)"
)

// Demo policies: patrol's defaults (lifetime, renew window, grace), so the tour shows
// what a real vault would see, only faster.
var (
	BuildPolicy = map[string]string{
		rotation.TagManaged: "true", rotation.TagOrg: stack.Organization, rotation.TagScopes: "vso.code vso.packaging",
		rotation.TagServiceAccount: stack.ServiceAccount,
	}
	LegacyPolicy = map[string]string{
		rotation.TagManaged: "true", rotation.TagOrg: stack.Organization, rotation.TagScopes: "vso.code",
		rotation.TagServiceAccount: stack.ServiceAccount,
	}
)

// Seed signs the service account in, adopts SecretBuild, plants SecretLegacy and gives
// alice a second PAT that no secret holds (UnmanagedPATName).
func (s *System) Seed(ctx context.Context) error {
	if err := s.SignIn(ctx, stack.ServiceAccount); err != nil {
		return err
	}
	if _, err := s.Adopt(ctx, SecretBuild, BuildPolicy); err != nil {
		return err
	}
	tok, err := s.PersonToken(ctx, stack.Person)
	if err != nil {
		return err
	}
	if _, err := s.PlantWithToken(ctx, tok, SecretLegacy, stack.Person, LegacyPolicy, 90*24*time.Hour); err != nil {
		return err
	}
	_, err = s.CreatePAT(ctx, tok, stack.Organization, UnmanagedPATName, "vso.release vso.build", s.Stack.Clock.Now().Add(60*24*time.Hour))
	return err
}

// SignIn completes a service account's device-code sign-in (what `patrol login --device-code` asks a
// person to do in a browser), approving the code through the Entra emulator so no
// person is needed. The MSAL cache lands in the identity vault, where the handler reads it.
func (s *System) SignIn(ctx context.Context, upn string) error {
	var approveErr error
	err := s.Ops.Accounts.Login(ctx, upn, func(dc identity.DeviceCode) {
		approveErr = s.Stack.Entra.ApproveDeviceCode(dc.UserCode, upn)
	})
	if approveErr != nil {
		return fmt.Errorf("demo: approve the device sign-in of %s: %w", upn, approveErr)
	}
	if err != nil {
		return fmt.Errorf("demo: sign in %s: %w", upn, err)
	}
	return nil
}

// Adopt does what `patrol adopt` does: the first rotation of the secret under policy.
func (s *System) Adopt(ctx context.Context, secret string, policy map[string]string) (rotation.Outcome, error) {
	o, err := s.Ops.Rotator.Run(ctx, secret, rotation.Trigger{Kind: rotation.TriggerAdopt, Op: rotation.NewOpID(), Policy: policy})
	if err != nil {
		return o, fmt.Errorf("demo: adopt %s: %w", secret, err)
	}
	return o, nil
}

// PlantPersonalPAT creates a PAT as person (signed in through the emulator) and stores
// it in the vault with policy tags and patrol-owner = person, as if someone had tagged
// an old secret for patrol by hand. It returns the PAT's id.
func (s *System) PlantPersonalPAT(ctx context.Context, secret, person string, policy map[string]string, lifetime time.Duration) (string, error) {
	tok, err := s.PersonToken(ctx, person)
	if err != nil {
		return "", err
	}
	return s.PlantWithToken(ctx, tok, secret, person, policy, lifetime)
}

// PersonToken signs a person in through the emulator (device code approved in the
// emulator) and returns an Azure DevOps access token for them. Seeding only.
func (s *System) PersonToken(ctx context.Context, person string) (string, error) {
	accounts, err := identity.NewServiceAccounts(identity.Options{
		Authority: strings.TrimSuffix(s.Stack.Entra.AuthorityHost(), "/") + "/" + stack.TenantID, ClientID: stack.PublicClientID,
		HTTPClient: s.Stack.HTTP, Store: &memCache{}, Logger: s.log,
	})
	if err != nil {
		return "", err
	}
	var approveErr error
	err = accounts.Login(ctx, person, func(dc identity.DeviceCode) { approveErr = s.Stack.Entra.ApproveDeviceCode(dc.UserCode, person) })
	if approveErr != nil {
		return "", fmt.Errorf("demo: approve the device sign-in of %s: %w", person, approveErr)
	}
	if err != nil {
		return "", fmt.Errorf("demo: sign in %s: %w", person, err)
	}
	tok, err := accounts.Token(ctx, person)
	if err != nil {
		return "", fmt.Errorf("demo: token of %s: %w", person, err)
	}
	return tok.Value(), nil
}

// PlantWithToken is PlantPersonalPAT with a token from PersonToken, for seeding many.
func (s *System) PlantWithToken(ctx context.Context, tok, secret, person string, policy map[string]string, lifetime time.Duration) (string, error) {
	now := s.Stack.Clock.Now()
	return s.PlantIssued(ctx, tok, secret, person, policy, now, now.Add(lifetime))
}

// PlantIssued plants a PAT that expires at exp and whose secret version says it was
// issued at issued (its nbf): a PAT well into its life, as one adopted from before.
func (s *System) PlantIssued(ctx context.Context, tok, secret, person string, policy map[string]string, issued, exp time.Time) (string, error) {
	dc, err := devops.NewClient(devops.Options{BaseURL: s.Stack.DevOpsURL, HTTPClient: s.Stack.HTTP,
		Token: func(context.Context) (string, error) { return tok, nil }})
	if err != nil {
		return "", err
	}
	pat, err := dc.CreatePAT(ctx, policy[rotation.TagOrg], devops.CreateRequest{
		DisplayName: "release pipeline (" + person + ")", Scope: policy[rotation.TagScopes], ValidTo: exp.Truncate(time.Second),
	})
	if err != nil {
		return "", fmt.Errorf("demo: create %s's PAT: %w", person, err)
	}
	tags := map[string]string{rotation.TagOwner: strings.ToLower(person), rotation.TagPATID: pat.AuthorizationID}
	for k, v := range policy {
		tags[k] = v
	}
	exp = pat.ValidTo
	nbf := issued.Truncate(time.Second)
	if _, err := s.Stack.KV.Put(stack.Vault, secret, kvemu.NewSecret{Value: pat.Token.Reveal(), Tags: tags, Expires: &exp, NotBefore: &nbf}); err != nil {
		return "", fmt.Errorf("demo: store %s: %w", secret, err)
	}
	return pat.AuthorizationID, nil
}

// CreatePAT creates a PAT with the given display name as the holder of tok (from
// PersonToken), without storing it anywhere: e.g. a PAT a crashed attempt left behind.
func (s *System) CreatePAT(ctx context.Context, tok, org, displayName, scope string, validTo time.Time) (string, error) {
	dc, err := devops.NewClient(devops.Options{BaseURL: s.Stack.DevOpsURL, HTTPClient: s.Stack.HTTP,
		Token: func(context.Context) (string, error) { return tok, nil }})
	if err != nil {
		return "", err
	}
	pat, err := dc.CreatePAT(ctx, org, devops.CreateRequest{DisplayName: displayName, Scope: scope, ValidTo: validTo.Truncate(time.Second)})
	if err != nil {
		return "", fmt.Errorf("demo: create PAT %q: %w", displayName, err)
	}
	return pat.AuthorizationID, nil
}

// memCache keeps a person's MSAL cache in memory (only the service accounts' caches
// belong in Key Vault).
type memCache struct {
	mu      sync.Mutex
	blob    []byte
	version int
}

func (m *memCache) LoadCache(context.Context, string) (identity.StoredCache, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.version == 0 {
		return identity.StoredCache{}, nil
	}
	return identity.StoredCache{Blob: m.blob, Version: strconv.Itoa(m.version)}, nil
}

func (m *memCache) SaveCache(_ context.Context, _ string, blob []byte, _ string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blob = append([]byte(nil), blob...)
	m.version++
	return strconv.Itoa(m.version), nil
}

func (m *memCache) Password(context.Context, string) (string, bool, error) { return "", false, nil }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
