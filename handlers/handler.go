package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// InvocationIDHeader carries the host's id of the invocation.
const InvocationIDHeader = "X-Azure-Functions-InvocationId"

// Defaults for Options.
const (
	// DefaultInvocationTimeout stays a minute under host.json's functionTimeout
	// (00:10:00), so the handler answers, and the message is abandoned cleanly, before
	// the host cancels the invocation itself.
	DefaultInvocationTimeout = 9 * time.Minute
	// DefaultMaxWait caps RotateNow's ?wait: Azure's front end ends HTTP requests after
	// 230 s whatever the function timeout.
	DefaultMaxWait = 2 * time.Minute
	// DefaultMaxBodyBytes bounds an invocation body: patrol's messages are small and the
	// largest Service Bus message (premium) is far beyond anything it would accept.
	DefaultMaxBodyBytes = 4 << 20
	// settleTimeout bounds reporting a failure after the App gave up,
	// on a fresh deadline: the invocation's may be spent already.
	settleTimeout = 30 * time.Second
)

// Options configure a Handler.
type Options struct {
	// Deps builds the App and its settlement helpers. It is called on the first
	// invocation (not before: the readiness probe must be answered without any network
	// or SDK work), once even under concurrent invocations, and again after it fails.
	// ctx is that invocation's: use it for start-up calls, do not keep it.
	Deps   func(ctx context.Context) (Deps, error)
	Logger *slog.Logger
	// InvocationTimeout is each invocation's deadline; zero means DefaultInvocationTimeout.
	InvocationTimeout time.Duration
	// MaxWait caps RotateNow's wait; zero means DefaultMaxWait.
	MaxWait time.Duration
	// Classify maps App errors to a Class; nil means the package's Classify.
	Classify     func(error) Class
	MaxBodyBytes int64
	// TrustPrincipalHeaders: App Service Authentication ("Easy Auth") fronts the app,
	// so the x-ms-client-principal-* headers were set by it, not by the caller (it
	// strips them from incoming requests). Without Easy Auth anyone can send them, so
	// they are ignored. New sets it from WEBSITE_AUTH_ENABLED, which App Service sets
	// when authentication is on.
	TrustPrincipalHeaders bool
}

// Handler is the custom handler: an http.Handler serving `GET /` (readiness) and
// `POST /{FunctionName}` (invocations).
type Handler struct {
	opts Options
	log  *slog.Logger

	mu   sync.Mutex
	deps *Deps
}

// New returns a Handler. It does no I/O.
func New(opts Options) *Handler {
	if opts.InvocationTimeout <= 0 {
		opts.InvocationTimeout = DefaultInvocationTimeout
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.Classify == nil {
		opts.Classify = Classify
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if !opts.TrustPrincipalHeaders {
		opts.TrustPrincipalHeaders = EasyAuthEnabled(os.Getenv)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, log: log}
}

func (h *Handler) dependencies(ctx context.Context) (Deps, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deps != nil {
		return *h.deps, nil
	}
	if h.opts.Deps == nil {
		return Deps{}, errors.New("handlers: no dependencies configured")
	}
	d, err := h.opts.Deps(ctx)
	if err != nil {
		return Deps{}, fmt.Errorf("handlers: start: %w", err)
	}
	if d.App == nil {
		return Deps{}, errors.New("handlers: start: no App")
	}
	h.deps = &d
	return d, nil
}

// response is the host's `{Outputs, Logs, ReturnValue}`; status is the HTTP status
// answered to the host (non-2xx = the invocation failed).
type response struct {
	status  int
	Outputs map[string]any `json:"Outputs"`
	Logs    []string       `json:"Logs"`
	// ReturnValue is always null: no function has a $return binding.
	ReturnValue any `json:"ReturnValue"`
}

// ServeHTTP implements the custom-handler protocol.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(r.URL.Path, "/")
	if name == "" {
		// Readiness: the host polls until any answer comes back.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	fn, ok := lookupFunction(name)
	if !ok {
		h.writeJSON(w, &response{status: http.StatusNotFound, Logs: []string{fmt.Sprintf("no function named %q", contract.Clip(name))}})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.writeJSON(w, &response{status: http.StatusMethodNotAllowed, Logs: []string{"invocations are POST"}})
		return
	}
	id := r.Header.Get(InvocationIDHeader)
	log := h.log.With(slog.String("invocationId", id), slog.String("function", fn.Name))
	ctx := withInvocation(r.Context(), id, fn.Name)
	ctx, cancel := context.WithTimeout(ctx, h.opts.InvocationTimeout)
	defer cancel()

	res := h.invoke(ctx, log, fn, id, http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	h.writeJSON(w, res)
}

func (h *Handler) writeJSON(w http.ResponseWriter, res *response) {
	if res.Outputs == nil {
		res.Outputs = map[string]any{}
	}
	if res.Logs == nil {
		res.Logs = []string{}
	}
	b, err := json.Marshal(res)
	if err != nil {
		// Only our own types are marshalled; this is a programming error.
		h.log.Error("encode response", slog.Any("error", err))
		http.Error(w, `{"error":"encode response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(res.status)
	_, _ = w.Write(b)
}

func (h *Handler) invoke(ctx context.Context, log *slog.Logger, fn Function, id string, body io.Reader) (res *response) {
	defer func() {
		if p := recover(); p != nil {
			log.ErrorContext(ctx, "invocation panicked", slog.String("panic", fmt.Sprint(p)))
			res = &response{status: http.StatusInternalServerError, Logs: []string{"internal error"}}
		}
	}()
	raw, err := io.ReadAll(body)
	if err != nil {
		log.ErrorContext(ctx, "read invocation", slog.Any("error", err))
		return &response{status: http.StatusBadRequest, Logs: []string{"read invocation: " + err.Error()}}
	}
	inv, err := DecodeInvocation(raw)
	if err != nil {
		// Without the envelope there is no lock token to dead-letter with: fail, so the
		// message is retried and Service Bus dead-letters it after MaxDeliveryCount.
		log.ErrorContext(ctx, "decode invocation", slog.Any("error", err))
		return &response{status: http.StatusBadRequest, Logs: []string{err.Error()}}
	}
	deps, err := h.dependencies(ctx)
	if err != nil {
		log.ErrorContext(ctx, "dependencies", slog.Any("error", err))
		if fn.Trigger == BindingHTTPTrigger {
			return httpResult(fn, errorReply(http.StatusServiceUnavailable, "Unavailable", err.Error()))
		}
		return &response{status: http.StatusInternalServerError, Logs: []string{err.Error()}}
	}
	return fn.invoke(ctx, call{h: h, fn: fn, log: log, deps: deps, inv: inv, id: id})
}

// call is one invocation of one function: what the function's invoke needs.
type call struct {
	h    *Handler
	fn   Function
	log  *slog.Logger
	deps Deps
	inv  Invocation
	id   string // the host's invocation id
}
