package identity

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
)

// memStore is a CacheStore with versions, like Key Vault's.
type memStore struct {
	mu      sync.Mutex
	blob    []byte
	version int
	failGet error
	saves   int
}

func (m *memStore) LoadCache(context.Context, string) (StoredCache, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failGet != nil {
		return StoredCache{}, m.failGet
	}
	if m.version == 0 {
		return StoredCache{}, nil
	}
	return StoredCache{Blob: m.blob, Version: strconv.Itoa(m.version)}, nil
}

func (m *memStore) SaveCache(_ context.Context, _ string, blob []byte, over string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := ""
	if m.version > 0 {
		cur = strconv.Itoa(m.version)
	}
	if over != Overwrite && over != cur {
		return "", ErrCacheChanged
	}
	m.blob, m.version, m.saves = blob, m.version+1, m.saves+1
	return strconv.Itoa(m.version), nil
}

func (m *memStore) Password(context.Context, string) (string, bool, error) { return "", false, nil }

// msal stands in for MSAL's in-memory cache.
type msal struct{ blob string }

func (m *msal) Unmarshal(b []byte) error { m.blob = string(b); return nil }
func (m *msal) Marshal() ([]byte, error) { return []byte(m.blob), nil }
func replace(c *kvCache, m *msal) error {
	return c.Replace(context.Background(), m, cache.ReplaceHints{})
}
func export(c *kvCache, m *msal) error { return c.Export(context.Background(), m, cache.ExportHints{}) }
func newKVCache(st *memStore, recheck time.Duration) *kvCache {
	return &kvCache{store: st, account: "svc@contoso.com", recheck: recheck, log: slog.New(slog.DiscardHandler)}
}

func TestTheCacheCopyFollowsTheStoredVersion(t *testing.T) {
	cases := map[string]struct {
		recheck time.Duration
		act     func(st *memStore, c *kvCache, m *msal) error
		want    string // what MSAL holds at the end
		saves   int    // writes to the store after the first sign-in
	}{
		"a warm copy is trusted until the recheck is due": {
			recheck: time.Hour,
			act: func(st *memStore, c *kvCache, m *msal) error {
				st.blob, st.version = []byte(`{"login":2}`), st.version+1 // patrol login elsewhere
				return replace(c, m)
			},
			want: `{"login":1}`,
		},
		"a due recheck takes the version stored since": {
			recheck: time.Nanosecond,
			act: func(st *memStore, c *kvCache, m *msal) error {
				st.blob, st.version = []byte(`{"login":2}`), st.version+1
				return replace(c, m)
			},
			want: `{"login":2}`,
		},
		"a failed recheck keeps the copy rather than failing the token": {
			recheck: time.Nanosecond,
			act: func(st *memStore, c *kvCache, m *msal) error {
				st.failGet = errors.New("vault unreachable")
				return replace(c, m)
			},
			want: `{"login":1}`,
		},
		"a deleted cache signs the account out of the warm copy too": {
			recheck: time.Nanosecond,
			act: func(st *memStore, c *kvCache, m *msal) error {
				st.blob, st.version = nil, 0
				return replace(c, m)
			},
			want: `{}`,
		},
		"a stale copy is not written over a newer version, and is dropped": {
			recheck: time.Hour,
			act: func(st *memStore, c *kvCache, m *msal) error {
				st.blob, st.version = []byte(`{"login":2}`), st.version+1
				m.blob = `{"login":1,"refreshed":true}`
				if err := export(c, m); err != nil {
					return err
				}
				return replace(c, m) // the next use reads the stored one
			},
			want: `{"login":2}`,
		},
		"a refreshed copy is written over the version it was read at": {
			recheck: time.Hour,
			act: func(st *memStore, c *kvCache, m *msal) error {
				m.blob = `{"login":1,"refreshed":true}`
				return export(c, m)
			},
			want:  `{"login":1,"refreshed":true}`,
			saves: 1,
		},
		"a sign-in overwrites whatever is stored": {
			recheck: time.Hour,
			act: func(st *memStore, c *kvCache, m *msal) error {
				st.blob, st.version = []byte(`{"other":true}`), st.version+1
				defer c.signingIn()()
				m.blob = `{"login":3}`
				return export(c, m)
			},
			want:  `{"login":3}`,
			saves: 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := &memStore{blob: []byte(`{"login":1}`), version: 1}
			c, m := newKVCache(st, tc.recheck), &msal{}
			if err := replace(c, m); err != nil || m.blob != `{"login":1}` {
				t.Fatalf("first load: %q, %v", m.blob, err)
			}
			if err := tc.act(st, c, m); err != nil {
				t.Fatal(err)
			}
			if m.blob != tc.want {
				t.Errorf("MSAL holds %s, want %s", m.blob, tc.want)
			}
			if st.saves != tc.saves {
				t.Errorf("%d writes, want %d", st.saves, tc.saves)
			}
		})
	}
}
