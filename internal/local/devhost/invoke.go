package devhost

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Result is the handler's answer to one invocation.
type Result struct {
	Function     string
	InvocationID string
	Status       int // the handler's HTTP status; 0 when it could not be reached
	Outputs      map[string]json.RawMessage
	Logs         []string
	ReturnValue  json.RawMessage
}

// InvocationError is a failed invocation: the handler was unreachable, answered
// non-2xx, or answered something that is not the invocation result JSON.
type InvocationError struct {
	Function     string
	InvocationID string
	Status       int
	Reason       string
}

func (e *InvocationError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("devhost: invoke %s (%s): handler answered %d: %s", e.Function, e.InvocationID, e.Status, e.Reason)
	}
	return fmt.Sprintf("devhost: invoke %s (%s): %s", e.Function, e.InvocationID, e.Reason)
}

// maxResultBytes bounds what devhost reads of a handler's answer.
const maxResultBytes = 32 << 20

// Invoke POSTs a raw invocation ({Data, Metadata} as given, no payload rules applied)
// to function and returns its result. A nil error means the invocation succeeded
// (2xx with a valid result body); on failure the Result still carries the status.
func (h *Host) Invoke(ctx context.Context, function string, data, metadata map[string]any) (*Result, error) {
	f, ok := h.def.Function(function)
	if !ok {
		return nil, fmt.Errorf("devhost: invoke: no function %q", function)
	}
	if data == nil {
		data = map[string]any{}
	}
	if metadata == nil {
		metadata = map[string]any{}
	}
	return h.invoke(ctx, f, uuid.NewString(), InvocationRequest{Data: data, Metadata: metadata})
}

// invoke sends one invocation, counts it and routes its logs.
func (h *Host) invoke(ctx context.Context, f Function, id string, req InvocationRequest) (*Result, error) {
	h.begin()
	res, err := h.send(ctx, f, id, req)
	if err == nil {
		if oerr := h.out.apply(ctx, f, res); oerr != nil {
			err = &InvocationError{Function: f.Name, InvocationID: id, Status: res.Status, Reason: oerr.Error()}
		}
	}
	h.end(f.Name, err == nil)
	log := h.log.With("function", f.Name, "invocationId", id)
	for _, line := range res.Logs {
		log.Info(line)
	}
	if err != nil {
		log.Warn("devhost: invocation failed", "err", err)
	} else {
		log.Debug("devhost: invocation succeeded", "status", res.Status)
	}
	return res, err
}

func (h *Host) send(ctx context.Context, f Function, id string, req InvocationRequest) (*Result, error) {
	res := &Result{Function: f.Name, InvocationID: id}
	fail := func(status int, format string, args ...any) (*Result, error) {
		res.Status = status
		return res, &InvocationError{Function: f.Name, InvocationID: id, Status: status, Reason: fmt.Sprintf(format, args...)}
	}
	p := h.workerFor(f).current()
	if p == nil || !p.ready.Load() {
		return fail(0, "no handler process ready")
	}
	body, err := req.Encode()
	if err != nil {
		return fail(0, "encode request: %v", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/%s", p.port, f.Name), bytes.NewReader(body))
	if err != nil {
		return fail(0, "%v", err)
	}
	hr.Header.Set("Content-Type", "application/json; charset=utf-8")
	hr.Header.Set("X-Azure-Functions-InvocationId", id)
	hr.Header.Set("X-Azure-Functions-HostVersion", HostVersion)
	hr.Header.Set("User-Agent", "Azure-Functions-Host/"+HostVersion)
	resp, err := h.client.Do(hr)
	if err != nil {
		// A handler that just died refuses connections a moment before devhost has
		// reaped it; wait briefly for that, so the triggers' gate is closed before the
		// caller (a receive loop) asks for the next message.
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-p.done:
		case <-t.C:
		}
		t.Stop()
		return fail(0, "%v", unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResultBytes))
	if err != nil {
		return fail(resp.StatusCode, "read answer: %v", err)
	}
	res.Status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// EnsureSuccessStatusCode: outputs and logs of a failed answer are ignored.
		return fail(resp.StatusCode, "%s", snippet(raw))
	}
	parsed, err := ParseResult(raw)
	if err != nil {
		return fail(resp.StatusCode, "%v", err)
	}
	res.Outputs, res.Logs, res.ReturnValue = parsed.Outputs, parsed.Logs, parsed.ReturnValue
	return res, nil
}

// unwrapURLError drops net/http's "Post <url>:" prefix; the function name and
// invocation id already say where.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// ParsedResult is the decoded invocation result.
type ParsedResult struct {
	Outputs     map[string]json.RawMessage
	Logs        []string
	ReturnValue json.RawMessage
}

// ParseResult decodes `{Outputs, Logs, ReturnValue}` (property names case-insensitive,
// every part optional). An empty body or anything but a JSON object is invalid, as
// the host's ReadAsAsync<HttpScriptInvocationResult> makes it.
func ParseResult(raw []byte) (ParsedResult, error) {
	var doc struct {
		Outputs     map[string]json.RawMessage `json:"Outputs"`
		Logs        []json.RawMessage          `json:"Logs"`
		ReturnValue json.RawMessage            `json:"ReturnValue"`
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ParsedResult{}, fmt.Errorf("invalid invocation result: want a JSON object {Outputs, Logs, ReturnValue}, got %s", snippet(raw))
	}
	if err := json.Unmarshal(trimmed, &doc); err != nil {
		return ParsedResult{}, fmt.Errorf("invalid invocation result: %v", err)
	}
	out := ParsedResult{Outputs: doc.Outputs, ReturnValue: doc.ReturnValue}
	if string(bytes.TrimSpace(out.ReturnValue)) == "null" {
		out.ReturnValue = nil
	}
	for _, l := range doc.Logs {
		var s string
		if err := json.Unmarshal(l, &s); err != nil {
			s = string(l) // the host logs ToString() of whatever it got
		}
		out.Logs = append(out.Logs, s)
	}
	return out, nil
}

// HTTPResponse is an http output binding's value.
type HTTPResponse struct {
	StatusCode int
	Headers    http.Header
	Body       []byte
}

// ParseHTTPOutput decodes an http output ({statusCode, status, body, headers}):
// statusCode may be a number or a string (the model type is string), body a string or
// any JSON value (serialised), header values strings or anything (serialised).
// A missing output is a 204 No Content, as the host answers when nothing was bound.
func ParseHTTPOutput(raw json.RawMessage) (HTTPResponse, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return HTTPResponse{StatusCode: http.StatusNoContent, Headers: http.Header{}}, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
		return HTTPResponse{}, errors.New("Failed while trying to Deserialize to httpOutputBindingResponse: the http output must be a JSON object")
	}
	get := func(name string) json.RawMessage {
		for k, v := range doc {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return nil
	}
	out := HTTPResponse{StatusCode: http.StatusOK, Headers: http.Header{}}
	for _, name := range []string{"statusCode", "status"} {
		v := bytes.TrimSpace(get(name))
		if len(v) == 0 || string(v) == "null" {
			continue
		}
		var n int
		var s string
		switch {
		case json.Unmarshal(v, &n) == nil:
		case json.Unmarshal(v, &s) == nil:
			if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d", &n); err != nil {
				return HTTPResponse{}, fmt.Errorf("http output %s: %q is not a status code", name, s)
			}
		default:
			return HTTPResponse{}, fmt.Errorf("http output %s: %s is not a status code", name, v)
		}
		if n < 100 || n > 999 {
			return HTTPResponse{}, fmt.Errorf("http output %s: %d is not a status code", name, n)
		}
		out.StatusCode = n
		break
	}
	if hv := get("headers"); len(hv) > 0 && string(hv) != "null" {
		var hs map[string]json.RawMessage
		if err := json.Unmarshal(hv, &hs); err != nil {
			return HTTPResponse{}, errors.New("http output headers: must be a JSON object")
		}
		for k, v := range hs {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v)
			}
			out.Headers.Set(k, s)
		}
	}
	if bv := bytes.TrimSpace(get("body")); len(bv) > 0 && string(bv) != "null" {
		var s string
		if json.Unmarshal(bv, &s) == nil {
			out.Body = []byte(s)
		} else {
			out.Body = append([]byte(nil), bv...)
			if out.Headers.Get("Content-Type") == "" {
				out.Headers.Set("Content-Type", "application/json; charset=utf-8")
			}
		}
	}
	return out, nil
}

// OutputBytes is what the host hands an output binding for a value the handler
// returned (GetBindingValue): a JSON string that is valid base64 becomes the decoded
// bytes — the gotcha of protocols.md §1.4 — any other string its UTF-8 text, and any
// other JSON value its JSON text. dataType "binary" outputs are base64-decoded
// strictly.
func OutputBytes(raw json.RawMessage, dataType string) ([]byte, error) {
	t := bytes.TrimSpace(raw)
	var s string
	if len(t) == 0 || t[0] != '"' || json.Unmarshal(t, &s) != nil {
		if dataType == "binary" {
			return nil, errors.New("binary output: want a base64 string")
		}
		return append([]byte(nil), t...), nil
	}
	if b, ok := netFromBase64(s); ok {
		return b, nil
	}
	if dataType == "binary" {
		return nil, errors.New("binary output: not valid base64")
	}
	return []byte(s), nil
}

// netFromBase64 mirrors Convert.FromBase64String: whitespace ignored, length a
// multiple of four, standard alphabet with '=' padding.
func netFromBase64(s string) ([]byte, bool) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	if len(s)%4 != 0 {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	return b, true
}

// invocationTimeout bounds trigger-driven invocations by functionTimeout (+1 min, the
// host's HttpClient timeout) when one is set.
func (h *Host) invocationContext(parent context.Context) (context.Context, context.CancelFunc) {
	if d := h.def.Host.FunctionTimeout; d > 0 {
		return context.WithTimeout(parent, d+time.Minute)
	}
	return context.WithCancel(parent)
}
