// Package journal records the requests an emulator has seen, so tests and the local
// stack's inspection API can count round trips per operation. It holds no headers, no
// bodies and no query strings: nothing in it can carry a token value.
package journal

import (
	"sync"
	"time"
)

// Entry is one request as the emulator saw it.
type Entry struct {
	Time      time.Time     `json:"time"`
	Method    string        `json:"method"`
	Path      string        `json:"path"` // URL path only, never the query
	Operation string        `json:"operation"`
	Status    int           `json:"status"`
	Principal string        `json:"principal,omitempty"` // object id or UPN, never a credential
	Duration  time.Duration `json:"duration"`
}

// Journal is a bounded, concurrency-safe request log.
type Journal struct {
	mu      sync.Mutex
	limit   int
	entries []Entry
	counts  map[string]int
}

// New returns a journal keeping the last limit entries (counts cover every request).
func New(limit int) *Journal {
	if limit <= 0 {
		limit = 10000
	}
	return &Journal{limit: limit, counts: map[string]int{}}
}

// Add records e.
func (j *Journal) Add(e Entry) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.entries) >= j.limit {
		copy(j.entries, j.entries[1:])
		j.entries = j.entries[:len(j.entries)-1]
	}
	j.entries = append(j.entries, e)
	j.counts[e.Operation]++
}

// Entries returns a copy of the retained entries, oldest first.
func (j *Journal) Entries() []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Entry(nil), j.entries...)
}

// Count returns how many requests for op were recorded since the last Reset.
func (j *Journal) Count(op string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.counts[op]
}

// Counts returns the request count per operation since the last Reset.
func (j *Journal) Counts() map[string]int {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make(map[string]int, len(j.counts))
	for k, v := range j.counts {
		out[k] = v
	}
	return out
}

// Reset forgets every entry and count.
func (j *Journal) Reset() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = nil
	j.counts = map[string]int{}
}
