package handlers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/patrol-dev/patrol/internal/contract"
)

// HTTPRequest is the host's `Data.<req>` object for an HTTP trigger.
type HTTPRequest struct {
	URL     string
	Method  string
	Query   map[string]string // multi-values comma-joined, as the host sends them
	Headers http.Header
	Params  map[string]string // route parameters
	Body    []byte            // nil when the request had none
	// Identities are the request's ClaimsIdentities as the host saw them (function
	// key name, Easy Auth principal); see Requester.
	Identities []ClaimsIdentity
}

// DecodeHTTPRequest reads `Data.<req>`. Query arrives as an object (a JSON string in
// hosts before 3.0.14785), header values as arrays (or strings), Body as a string, a
// JSON value, or absent.
func DecodeHTTPRequest(raw []byte) (HTTPRequest, error) {
	const doc = "http request"
	b, err := unwrapValue(raw)
	if err != nil {
		return HTTPRequest{}, contract.Malformed(doc, "", "%v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return HTTPRequest{}, contract.Malformed(doc, "", "must be a JSON object")
	}
	top = normalizeKeys(top)
	var r HTTPRequest
	if r.URL, err = plainString(top["url"]); err != nil {
		return HTTPRequest{}, contract.Malformed(doc, "Url", "%v", err)
	}
	if r.Method, err = plainString(top["method"]); err != nil {
		return HTTPRequest{}, contract.Malformed(doc, "Method", "%v", err)
	}
	r.Method = strings.ToUpper(r.Method)
	if r.Query, err = stringMap(top["query"]); err != nil {
		return HTTPRequest{}, contract.Malformed(doc, "Query", "%v", err)
	}
	if r.Params, err = stringMap(top["params"]); err != nil {
		return HTTPRequest{}, contract.Malformed(doc, "Params", "%v", err)
	}
	if r.Headers, err = headerMap(top["headers"]); err != nil {
		return HTTPRequest{}, contract.Malformed(doc, "Headers", "%v", err)
	}
	r.Identities = decodeIdentities(top["identities"])
	if body := bytes.TrimSpace(top["body"]); len(body) > 0 && !bytes.Equal(body, []byte("null")) {
		if body[0] == '"' {
			var s string
			if err := json.Unmarshal(body, &s); err != nil {
				return HTTPRequest{}, contract.Malformed(doc, "Body", "not a JSON string")
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

var errNotObject = &contract.FieldError{Doc: "value", Problem: "must be an object of strings"}

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
