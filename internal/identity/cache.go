package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
)

// CacheStore persists each service account's MSAL cache (and, where ROPC is enabled,
// reads its password). The Key Vault adapter implements it, on the identity vault.
type CacheStore interface {
	// LoadCache returns the account's cache as stored; a zero StoredCache when there
	// is none yet.
	LoadCache(ctx context.Context, account string) (StoredCache, error)
	// SaveCache stores blob as the account's cache in place of the version over ("":
	// there is none yet; Overwrite: whatever is stored) and returns the new version. A
	// stored version other than over is ErrCacheChanged, and nothing is written.
	SaveCache(ctx context.Context, account string, blob []byte, over string) (string, error)
	// Password returns the account's stored password and whether one exists.
	Password(ctx context.Context, account string) (string, bool, error)
}

// StoredCache is an account's MSAL cache blob and the store's version of it.
type StoredCache struct {
	Blob    []byte
	Version string // "" when nothing is stored
}

// Overwrite, as SaveCache's over, stores the cache whatever version is there: a sign-in
// by the operator (`patrol login`) always wins.
const Overwrite = "*"

// ErrCacheChanged is SaveCache's answer when the stored cache is no longer the version
// the caller read: someone (`patrol login`, another instance) stored a newer one.
var ErrCacheChanged = errors.New("identity: the stored token cache changed since it was read")

// DefaultCacheRecheck is how long a warm instance trusts its copy of a cache before it
// reads the stored version again. Each check is one Key Vault read per account; a
// minute keeps that negligible and bounds how long a fresh sign-in goes unnoticed
// (invalid_grant notices it at once, see ServiceAccounts.Token).
const DefaultCacheRecheck = time.Minute

// kvCache adapts CacheStore to MSAL's ExportReplace. It keeps the last blob and its
// stored version in memory so that a warm function instance does not read Key Vault
// before every token, and
//   - Replace reads the store again once recheck has passed (or after invalidate), and
//     takes the stored blob when its version differs from the one in memory;
//   - Export writes only when MSAL's cache changed, and only over the version it read:
//     a cache stored since (a new sign-in) is never overwritten by this stale copy, which
//     is dropped instead so the next Replace reads the fresh one.
//
// Key Vault has no conditional write, so the version check is a read just before the
// write: two writers within that window can still race, and the later write wins. A
// sign-in writes with Overwrite, so the window can only lose a refreshed copy of the
// same sign-in, never a new sign-in to an old one by more than that instant.
type kvCache struct {
	store   CacheStore
	account string
	recheck time.Duration
	log     *slog.Logger

	mu        sync.Mutex
	blob      []byte
	version   string
	loaded    bool
	checked   time.Time
	overwrite bool // a sign-in is in progress: its Export wins
}

func (c *kvCache) Replace(ctx context.Context, u cache.Unmarshaler, _ cache.ReplaceHints) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded || time.Since(c.checked) >= c.recheck {
		if _, err := c.loadLocked(ctx); err != nil {
			if !c.loaded {
				return err
			}
			// A failed recheck must not fail a token the copy in memory can give.
			c.log.WarnContext(ctx, "token cache recheck failed; using the copy in memory", "serviceAccount", c.account, "error", err)
			c.checked = time.Now()
		}
	}
	if len(c.blob) == 0 {
		// Nothing stored (or the secret was deleted to sign the account out): MSAL's
		// own copy must not outlive it.
		return u.Unmarshal([]byte("{}"))
	}
	return u.Unmarshal(c.blob)
}

// loadLocked reads the stored cache and keeps it when its version differs from the one
// in memory. It reports whether it did.
func (c *kvCache) loadLocked(ctx context.Context) (bool, error) {
	sc, err := c.store.LoadCache(ctx, c.account)
	if err != nil {
		return false, fmt.Errorf("identity: load token cache of %s: %w", c.account, err)
	}
	changed := !c.loaded || sc.Version != c.version
	if changed {
		if c.loaded {
			c.log.InfoContext(ctx, "token cache changed in the vault; using the stored one", "serviceAccount", c.account, "version", sc.Version)
		}
		c.blob, c.version = sc.Blob, sc.Version
	}
	c.loaded, c.checked = true, time.Now()
	return changed, nil
}

// reload reads the stored cache now, and reports whether it was another version than
// the one in memory.
func (c *kvCache) reload(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.loaded
	changed, err := c.loadLocked(ctx)
	return was && changed, err
}

func (c *kvCache) Export(ctx context.Context, m cache.Marshaler, _ cache.ExportHints) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded && string(b) == string(c.blob) {
		return nil
	}
	over := c.version
	if c.overwrite {
		over = Overwrite
	}
	v, err := c.store.SaveCache(ctx, c.account, b, over)
	if errors.Is(err, ErrCacheChanged) {
		// A newer cache is stored; ours is stale. The token MSAL just got is still
		// good; drop the copy so the next Replace takes the stored one.
		c.log.InfoContext(ctx, "token cache changed in the vault; not overwriting it", "serviceAccount", c.account)
		c.loaded = false
		return nil
	}
	if err != nil {
		return fmt.Errorf("identity: save token cache of %s: %w", c.account, err)
	}
	c.blob, c.version, c.loaded, c.checked = b, v, true, time.Now()
	return nil
}

// signingIn makes Exports overwrite whatever is stored until the returned func is
// called: a sign-in is the operator's fresh decision, not a stale copy.
func (c *kvCache) signingIn() func() {
	c.mu.Lock()
	c.overwrite = true
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.overwrite = false
		c.mu.Unlock()
	}
}

// againIfReloaded runs get, and once more when it failed because the account is not
// (or no longer) signed in and the stored cache turned out to be another version than
// this instance's: the operator signed the account in again after an incident.
func (s *ServiceAccounts) againIfReloaded(ctx context.Context, upn string, get func(context.Context, string) (Token, error)) (Token, error) {
	tok, err := get(ctx, upn)
	var se *SignInError
	if !errors.As(err, &se) || se.Kind != NotSignedIn && se.Kind != SignInExpired {
		return tok, err
	}
	a, aerr := s.account(upn)
	if aerr != nil {
		return tok, err
	}
	changed, rerr := a.cache.reload(ctx)
	if rerr != nil || !changed {
		return tok, err
	}
	s.opts.Logger.InfoContext(ctx, "retrying with the token cache stored since", "serviceAccount", upn, "reason", se.Kind.String())
	return get(ctx, upn)
}
