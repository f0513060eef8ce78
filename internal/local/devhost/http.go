package devhost

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/google/uuid"
)

// maxRequestBytes bounds HTTP trigger and webhook bodies (the host's default limit is
// 100 MB; patrol's requests are tiny).
const maxRequestBytes = 16 << 20

// httpRoute is one HTTP-triggered function's compiled route.
type httpRoute struct {
	fn       Function
	tmpl     routeTemplate
	methods  map[string]bool // empty = any
	auth     string
	literals int // for precedence: more literal segments first
}

func (h *Host) routes() http.Handler {
	var routes []httpRoute
	for _, f := range h.def.Functions {
		b := f.TriggerBinding()
		if b.Type != TypeHTTPTrigger {
			continue
		}
		t, _ := parseRoute(routeOf(f)) // validated by Load
		r := httpRoute{fn: f, tmpl: t, methods: map[string]bool{}, auth: b.AuthLevel}
		for _, m := range b.Methods {
			r.methods[strings.ToUpper(m)] = true
		}
		for _, s := range t.segments {
			if s.param == "" {
				r.literals++
			}
		}
		routes = append(routes, r)
	}
	// Routes with more literal segments win, as ASP.NET's precedence does.
	for i := 1; i < len(routes); i++ {
		for j := i; j > 0 && routes[j].literals > routes[j-1].literals; j-- {
			routes[j], routes[j-1] = routes[j-1], routes[j]
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		lower := strings.ToLower(path)
		switch {
		case lower == "/runtime/webhooks/eventgrid":
			h.serveEventGrid(w, r)
			return
		case strings.HasPrefix(lower, "/admin/functions/"):
			h.serveAdminInvoke(w, r, strings.TrimPrefix(path, path[:len("/admin/functions/")]))
			return
		case lower == "/admin/host/status":
			if h.keyKind(r) != AuthAdmin {
				writeError(w, http.StatusUnauthorized, "")
				return
			}
			writeJSONBody(w, http.StatusOK, map[string]any{"state": "Running", "version": HostVersion})
			return
		}
		rest, ok := h.underPrefix(path)
		if !ok {
			writeError(w, http.StatusNotFound, "")
			return
		}
		for _, rt := range routes {
			params, ok := rt.tmpl.match(rest)
			if !ok || (len(rt.methods) > 0 && !rt.methods[r.Method]) {
				continue
			}
			h.serveHTTPTrigger(w, r, rt, params)
			return
		}
		writeError(w, http.StatusNotFound, "")
	})
}

// underPrefix strips /{routePrefix} (case-insensitive) from an escaped path.
func (h *Host) underPrefix(path string) (string, bool) {
	p := h.def.Host.RoutePrefix
	if p == "" {
		return strings.TrimPrefix(path, "/"), true
	}
	pre := "/" + p
	if len(path) < len(pre) || !strings.EqualFold(path[:len(pre)], pre) {
		return "", false
	}
	rest := path[len(pre):]
	if rest != "" && rest[0] != '/' {
		return "", false
	}
	return strings.TrimPrefix(rest, "/"), true
}

// keyKind returns which key the request presents (x-functions-key header, else
// ?code=): AuthAdmin for the master key, AuthFunction for the function key, "" for
// none or an unknown one.
func (h *Host) keyKind(r *http.Request) string {
	k := r.Header.Get("x-functions-key")
	if k == "" {
		k = r.URL.Query().Get("code")
	}
	switch {
	case k == "":
		return ""
	case subtle.ConstantTimeCompare([]byte(k), []byte(h.keys.master)) == 1:
		return AuthAdmin
	case subtle.ConstantTimeCompare([]byte(k), []byte(h.keys.function)) == 1:
		return AuthFunction
	}
	return ""
}

func authorized(level, kind string) bool {
	switch level {
	case AuthAnonymous:
		return true
	case AuthFunction:
		return kind == AuthFunction || kind == AuthAdmin
	default:
		return kind == AuthAdmin
	}
}

func (h *Host) serveHTTPTrigger(w http.ResponseWriter, r *http.Request, rt httpRoute, params map[string]string) {
	kind := h.keyKind(r)
	if !authorized(rt.auth, kind) {
		writeError(w, http.StatusUnauthorized, "")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	header := r.Header.Clone()
	// devhost drops the key header so a key never reaches the handler's request logs
	// (the real host passes it through; patrol does not read it).
	header.Del("x-functions-key")
	req := HTTPTriggerRequest{URL: u.String(), Method: r.Method, Header: header, Body: body, Params: params, KeyKind: kind}
	id := uuid.NewString()
	ctx, cancel := h.invocationContext(r.Context())
	defer cancel()
	res, err := h.invoke(ctx, rt.fn, id, BuildHTTP(rt.fn, req, NewStamp(h.clk.Now())))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "")
		return
	}
	out, err := h.httpOutput(rt.fn, res)
	if err != nil {
		h.log.Warn("devhost: http output", "function", rt.fn.Name, "invocationId", id, "err", err)
		writeError(w, http.StatusInternalServerError, "")
		return
	}
	for k, vs := range out.Headers {
		w.Header()[k] = vs
	}
	w.WriteHeader(out.StatusCode)
	if r.Method != http.MethodHead && len(out.Body) > 0 {
		_, _ = w.Write(out.Body)
	}
}

// httpOutput picks the http output binding's value from a result.
func (h *Host) httpOutput(f Function, res *Result) (HTTPResponse, error) {
	for _, b := range f.Bindings {
		if b.Type != TypeHTTP || b.Direction != "out" {
			continue
		}
		if b.Name == "$return" {
			return ParseHTTPOutput(res.ReturnValue)
		}
		for k, v := range res.Outputs {
			if strings.EqualFold(k, b.Name) {
				return ParseHTTPOutput(v)
			}
		}
		return ParseHTTPOutput(nil)
	}
	return HTTPResponse{StatusCode: http.StatusNoContent, Headers: http.Header{}}, nil
}

// serveAdminInvoke is the host's admin API for running a non-HTTP function by hand
// (POST /admin/functions/{name} with the master key). devhost supports it for timers,
// which is what the portal's "Test/Run" does for them.
func (h *Host) serveAdminInvoke(w http.ResponseWriter, r *http.Request, name string) {
	if h.keyKind(r) != AuthAdmin {
		writeError(w, http.StatusUnauthorized, "")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "")
		return
	}
	name, _ = url.PathUnescape(name)
	f, ok := h.def.Function(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("cannot find function: '%s'", name))
		return
	}
	if f.TriggerBinding().Type != TypeTimerTrigger {
		writeError(w, http.StatusBadRequest, "devhost runs only timer functions through the admin API")
		return
	}
	go func() {
		if err := h.TriggerTimer(h.ctx, f.Name); err != nil {
			h.log.Warn("devhost: admin invoke", "function", f.Name, "err", err)
		}
	}()
	w.WriteHeader(http.StatusAccepted)
}

// Event Grid webhook (EventGrid extension HttpRequestProcessor).
func (h *Host) serveEventGrid(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code := q.Get("code")
	if code == "" {
		code = r.Header.Get("x-functions-key")
	}
	if subtle.ConstantTimeCompare([]byte(code), []byte(h.keys.eventGrid)) != 1 &&
		subtle.ConstantTimeCompare([]byte(code), []byte(h.keys.master)) != 1 {
		writeError(w, http.StatusUnauthorized, "")
		return
	}
	if r.Method == http.MethodOptions {
		// CloudEvents abuse-protection handshake.
		origin := r.Header.Get("WebHook-Request-Origin")
		if origin == "" {
			origin = "*"
		}
		w.Header().Set("WebHook-Allowed-Origin", origin)
		w.Header().Set("WebHook-Allowed-Rate", "*")
		w.Header().Set("Allow", "POST")
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "")
		return
	}
	name := q.Get("functionName")
	f, ok := h.def.Function(name)
	if !ok || f.TriggerBinding().Type != TypeEventGridTrigger {
		writeText(w, http.StatusNotFound, fmt.Sprintf("cannot find function: '%s'", name))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		writeText(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	events, isArray, err := splitEvents(body)
	kind := r.Header.Get("aeg-event-type")
	switch {
	case strings.EqualFold(kind, "SubscriptionValidation"):
		if err != nil {
			writeText(w, http.StatusBadRequest, err.Error())
			return
		}
		code, err := validationCode(events, isArray)
		if err != nil {
			writeText(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSONBody(w, http.StatusOK, map[string]string{"validationResponse": code})
	case strings.EqualFold(kind, "Notification"):
		if err != nil {
			writeText(w, http.StatusBadRequest, err.Error())
			return
		}
		if errs := h.deliverEvents(r, f, events); len(errs) > 0 {
			writeText(w, http.StatusInternalServerError, errs[0].Error())
			return
		}
		w.WriteHeader(http.StatusAccepted)
	case strings.EqualFold(kind, "Unsubscribe"):
		w.WriteHeader(http.StatusAccepted)
	default:
		writeText(w, http.StatusBadRequest, "Request is not a valid Event Grid request: the aeg-event-type header is missing or unknown")
	}
}

// deliverEvents invokes f once per event, in parallel like the extension.
func (h *Host) deliverEvents(r *http.Request, f Function, events []json.RawMessage) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	ctx, cancel := h.invocationContext(r.Context())
	defer cancel()
	for _, ev := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := BuildEventGrid(f, ev, NewStamp(h.clk.Now()))
			if err == nil {
				_, err = h.invoke(ctx, f, uuid.NewString(), req)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// splitEvents reads an Event Grid body: an array of events, or one event object
// (CloudEvents binary/structured single delivery).
func splitEvents(body []byte) ([]json.RawMessage, bool, error) {
	t := bytes.TrimSpace(body)
	if len(t) > 0 && t[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(t, &arr); err != nil {
			return nil, true, fmt.Errorf("event grid body: not a JSON array of events: %v", err)
		}
		for i, e := range arr {
			if e := bytes.TrimSpace(e); len(e) == 0 || e[0] != '{' {
				return nil, true, fmt.Errorf("event grid body: element %d is not an object", i)
			}
		}
		return arr, true, nil
	}
	if len(t) > 0 && t[0] == '{' && json.Valid(t) {
		return []json.RawMessage{json.RawMessage(t)}, false, nil
	}
	return nil, false, fmt.Errorf("event grid body: want a JSON array of events or one event object")
}

// validationCode finds the handshake code: [0].data.validationCode for the Event Grid
// schema; for a CloudEvent, data may be an object or a JSON string holding one.
func validationCode(events []json.RawMessage, isArray bool) (string, error) {
	if len(events) == 0 {
		return "", fmt.Errorf("subscription validation: no event in the body")
	}
	var ev struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(events[0], &ev); err != nil {
		return "", fmt.Errorf("subscription validation: %v", err)
	}
	data := bytes.TrimSpace(ev.Data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if json.Unmarshal(data, &s) == nil {
			data = []byte(s)
		}
	}
	var d struct {
		ValidationCode string `json:"validationCode"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.ValidationCode == "" {
		return "", fmt.Errorf("subscription validation: data.validationCode is missing")
	}
	return d.ValidationCode, nil
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

// writeError answers like the host: an empty body for 401/404/500 unless a message is
// worth giving.
func writeError(w http.ResponseWriter, status int, msg string) {
	if msg == "" {
		w.WriteHeader(status)
		return
	}
	writeText(w, status, msg)
}

// fillRoute substitutes params into a route template.
func fillRoute(route string, params map[string]string) (string, error) {
	t, err := parseRoute(route)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, s := range t.segments {
		if s.param == "" {
			parts = append(parts, s.literal)
			continue
		}
		v, ok := params[s.param]
		if !ok {
			if s.optional || s.hasDef || s.catchAll {
				break
			}
			return "", fmt.Errorf("route %q: parameter %q missing", route, s.param)
		}
		if s.catchAll {
			parts = append(parts, v)
		} else {
			parts = append(parts, url.PathEscape(v))
		}
	}
	return strings.Join(parts, "/"), nil
}
