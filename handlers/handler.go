package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
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
	// settleTimeout bounds dead-lettering and failure reporting after the App gave up,
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
		h.writeJSON(w, &response{status: http.StatusNotFound, Logs: []string{fmt.Sprintf("no function named %q", clip(name))}})
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
	switch fn.Trigger {
	case BindingServiceBusTrigger:
		return h.serviceBus(ctx, log, fn, deps, inv)
	case BindingEventGridTrigger:
		return h.eventGrid(ctx, log, fn, deps, inv)
	case BindingTimerTrigger:
		return h.timer(ctx, log, fn, deps, inv)
	default:
		return h.httpTrigger(ctx, log, fn, deps, inv, id)
	}
}

// serviceBus handles one message: decode, call the App, and settle the outcome the
// host cannot express (dead-letter) before acknowledging.
func (h *Handler) serviceBus(ctx context.Context, log *slog.Logger, fn Function, deps Deps, inv Invocation) *response {
	mi, err := DecodeMessageInfo(inv)
	if err != nil {
		// The lock token cannot be trusted, so the message cannot be dead-lettered here.
		log.ErrorContext(ctx, "decode message metadata", slog.Any("error", err))
		return &response{status: http.StatusInternalServerError, Logs: []string{err.Error()}}
	}
	log = log.With(slog.String("messageId", mi.MessageID), slog.Int("deliveryCount", mi.DeliveryCount))
	if mi.SessionID != "" {
		log = log.With(slog.String("sessionId", mi.SessionID))
	}
	var secret, op string
	call, err := func() (func() error, error) {
		body, err := inv.messageBody(fn.Binding)
		if err != nil {
			return nil, err
		}
		switch fn.Name {
		case "Offboarding":
			m, err := DecodeOffboardingMessage(body)
			m.Message = mi
			return func() error { return deps.App.Offboard(ctx, m) }, err
		case "Rotate":
			c, err := DecodeRotationCommand(body)
			if err != nil {
				return nil, err
			}
			secret, op = c.Secret, c.OperationID
			// Session id = secret name is what serialises rotations of one secret; a
			// command in another secret's session would run concurrently with that
			// secret's own commands. A missing SessionId cannot be checked (the host
			// omits null metadata); it is logged, not fatal.
			switch {
			case fn.Sessions && mi.SessionID == "":
				log.WarnContext(ctx, "rotation command without SessionId; cannot check serialisation")
			case fn.Sessions && mi.SessionID != c.Secret:
				return nil, fieldErr("rotation command", "secret", "%q does not match the message's SessionId %q", clip(c.Secret), clip(mi.SessionID))
			}
			c.Message = mi
			return func() error { return deps.App.Rotate(ctx, c) }, nil
		default: // Revoke
			c, err := DecodeRevocationCommand(body)
			if err != nil {
				return nil, err
			}
			secret, op = c.Secret, c.OperationID
			c.Message = mi
			return func() error { return deps.App.Revoke(ctx, c) }, nil
		}
	}()
	if err != nil {
		log.WarnContext(ctx, "malformed message", slog.Any("error", err))
		return h.reject(ctx, log, fn, deps, mi, secret, op, DeadLetterMalformed, err)
	}
	if err := call(); err != nil {
		class := h.opts.Classify(err)
		switch class {
		case Transient, Conflict:
			log.WarnContext(ctx, "message will be retried", slog.String("class", class.String()), slog.Any("error", err))
			return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("retry: %v", err)}}
		default:
			log.ErrorContext(ctx, "message rejected", slog.String("class", class.String()), slog.Any("error", err))
			return h.reject(ctx, log, fn, deps, mi, secret, op, DeadLetterRejected, err)
		}
	}
	log.InfoContext(ctx, "message handled")
	return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("%s: handled message %s", fn.Name, mi.MessageID)}}
}

// reject gives up on a message without losing it: dead-letter it by lock token, or, on
// a session queue (where only the host's session receiver could settle it), publish a
// failed outcome naming the reason. Only then is the invocation acknowledged; if that
// step fails the invocation fails, so the message comes back.
func (h *Handler) reject(ctx context.Context, log *slog.Logger, fn Function, deps Deps, mi MessageInfo, secret, op, reason string, cause error) *response {
	description := clipDescription(cause.Error())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if fn.Sessions || mi.SessionID != "" {
		if deps.Failures == nil {
			log.ErrorContext(ctx, "cannot report failure: no FailureReporter")
			return &response{status: http.StatusInternalServerError, Logs: []string{"cannot report failure: no FailureReporter"}}
		}
		f := Failure{Function: fn.Name, Queue: fn.Queue, MessageID: mi.MessageID, SessionID: mi.SessionID,
			Secret: secret, OperationID: op, Reason: reason, Description: description}
		if err := deps.Failures.ReportFailure(sctx, f); err != nil {
			log.ErrorContext(ctx, "report failure", slog.Any("error", err))
			return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("report failure: %v", err)}}
		}
		log.WarnContext(ctx, "message completed after reporting failure", slog.String("reason", reason))
		return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("%s: gave up on message %s (%s): %s; failed outcome published", fn.Name, mi.MessageID, reason, description)}}
	}
	switch {
	case deps.DeadLetterer == nil:
		log.ErrorContext(ctx, "cannot dead-letter: no DeadLetterer")
		return &response{status: http.StatusInternalServerError, Logs: []string{"cannot dead-letter: no DeadLetterer"}}
	case mi.LockToken == "":
		log.ErrorContext(ctx, "cannot dead-letter: no LockToken in metadata")
		return &response{status: http.StatusInternalServerError, Logs: []string{"cannot dead-letter: no LockToken in metadata"}}
	}
	if err := deps.DeadLetterer.DeadLetter(sctx, fn.Queue, mi.LockToken, reason, description); err != nil {
		log.ErrorContext(ctx, "dead-letter", slog.Any("error", err))
		return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("dead-letter: %v", err)}}
	}
	log.WarnContext(ctx, "message dead-lettered", slog.String("reason", reason))
	return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("%s: dead-lettered message %s (%s): %s", fn.Name, mi.MessageID, reason, description)}}
}

// clipDescription keeps a dead-letter description within what Service Bus stores
// comfortably (it travels as an application property).
func clipDescription(s string) string {
	const limit = 1024
	if len(s) <= limit {
		return s
	}
	return s[:limit-3] + "..."
}

// eventGrid handles one Key Vault event. Event Grid cannot be told "dead-letter this"
// by a function, so a permanently bad event is acknowledged with a logged reason rather
// than redelivered for a day.
func (h *Handler) eventGrid(ctx context.Context, log *slog.Logger, fn Function, deps Deps, inv Invocation) *response {
	raw, ok := inv.binding(fn.Binding)
	if !ok {
		err := fieldErr("invocation", "Data."+fn.Binding, "missing")
		log.ErrorContext(ctx, "event ignored", slog.Any("error", err))
		return &response{status: http.StatusOK, Logs: []string{"ignored event: " + err.Error()}}
	}
	ev, err := DecodeKeyVaultEvent(raw)
	if err != nil {
		log.WarnContext(ctx, "event ignored", slog.Any("error", err))
		return &response{status: http.StatusOK, Logs: []string{"ignored event: " + err.Error()}}
	}
	log = log.With(slog.String("eventId", ev.ID), slog.String("secret", ev.Secret), slog.String("version", ev.Version))
	if err := deps.App.KeyVaultEvent(ctx, ev); err != nil {
		class := h.opts.Classify(err)
		if class == Transient || class == Conflict {
			log.WarnContext(ctx, "event will be redelivered", slog.String("class", class.String()), slog.Any("error", err))
			return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("retry: %v", err)}}
		}
		log.ErrorContext(ctx, "event rejected", slog.String("class", class.String()), slog.Any("error", err))
		return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("rejected event %s: %v", ev.ID, err)}}
	}
	log.InfoContext(ctx, "event handled", slog.String("type", ev.Type))
	return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("%s: handled %s for %s/%s", fn.Name, ev.Type, ev.Secret, ev.Version)}}
}

// timer handles a Sweep firing. Failures fail the invocation so they show as failed
// runs; the next firing sweeps again.
func (h *Handler) timer(ctx context.Context, log *slog.Logger, fn Function, deps Deps, inv Invocation) *response {
	raw, _ := inv.binding(fn.Binding)
	tick, err := DecodeSweepTick(raw)
	if err != nil {
		log.ErrorContext(ctx, "decode timer", slog.Any("error", err))
		return &response{status: http.StatusInternalServerError, Logs: []string{err.Error()}}
	}
	tick.Now = inv.sysNow()
	if err := deps.App.Sweep(ctx, tick); err != nil {
		log.ErrorContext(ctx, "sweep", slog.Any("error", err))
		return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("sweep: %v", err)}}
	}
	log.InfoContext(ctx, "sweep done", slog.Bool("pastDue", tick.IsPastDue))
	return &response{status: http.StatusOK, Logs: []string{"Sweep: done"}}
}

// httpReply is an HTTP output binding value. It is always an object: a bare string
// output is base64-decoded by the host if it happens to be valid base64.
type httpReply struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

func jsonReply(status int, v any) httpReply {
	b, err := json.Marshal(v)
	if err != nil {
		return errorReply(http.StatusInternalServerError, "Internal", "encode reply")
	}
	return httpReply{StatusCode: status, Body: string(b), Headers: map[string]string{"Content-Type": "application/json; charset=utf-8"}}
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func errorReply(status int, code, message string) httpReply {
	var e apiError
	e.Error.Code, e.Error.Message = code, message
	return jsonReply(status, e)
}

func httpResult(fn Function, reply httpReply) *response {
	return &response{status: http.StatusOK, Outputs: map[string]any{fn.Output: reply},
		Logs: []string{fmt.Sprintf("%s: %d", fn.Name, reply.StatusCode)}}
}

// appErrorReply maps a classified App error to its HTTP answer.
func (h *Handler) appErrorReply(err error) httpReply {
	switch h.opts.Classify(err) {
	case BadRequest:
		return errorReply(http.StatusBadRequest, "BadRequest", err.Error())
	case NotFound:
		return errorReply(http.StatusNotFound, "NotFound", err.Error())
	case Conflict:
		return errorReply(http.StatusConflict, "Conflict", err.Error())
	case Permanent:
		return errorReply(http.StatusUnprocessableEntity, "Unprocessable", err.Error())
	default:
		r := errorReply(http.StatusServiceUnavailable, "Unavailable", err.Error())
		r.Headers["Retry-After"] = "5"
		return r
	}
}

// httpTrigger answers RotateNow and SecretStatus. The host always gets a 2xx with the
// reply in the `res` output, so callers see our status and error body, not the host's
// bare 500.
func (h *Handler) httpTrigger(ctx context.Context, log *slog.Logger, fn Function, deps Deps, inv Invocation, id string) *response {
	raw, ok := inv.binding(fn.Binding)
	if !ok {
		return httpResult(fn, errorReply(http.StatusBadRequest, "BadRequest", "invocation: Data."+fn.Binding+": missing"))
	}
	req, err := DecodeHTTPRequest(raw)
	if err != nil {
		log.WarnContext(ctx, "bad request", slog.Any("error", err))
		return httpResult(fn, errorReply(http.StatusBadRequest, "BadRequest", err.Error()))
	}
	switch fn.Name {
	case "RotateNow":
		rn, err := decodeRotateNow(inv, req, id, h.opts.MaxWait)
		if err != nil {
			log.WarnContext(ctx, "bad request", slog.Any("error", err))
			return httpResult(fn, errorReply(http.StatusBadRequest, "BadRequest", err.Error()))
		}
		log = log.With(slog.String("secret", rn.Secret), slog.String("operationId", rn.OperationID))
		result, err := deps.App.RotateNow(ctx, rn)
		if err != nil {
			log.WarnContext(ctx, "rotate now", slog.Any("error", err))
			return httpResult(fn, h.appErrorReply(err))
		}
		if result.OperationID == "" {
			result.OperationID = rn.OperationID
		}
		statusURL := "/api/status/" + url.PathEscape(rn.Secret) + "?operation=" + url.QueryEscape(result.OperationID)
		body := struct {
			OperationID string   `json:"operationId"`
			Secret      string   `json:"secret"`
			Status      string   `json:"status"`
			StatusURL   string   `json:"statusUrl"`
			Outcome     *Outcome `json:"outcome,omitempty"`
		}{OperationID: result.OperationID, Secret: rn.Secret, Status: "accepted", StatusURL: statusURL, Outcome: result.Outcome}
		if result.Outcome == nil {
			reply := jsonReply(http.StatusAccepted, body)
			reply.Headers["Location"] = statusURL
			log.InfoContext(ctx, "rotation accepted")
			return httpResult(fn, reply)
		}
		body.Status = "completed"
		log.InfoContext(ctx, "rotation completed", slog.String("outcome", result.Outcome.Kind))
		return httpResult(fn, jsonReply(http.StatusOK, body))
	default: // SecretStatus
		sr, err := decodeStatus(inv, req)
		if err != nil {
			return httpResult(fn, errorReply(http.StatusBadRequest, "BadRequest", err.Error()))
		}
		st, err := deps.App.Status(ctx, sr)
		if err != nil {
			log.WarnContext(ctx, "status", slog.Any("error", err))
			return httpResult(fn, h.appErrorReply(err))
		}
		if st.Secrets == nil {
			st.Secrets = []SecretStatus{}
		}
		return httpResult(fn, jsonReply(http.StatusOK, st))
	}
}
