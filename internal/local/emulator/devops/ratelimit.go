package devops

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// RateLimit configures the per-identity budget, modelled on Azure DevOps TSTUs: each
// identity may spend Limit units per sliding Window; a request that would exceed it is
// answered 429 TF400733 with Retry-After.
type RateLimit struct {
	Limit    int            // units per window; 0 = 200 (the service's global limit); < 0 disables limiting
	Window   time.Duration  // sliding window; 0 = 5 minutes
	Costs    map[string]int // units per operation name (e.g. "CreatePat"); default 1
	Resource string         // X-RateLimit-Resource; default "Core"
}

func (rl RateLimit) withDefaults() RateLimit {
	if rl.Limit == 0 {
		rl.Limit = 200
	}
	if rl.Window <= 0 {
		rl.Window = 5 * time.Minute
	}
	if rl.Resource == "" {
		rl.Resource = "Core"
	}
	return rl
}

type usage struct {
	at   time.Time
	cost int
}

type limiter struct {
	cfg  RateLimit
	mu   sync.Mutex
	uses map[string][]usage
}

// rateDecision is what the limiter decided for one request.
type rateDecision struct {
	allowed    bool
	limit      int
	remaining  int
	reset      time.Time     // when the whole budget is available again
	retryAfter time.Duration // when blocked: until enough usage leaves the window
}

func newLimiter(cfg RateLimit) *limiter {
	return &limiter{cfg: cfg.withDefaults(), uses: map[string][]usage{}}
}

// set replaces the budget; usage already charged stays charged.
func (l *limiter) set(cfg RateLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg.withDefaults()
}

// resource is X-RateLimit-Resource.
func (l *limiter) resource() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg.Resource
}

// take charges op to identity at now, or refuses it. Blocked requests are not charged.
func (l *limiter) take(identity, op string, now time.Time) rateDecision {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Limit < 0 {
		return rateDecision{allowed: true, limit: -1}
	}
	cost := 1
	if c, ok := l.cfg.Costs[op]; ok {
		cost = c
	}
	kept, used := window(l.uses[identity], now.Add(-l.cfg.Window))
	d := decideRate(kept, used, cost, l.cfg.Limit, l.cfg.Window, now)
	if d.allowed && cost > 0 {
		kept = append(kept, usage{at: now, cost: cost})
	}
	l.uses[identity] = kept
	return d
}

// window drops usage older than since and sums the rest.
func window(uses []usage, since time.Time) ([]usage, int) {
	i := 0
	for i < len(uses) && !uses[i].at.After(since) {
		i++
	}
	kept := uses[i:]
	used := 0
	for _, u := range kept {
		used += u.cost
	}
	return kept, used
}

// decideRate is the pure budget decision for one request.
func decideRate(kept []usage, used, cost, limit int, win time.Duration, now time.Time) rateDecision {
	d := rateDecision{limit: limit}
	if used+cost <= limit {
		d.allowed = true
		d.remaining = limit - used - cost
		d.reset = now.Add(win)
		return d
	}
	d.remaining = max(limit-used, 0)
	d.reset = now.Add(win)
	if len(kept) > 0 {
		d.reset = kept[len(kept)-1].at.Add(win)
	}
	// Free the oldest usage until the request fits; a request costing more than the
	// whole budget can only wait for an empty window.
	d.retryAfter = win
	freed := 0
	for _, u := range kept {
		freed += u.cost
		if used-freed+cost <= limit {
			d.retryAfter = u.at.Add(win).Sub(now)
			break
		}
	}
	d.retryAfter = max(d.retryAfter, time.Second)
	return d
}

func (d rateDecision) setHeaders(h http.Header, resource string) {
	if d.limit < 0 {
		return
	}
	h.Set("X-RateLimit-Resource", resource)
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(d.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(d.reset.Unix(), 10))
	if !d.allowed {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(d.retryAfter.Seconds()))))
	}
}
