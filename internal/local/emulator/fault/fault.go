// Package fault injects failures into the emulators so patrol's retries, back-off and
// crash recovery can be tested against the same wire protocols they face in Azure:
// added latency, throttling with Retry-After, server errors, and dropped connections.
//
// Rules are keyed by operation name (each emulator documents its names; "*" matches every
// operation). A rule applies to every matching request, or to the next Times of them.
package fault

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault describes what happens to a matching request.
type Fault struct {
	// Latency is added before the request is handled (or failed).
	Latency time.Duration `json:"latency,omitempty"`
	// Status, when non-zero, answers the request with this HTTP status (or the
	// protocol's equivalent) instead of handling it.
	Status int `json:"status,omitempty"`
	// RetryAfter is sent as Retry-After (whole seconds, rounded up) with Status.
	RetryAfter time.Duration `json:"retryAfter,omitempty"`
	// Drop closes the connection without answering.
	Drop bool `json:"drop,omitempty"`
	// Times limits the rule to the next Times matching requests; 0 means every one.
	Times int `json:"times,omitempty"`
}

// UnmarshalJSON accepts durations as Go strings ("250ms") or as nanosecond numbers.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var raw struct {
		Latency    json.RawMessage `json:"latency"`
		Status     int             `json:"status"`
		RetryAfter json.RawMessage `json:"retryAfter"`
		Drop       bool            `json:"drop"`
		Times      int             `json:"times"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	lat, err := parseDuration(raw.Latency)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	ra, err := parseDuration(raw.RetryAfter)
	if err != nil {
		return fmt.Errorf("retryAfter: %w", err)
	}
	if raw.Status != 0 && (raw.Status < 100 || raw.Status > 599) {
		return fmt.Errorf("status %d is not an HTTP status", raw.Status)
	}
	if raw.Times < 0 {
		return fmt.Errorf("times %d is negative", raw.Times)
	}
	*f = Fault{Latency: lat, Status: raw.Status, RetryAfter: ra, Drop: raw.Drop, Times: raw.Times}
	return nil
}

func parseDuration(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return time.ParseDuration(s)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("%s is neither a duration string nor nanoseconds", raw)
	}
	return time.Duration(n), nil
}

// Injector holds the fault rules of one emulator. It is safe for concurrent use.
type Injector struct {
	mu    sync.Mutex
	rules map[string]*Fault
	hits  map[string]int
}

// New returns an injector with no rules.
func New() *Injector { return &Injector{rules: map[string]*Fault{}, hits: map[string]int{}} }

// Set installs (or replaces) the rule for op.
func (in *Injector) Set(op string, f Fault) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules[op] = &f
}

// Clear removes the rule for op.
func (in *Injector) Clear(op string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.rules, op)
}

// Reset removes every rule and forgets the hit counts.
func (in *Injector) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = map[string]*Fault{}
	in.hits = map[string]int{}
}

// Hits reports how many requests for op a rule has applied to.
func (in *Injector) Hits(op string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hits[op]
}

// Take returns the fault for op, consuming one use of a limited rule. An exact rule wins
// over "*".
func (in *Injector) Take(op string) (Fault, bool) {
	if in == nil {
		return Fault{}, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	key := op
	r, ok := in.rules[key]
	if !ok {
		key = "*"
		if r, ok = in.rules[key]; !ok {
			return Fault{}, false
		}
	}
	f := *r
	if r.Times > 0 {
		r.Times--
		if r.Times == 0 {
			delete(in.rules, key)
		}
	}
	in.hits[op]++
	return f, true
}

// Apply applies the fault for op to an HTTP request: it waits Latency (or until the
// request is cancelled), then drops the connection, or sets Retry-After and calls write
// with the status so the body carries the emulator's own error shape. It reports whether
// the request is finished and the caller must not answer it.
func (in *Injector) Apply(w http.ResponseWriter, r *http.Request, op string, write func(w http.ResponseWriter, status int)) bool {
	f, ok := in.Take(op)
	if !ok {
		return false
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if f.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		// HTTP/2 cannot hijack; aborting the handler resets the stream instead.
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	write(w, f.Status)
	return true
}

// ServeHTTP exposes the rules for the local stack: GET / lists them, PUT /{op} with a
// Fault as JSON installs one, DELETE /{op} removes it and DELETE / removes all.
func (in *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := strings.Trim(r.URL.Path, "/")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet:
		in.mu.Lock()
		out := make(map[string]Fault, len(in.rules))
		for k, v := range in.rules {
			out[k] = *v
		}
		in.mu.Unlock()
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodPut && op != "":
		var f Fault
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&f); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "fault rule for " + strconv.Quote(op) + ": " + err.Error()})
			return
		}
		in.Set(op, f)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete && op == "":
		in.Reset()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		in.Clear(op)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
