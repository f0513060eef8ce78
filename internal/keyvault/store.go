// Package keyvault is patrol's Key Vault adapter on azsecrets. It implements
// rotation.SecretStore (the inventory of managed secrets) and identity.CacheStore (each
// service account's MSAL token cache and optional password), and translates Key Vault
// errors at this edge: 404 → rotation.ErrNotFound, 401/403 → permanent with a one-line
// summary, 429/5xx → transient with the server's Retry-After.
//
// Guard rails live here rather than in callers because this is the only code that
// writes to the vault: a secret version is written only when its tags say
// patrol-managed=true and the secret it replaces is already managed (or the write is an
// adoption), and a token-cache secret is never written over a secret that is not one.
// Secret values leave this package only as secret.Value or as the MSAL cache blob.
//
// Decision: the azsecrets client makes one try per call (azcore's MaxRetries -1, which
// means "one try and no retries"; 0 would mean its default of 3). Transient failures are
// retried by the rotation core, per protocol step, honouring the Retry-After this
// package reads into Error (rotation's retry.go, docs/architecture.md "Retries"); an
// SDK retry inside it multiplied the attempts (4 per core attempt, 12 per step).
package keyvault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// Tags this package writes on the secrets it owns outright.
const (
	// TagKind marks patrol's own helper secrets; its value says what they hold.
	TagKind = "patrol-kind"
	// KindMSALCache is the value of TagKind on a service account's MSAL cache.
	KindMSALCache = "msal-cache"
	// TagAccount names the service account a cache secret belongs to.
	TagAccount = "patrol-account"
)

// Options configure a Store.
type Options struct {
	// ClientOptions are shared with every other Azure client of patrol
	// (identity.WorkloadOptions.ClientOptions), so one transport trusts the local CA.
	ClientOptions azcore.ClientOptions
	// DisableChallengeResourceVerification is for vaults reached by an address whose
	// host does not end in the challenge's resource (a tool talking to
	// https://localhost:PORT). Never needed in Azure.
	DisableChallengeResourceVerification bool
	// Clock dates the managed-state memo; default rotation.SystemClock.
	Clock rotation.Clock
}

// Store is the Key Vault adapter. It is safe for concurrent use and makes no network
// call until a method is called.
type Store struct {
	c     *azsecrets.Client
	clock rotation.Clock

	mu   sync.Mutex
	seen map[string]observed
}

// observed is what a recent read told us about a secret's tags, so that the guard in
// SetVersion/SaveCache does not cost a second GET right after the gather step read the
// same secret. Key Vault has no conditional writes, so a fresh GET would leave the same
// race open (only shorter); the memo is bounded to memoTTL, far longer than a rotation
// and far shorter than anyone re-tagging a secret by hand mid-rotation.
type observed struct {
	exists  bool
	managed bool
	kind    string
	at      time.Time
}

const memoTTL = 2 * time.Minute

// New returns a Store for the vault at vaultURL.
func New(vaultURL string, cred azcore.TokenCredential, o Options) (*Store, error) {
	if cred == nil {
		return nil, errors.New("keyvault: no credential")
	}
	co := o.ClientOptions
	co.Retry.MaxRetries = -1 // see the Decision in the package doc
	c, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        co,
		DisableChallengeResourceVerification: o.DisableChallengeResourceVerification,
	})
	if err != nil {
		return nil, fmt.Errorf("keyvault: client for %q: %w", vaultURL, err)
	}
	if o.Clock == nil {
		o.Clock = rotation.SystemClock
	}
	return &Store{c: c, clock: o.Clock, seen: map[string]observed{}}, nil
}

var _ rotation.SecretStore = (*Store)(nil)

// Current returns the current version's metadata. It is one GET of the latest
// version; the value in the answer is dropped at once. Key Vault refuses GET on a
// disabled version (403 SecretDisabled), and a disabled secret must still be seen as
// such (Decide skips it on purpose), so that case reads the version list instead.
func (s *Store) Current(ctx context.Context, name string) (rotation.Version, error) {
	v, err := s.current(ctx, name)
	if err != nil {
		if errors.Is(err, rotation.ErrNotFound) {
			s.remember(name, nil, false)
		}
		return rotation.Version{}, fmt.Errorf("keyvault: get %q: %w", name, err)
	}
	s.remember(name, v.Tags, true)
	return v, nil
}

func (s *Store) current(ctx context.Context, name string) (rotation.Version, error) {
	res, err := s.c.GetSecret(ctx, name, "", nil)
	res.Value = nil // the core never needs the PAT back
	if err == nil {
		return versionOf(name, res.ID, res.Attributes, res.Tags), nil
	}
	err = translate(err)
	var ke *Error
	if !errors.As(err, &ke) || ke.Inner != "SecretDisabled" {
		return rotation.Version{}, err
	}
	return s.latestVersion(ctx, name)
}

// latestVersion finds the current version among all versions (the newest created).
func (s *Store) latestVersion(ctx context.Context, name string) (rotation.Version, error) {
	var best *azsecrets.SecretProperties
	p := s.c.NewListSecretPropertiesVersionsPager(name, nil)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return rotation.Version{}, translate(err)
		}
		for _, sp := range page.Value {
			if sp == nil || sp.Attributes == nil || sp.Attributes.Created == nil {
				continue
			}
			if best == nil || sp.Attributes.Created.After(*best.Attributes.Created) ||
				sp.Attributes.Created.Equal(*best.Attributes.Created) && sp.ID != nil && best.ID != nil && *sp.ID > *best.ID {
				best = sp
			}
		}
	}
	if best == nil {
		return rotation.Version{}, &Error{Status: 404, Code: "SecretNotFound", Message: "no versions", permanent: true, kind: rotation.ErrNotFound}
	}
	return versionOf(name, best.ID, best.Attributes, best.Tags), nil
}

// SetVersion writes a new version. It refuses (rotation.ErrUnmanaged) unless the new
// tags carry patrol-managed=true and the secret being replaced, if any, is managed
// already or the write adopts it (patrol-reason=adopt, which the core writes only for
// TriggerAdopt). The existing secret's tags come from a read at most memoTTL old
// (normally the gather step's), else one GET.
func (s *Store) SetVersion(ctx context.Context, name string, v rotation.NewVersion) (rotation.Version, error) {
	if !rotation.IsManaged(v.Tags) {
		return rotation.Version{}, fmt.Errorf("keyvault: set %q: %w", name, rotation.ErrUnmanaged)
	}
	if v.Value.IsZero() {
		return rotation.Version{}, fmt.Errorf("keyvault: set %q: empty value", name)
	}
	ob, err := s.observe(ctx, name)
	if err != nil {
		return rotation.Version{}, fmt.Errorf("keyvault: set %q: read current tags: %w", name, err)
	}
	adopt := v.Tags[rotation.TagReason] == string(rotation.ReasonAdopt)
	switch {
	case ob.exists && ob.kind != "":
		return rotation.Version{}, fmt.Errorf("keyvault: set %q: it holds patrol's %s, not a PAT: %w", name, ob.kind, rotation.ErrUnmanaged)
	case ob.exists && !ob.managed && !adopt:
		return rotation.Version{}, fmt.Errorf("keyvault: set %q: %w (adopt it first: patrol adopt %s)", name, rotation.ErrUnmanaged, name)
	}
	params := azsecrets.SetSecretParameters{
		Value:            to(v.Value.Reveal()),
		Tags:             tagsOut(v.Tags),
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to(true)},
	}
	if !v.Expires.IsZero() {
		params.SecretAttributes.Expires = to(v.Expires.UTC())
	}
	res, err := s.c.SetSecret(ctx, name, params, nil)
	res.Value = nil
	if err != nil {
		s.forget(name)
		return rotation.Version{}, fmt.Errorf("keyvault: set %q: %w", name, translate(err))
	}
	s.remember(name, v.Tags, true)
	return versionOf(name, res.ID, res.Attributes, res.Tags), nil
}

// ListManaged returns the current version of every secret tagged patrol-managed=true.
// The list carries tags but not version ids, and the sweep derives its operation ids
// from the version, so each managed secret costs one more GET (Current).
func (s *Store) ListManaged(ctx context.Context) ([]rotation.Version, error) {
	var names []string
	err := s.eachSecret(ctx, func(sp *azsecrets.SecretProperties) {
		if rotation.IsManaged(tagsIn(sp.Tags)) {
			names = append(names, sp.ID.Name())
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]rotation.Version, 0, len(names))
	for _, n := range names {
		v, err := s.Current(ctx, n)
		if errors.Is(err, rotation.ErrNotFound) {
			continue // deleted since the list
		}
		if err != nil {
			return nil, err
		}
		if rotation.IsManaged(v.Tags) {
			out = append(out, v)
		}
	}
	return out, nil
}

// eachSecret walks the vault's list pages and calls fn for every secret's properties,
// leaving out certificates' backing secrets (Managed), which patrol never touches. A
// page costs one request for 25 secrets; the pages carry tags and attributes, never a
// value or a version id.
func (s *Store) eachSecret(ctx context.Context, fn func(*azsecrets.SecretProperties)) error {
	p := s.c.NewListSecretPropertiesPager(nil)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("keyvault: list secrets: %w", translate(err))
		}
		for _, sp := range page.Value {
			if sp == nil || sp.ID == nil || (sp.Managed != nil && *sp.Managed) {
				continue
			}
			fn(sp)
		}
	}
	return nil
}

// observe returns what is known about a secret's tags, reading it when the memo has
// nothing recent.
func (s *Store) observe(ctx context.Context, name string) (observed, error) {
	s.mu.Lock()
	ob, ok := s.seen[name]
	s.mu.Unlock()
	if ok && s.clock.Now().Sub(ob.at) < memoTTL {
		return ob, nil
	}
	if _, err := s.Current(ctx, name); err != nil && !errors.Is(err, rotation.ErrNotFound) {
		return observed{}, errors.Unwrap(err) // Current's context is added by the caller
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[name], nil
}

func (s *Store) remember(name string, tags map[string]string, exists bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[name] = observed{exists: exists, managed: rotation.IsManaged(tags), kind: tags[TagKind], at: s.clock.Now()}
}

func (s *Store) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, name)
}

func versionOf(name string, id *azsecrets.ID, a *azsecrets.SecretAttributes, tags map[string]*string) rotation.Version {
	v := rotation.Version{Name: name, Tags: tagsIn(tags), Enabled: true}
	if id != nil {
		v.ID = id.Version()
		if n := id.Name(); n != "" {
			v.Name = n
		}
	}
	if a != nil {
		if a.Enabled != nil {
			v.Enabled = *a.Enabled
		}
		v.Created, v.NotBefore, v.Expires = deref(a.Created), deref(a.NotBefore), deref(a.Expires)
	}
	return v
}

func tagsIn(t map[string]*string) map[string]string {
	out := make(map[string]string, len(t))
	for k, v := range t {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}

func tagsOut(t map[string]string) map[string]*string {
	out := make(map[string]*string, len(t))
	for k, v := range t {
		out[k] = to(v)
	}
	return out
}

func to[T any](v T) *T { return &v }

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// AccountSlug is the account part of the names of a service account's secrets: the
// UPN lower-cased with every run of characters outside [a-z0-9] replaced by '-'
// (docs/architecture.md).
func AccountSlug(upn string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(upn) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return b.String()
}

// CacheSecretName is the secret holding a service account's MSAL token cache.
func CacheSecretName(upn string) string { return "patrol-msal-" + AccountSlug(upn) }

// PasswordSecretName is the secret an operator may put a service account's password
// in (used only with PATROL_ALLOW_ROPC=true).
func PasswordSecretName(upn string) string { return "patrol-password-" + AccountSlug(upn) }
