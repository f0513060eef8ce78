package devhost

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
)

// Scale groups, as Flex Consumption names them (docs/emulator-fidelity.md 4.1): HTTP
// triggers share the "http" group's instances; "all other functions in the app are
// scaled individually in their own set of instances", named function:<NAME>. (The
// "blob" and "durable" groups hold trigger kinds patrol does not use.)
const (
	GroupHTTP           = "http"
	GroupFunctionPrefix = "function:"
	// GroupAll is the one group of Options.OneProcess.
	GroupAll = "all"
)

// ScaleGroup is the Flex Consumption scale group function f runs in.
func ScaleGroup(f Function) string {
	if f.TriggerBinding().Type == TypeHTTPTrigger {
		return GroupHTTP
	}
	return GroupFunctionPrefix + f.Name
}

// worker runs the handler process of one scale group: its own process, port, readiness
// gate and restarts, so no in-process state is shared between groups, as on Flex
// Consumption, where each group runs on its own instances.
type worker struct {
	h         *Host
	group     string
	functions []string
	log       *slog.Logger

	proc      *process      // guarded by procMu
	ready     chan struct{} // closed while proc is ready; guarded by procMu
	procMu    sync.Mutex
	lifecycle sync.Mutex // serialises starting and stopping the handler
	restarts  atomic.Int64
}

// planWorkers splits the app's functions into scale groups (one with OneProcess), in
// the app's function order with the HTTP group first.
func (h *Host) planWorkers() {
	h.byFunction = map[string]*worker{}
	byGroup := map[string]*worker{}
	add := func(group string, f Function) {
		w, ok := byGroup[group]
		if !ok {
			w = &worker{h: h, group: group, ready: make(chan struct{}), log: h.log.With("group", group)}
			if h.opts.OneProcess {
				w.log = h.log
			}
			byGroup[group] = w
			if group == GroupHTTP {
				h.workers = append([]*worker{w}, h.workers...)
			} else {
				h.workers = append(h.workers, w)
			}
		}
		w.functions = append(w.functions, f.Name)
		h.byFunction[strings.ToLower(f.Name)] = w
	}
	for _, f := range h.def.Functions {
		if h.opts.OneProcess {
			add(GroupAll, f)
		} else {
			add(ScaleGroup(f), f)
		}
	}
	if len(h.workers) == 0 { // an app without functions still runs its handler
		w := &worker{h: h, group: GroupAll, ready: make(chan struct{}), log: h.log}
		h.workers = append(h.workers, w)
	}
}

// workerFor is the group that runs f.
func (h *Host) workerFor(f Function) *worker {
	if w, ok := h.byFunction[strings.ToLower(f.Name)]; ok {
		return w
	}
	return h.workers[0]
}

// eachWorker runs fn for every group at once and joins the errors.
func (h *Host) eachWorker(fn func(*worker) error) error {
	errs := make([]error, len(h.workers))
	var wg sync.WaitGroup
	for i, w := range h.workers {
		wg.Go(func() { errs[i] = fn(w) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Groups returns each scale group's functions, as devhost runs them.
func (h *Host) Groups() map[string][]string {
	out := make(map[string][]string, len(h.workers))
	for _, w := range h.workers {
		out[w.group] = append([]string(nil), w.functions...)
	}
	return out
}
