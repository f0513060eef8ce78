// Package journal records the requests an emulator has seen, so tests and the local
// stack's inspection API can count round trips per operation. It holds no headers, no
// bodies and no query strings: nothing in it can carry a token value.
package journal

import (
	"bufio"
	"net"
	"net/http"
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

// StatusRecorder wraps an emulator's ResponseWriter to remember the status for the
// journal while staying hijackable, so fault injection can still drop the connection.
// A dropped connection leaves Status 0: no answer was sent.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
	// OnHijack, when set, runs once just before the connection is taken over, so the
	// request is journaled before the client can observe the drop.
	OnHijack func()
}

// WriteHeader records the first status written.
func (s *StatusRecorder) WriteHeader(code int) {
	if s.Status == 0 {
		s.Status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Hijack takes the connection over (fault injection's dropped connections).
func (s *StatusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	s.Status = 0
	if f := s.OnHijack; f != nil {
		s.OnHijack = nil
		f()
	}
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
