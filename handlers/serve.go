package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Port variables the Functions host sets; the second is the legacy name with the same
// value, read as a fallback for older hosts.
const (
	EnvPort       = "FUNCTIONS_CUSTOMHANDLER_PORT"
	EnvLegacyPort = "FUNCTIONS_HTTPWORKER_PORT"
)

// DrainTimeout is how long Serve lets in-flight invocations finish after its context is
// cancelled. The host stops sending new work before it signals the process; what is in
// flight is usually a rotation step, which should finish rather than be retried.
const DrainTimeout = 30 * time.Second

// ListenAddr returns 127.0.0.1:<port> from the host's environment. The host connects
// to 127.0.0.1 only, so listening on every interface would expose the handler for
// nothing.
func ListenAddr(getenv func(string) string) (string, error) {
	name, v := EnvPort, getenv(EnvPort)
	if v == "" {
		name, v = EnvLegacyPort, getenv(EnvLegacyPort)
	}
	if v == "" {
		return "", fmt.Errorf("handlers: %s is not set (the Functions host sets it; `patrol-dev local` runs the host)", EnvPort)
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("handlers: %s=%q is not a TCP port", name, v)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// Serve listens on addr and serves h until ctx is cancelled, then drains in-flight
// requests for up to DrainTimeout. It listens before anything else happens, so the
// host's readiness probe succeeds as soon as the process is up.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("handlers: listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h)
}

// ServeListener is Serve on an existing listener (tests, and callers that must know
// the port before serving).
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No write timeout: an invocation may legitimately run up to the function
		// timeout; the handler's own per-invocation deadline bounds it.
		IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("handlers: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DrainTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("handlers: shutdown: %w", err)
	}
	return nil
}

// Late is the handler while the process is still getting ready: it answers the host's
// readiness probe (GET /) at once, exactly as Handler does, and holds every other
// request until Set hands it the real handler (or Fail says there will be none). The
// custom handler listens and serves first and reads its settings after, so loading and
// validating them is off the host's start-to-ready path; a process whose settings are
// bad still exits before any invocation runs.
type Late struct {
	ready chan struct{}
	h     http.Handler
	err   error
}

// NewLate returns a Late with no handler yet.
func NewLate() *Late { return &Late{ready: make(chan struct{})} }

// Set hands l the real handler; call Set or Fail once.
func (l *Late) Set(h http.Handler) { l.h = h; close(l.ready) }

// Fail makes every held and later request answer 503 naming err.
func (l *Late) Fail(err error) { l.err = err; close(l.ready) }

func (l *Late) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-l.ready:
	default:
		if strings.Trim(r.URL.Path, "/") == "" {
			writeReady(w)
			return
		}
		select {
		case <-l.ready:
		case <-r.Context().Done():
			http.Error(w, "handlers: the request ended before the handler was ready", http.StatusServiceUnavailable)
			return
		}
	}
	if l.err != nil {
		http.Error(w, "handlers: not started: "+l.err.Error(), http.StatusServiceUnavailable)
		return
	}
	l.h.ServeHTTP(w, r)
}
