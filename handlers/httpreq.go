package handlers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// HTTPRequest is the host's `Data.<req>` object for an HTTP trigger.
type HTTPRequest struct {
	URL     string
	Method  string
	Query   map[string]string // multi-values comma-joined, as the host sends them
	Headers http.Header
	Params  map[string]string // route parameters
	Body    []byte            // nil when the request had none
}

// DecodeHTTPRequest reads `Data.<req>`. Query arrives as an object (a JSON string in
// hosts before 3.0.14785), header values as arrays (or strings), Body as a string, a
// JSON value, or absent.
func DecodeHTTPRequest(raw []byte) (HTTPRequest, error) {
	const doc = "http request"
	b, err := unwrapValue(raw)
	if err != nil {
		return HTTPRequest{}, fieldErr(doc, "", "%v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return HTTPRequest{}, fieldErr(doc, "", "must be a JSON object")
	}
	top = normalizeKeys(top)
	var r HTTPRequest
	if r.URL, err = plainString(top["url"]); err != nil {
		return HTTPRequest{}, fieldErr(doc, "Url", "%v", err)
	}
	if r.Method, err = plainString(top["method"]); err != nil {
		return HTTPRequest{}, fieldErr(doc, "Method", "%v", err)
	}
	r.Method = strings.ToUpper(r.Method)
	if r.Query, err = stringMap(top["query"]); err != nil {
		return HTTPRequest{}, fieldErr(doc, "Query", "%v", err)
	}
	if r.Params, err = stringMap(top["params"]); err != nil {
		return HTTPRequest{}, fieldErr(doc, "Params", "%v", err)
	}
	if r.Headers, err = headerMap(top["headers"]); err != nil {
		return HTTPRequest{}, fieldErr(doc, "Headers", "%v", err)
	}
	if body := bytes.TrimSpace(top["body"]); len(body) > 0 && !bytes.Equal(body, []byte("null")) {
		if body[0] == '"' {
			var s string
			if err := json.Unmarshal(body, &s); err != nil {
				return HTTPRequest{}, fieldErr(doc, "Body", "not a JSON string")
			}
			if s != "" {
				r.Body = []byte(s)
			}
		} else {
			r.Body = body
		}
	}
	return r, nil
}

// stringMap reads an object of scalars, or a JSON string holding one (old hosts).
func stringMap(raw json.RawMessage) (map[string]string, error) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return map[string]string{}, nil
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, errNotObject
		}
		if strings.TrimSpace(s) == "" {
			return map[string]string{}, nil
		}
		v = []byte(s)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, errNotObject
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		s, err := metaString(val)
		if err != nil {
			var arr []string
			if json.Unmarshal(val, &arr) != nil {
				return nil, errNotObject
			}
			s = strings.Join(arr, ",")
		}
		out[k] = s
	}
	return out, nil
}

func headerMap(raw json.RawMessage) (http.Header, error) {
	h := http.Header{}
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return h, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, errNotObject
	}
	for k, val := range m {
		var arr []string
		if json.Unmarshal(val, &arr) == nil {
			for _, s := range arr {
				h.Add(k, s)
			}
			continue
		}
		s, err := metaString(val)
		if err != nil {
			return nil, errNotObject
		}
		h.Add(k, s)
	}
	return h, nil
}

var errNotObject = &FieldError{Doc: "value", Problem: "must be an object of strings"}

// param returns a route parameter: from Params, else from the top-level binding data
// the host also sends for it, else "".
func (r HTTPRequest) param(inv Invocation, name string) string {
	for k, v := range r.Params {
		if strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	s, _ := metaString(inv.meta(name))
	return strings.TrimSpace(s)
}

func (r HTTPRequest) query(name string) (string, bool) {
	for k, v := range r.Query {
		if strings.EqualFold(k, name) {
			return strings.TrimSpace(v), true
		}
	}
	if u, err := url.Parse(r.URL); err == nil {
		if vs, ok := u.Query()[name]; ok {
			return strings.TrimSpace(strings.Join(vs, ",")), true
		}
	}
	return "", false
}

// RotateNowRequest is an emergency rotation asked for over HTTP
// (POST /api/rotate/{secret}).
type RotateNowRequest struct {
	Secret string `json:"secret"`
	// OperationID is the client's `operationId` (so a retried call is the same
	// operation), or else one derived from the invocation id (rotation.DeriveOpID).
	OperationID string `json:"operationId"`
	RevokeNow   bool   `json:"revokeNow"` // revoke the replaced PAT immediately (leak)
	Reason      string `json:"reason,omitempty"`
	RequestedBy string `json:"requestedBy,omitempty"`
	// Wait is how long the caller is willing to wait for the outcome (`?wait=30s`),
	// already capped by the handler; zero: answer 202 at once.
	Wait time.Duration `json:"wait,omitempty"`
}

// StatusRequest asks for one secret's status (GET /api/status/{secret}) or, with an
// empty Secret, every managed secret's (GET /api/status).
type StatusRequest struct {
	Secret      string `json:"secret,omitempty"`
	OperationID string `json:"operationId,omitempty"` // `?operation=`: the outcome of one operation
}

// decodeRotateNow builds a RotateNowRequest; errors are bad requests.
func decodeRotateNow(inv Invocation, r HTTPRequest, invocationID string, maxWait time.Duration) (RotateNowRequest, error) {
	const doc = "rotate request"
	req := RotateNowRequest{Secret: r.param(inv, "secret")}
	if req.Secret == "" {
		return RotateNowRequest{}, fieldErr(doc, "secret", "missing from the route (POST /api/rotate/{secret})")
	}
	if err := checkSecretName(doc, "secret", req.Secret); err != nil {
		return RotateNowRequest{}, err
	}
	if len(bytes.TrimSpace(r.Body)) > 0 {
		var body struct {
			RevokeNow   *bool  `json:"revokeNow"`
			Reason      string `json:"reason"`
			RequestedBy string `json:"requestedBy"`
			OperationID string `json:"operationId"`
		}
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		// A typo such as "revoke_now" must not be silently ignored in an emergency.
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return RotateNowRequest{}, fieldErr(doc, "body", "unknown field %s (known: revokeNow, reason, requestedBy, operationId)", clip(f))
			}
			return RotateNowRequest{}, decodeJSONObject(doc, r.Body, &body)
		}
		if body.RevokeNow != nil {
			req.RevokeNow = *body.RevokeNow
		}
		req.Reason, req.RequestedBy, req.OperationID = strings.TrimSpace(body.Reason), strings.TrimSpace(body.RequestedBy), strings.TrimSpace(body.OperationID)
	}
	if v, ok := r.query("revokeNow"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return RotateNowRequest{}, fieldErr(doc, "revokeNow", "%q is not true or false", clip(v))
		}
		req.RevokeNow = req.RevokeNow || b
	}
	if len([]rune(req.Reason)) > 256 {
		return RotateNowRequest{}, fieldErr(doc, "reason", "longer than 256 characters")
	}
	if len(req.RequestedBy) > 256 {
		return RotateNowRequest{}, fieldErr(doc, "requestedBy", "longer than 256 characters")
	}
	if req.OperationID == "" && invocationID != "" {
		// Operation ids have one form, the core's (it fits the PAT's display name):
		// derived from the host's invocation id, unique per call and fixed within it.
		req.OperationID = rotation.DeriveOpID(string(rotation.TriggerManual), req.Secret, strings.ToLower(invocationID))
	}
	if err := checkOpID(doc, "operationId", req.OperationID); err != nil {
		return RotateNowRequest{}, err
	}
	if v, ok := r.query("wait"); ok && v != "" {
		d, err := parseWait(v)
		if err != nil {
			return RotateNowRequest{}, fieldErr(doc, "wait", "%q is not a duration such as 30s", clip(v))
		}
		req.Wait = min(d, maxWait)
	}
	return req, nil
}

// parseWait accepts a Go duration ("30s", "1m") or whole seconds ("30").
func parseWait(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(min(n, 3600)) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errNotObject
	}
	return d, nil
}

func decodeStatus(inv Invocation, r HTTPRequest) (StatusRequest, error) {
	const doc = "status request"
	req := StatusRequest{Secret: r.param(inv, "secret")}
	if req.Secret != "" {
		if err := checkSecretName(doc, "secret", req.Secret); err != nil {
			return StatusRequest{}, err
		}
	}
	if v, ok := r.query("operation"); ok && v != "" {
		if err := checkOpID(doc, "operation", v); err != nil {
			return StatusRequest{}, err
		}
		req.OperationID = v
	}
	return req, nil
}

// SweepTick is one firing of the Sweep timer.
type SweepTick struct {
	Now         time.Time `json:"now,omitzero"`  // the host's clock (Metadata.sys.UtcNow); zero if absent
	IsPastDue   bool      `json:"isPastDue"`     // the firing is late (the app was down)
	Last        time.Time `json:"last,omitzero"` // previous scheduled firing, when the monitor knows it
	Next        time.Time `json:"next,omitzero"`
	LastUpdated time.Time `json:"lastUpdated,omitzero"`
}

// DecodeSweepTick reads the timer trigger value (`Data.<timer>`, a TimerInfo object; its
// ScheduleStatus is null when the schedule monitor is off).
func DecodeSweepTick(raw []byte) (SweepTick, error) {
	const doc = "timer"
	b, err := unwrapValue(raw)
	if err != nil {
		return SweepTick{}, fieldErr(doc, "", "%v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return SweepTick{}, fieldErr(doc, "", "must be a JSON object")
	}
	top = normalizeKeys(top)
	var t SweepTick
	if v, err := metaString(top["ispastdue"]); err != nil {
		return SweepTick{}, fieldErr(doc, "IsPastDue", "%v", err)
	} else if v != "" {
		if t.IsPastDue, err = strconv.ParseBool(v); err != nil {
			return SweepTick{}, fieldErr(doc, "IsPastDue", "not a boolean")
		}
	}
	if st := bytes.TrimSpace(top["schedulestatus"]); len(st) > 0 && !bytes.Equal(st, []byte("null")) {
		var status map[string]json.RawMessage
		if err := json.Unmarshal(st, &status); err != nil {
			return SweepTick{}, fieldErr(doc, "ScheduleStatus", "must be an object or null")
		}
		status = normalizeKeys(status)
		for _, f := range []struct {
			key, name string
			dst       *time.Time
		}{{"last", "Last", &t.Last}, {"next", "Next", &t.Next}, {"lastupdated", "LastUpdated", &t.LastUpdated}} {
			v, err := metaTime(status[f.key])
			if err != nil {
				return SweepTick{}, fieldErr(doc, "ScheduleStatus."+f.name, "%v", err)
			}
			// .NET's DateTime.MinValue means "never".
			if v.Year() > 1 {
				*f.dst = v
			}
		}
	}
	return t, nil
}
