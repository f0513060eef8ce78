package devhost

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestParseResult(t *testing.T) {
	cases := map[string]struct {
		raw     string
		logs    []string
		outputs []string
		ret     string
		err     string
	}{
		"a full result is read":                     {raw: `{"Outputs":{"res":{"statusCode":200}},"Logs":["a","b"],"ReturnValue":{"x":1}}`, logs: []string{"a", "b"}, outputs: []string{"res"}, ret: `{"x":1}`},
		"property names are case-insensitive":       {raw: `{"outputs":{"res":1},"logs":["a"]}`, logs: []string{"a"}, outputs: []string{"res"}},
		"every part is optional":                    {raw: `{}`},
		"a null return value is no return value":    {raw: `{"ReturnValue":null}`},
		"non-string log entries are logged as text": {raw: `{"Logs":[1,{"a":2}]}`, logs: []string{"1", `{"a":2}`}},
		"an empty body is invalid":                  {raw: ``, err: "(empty body)"},
		"plain text is invalid":                     {raw: `ok`, err: "want a JSON object"},
		"an array is invalid":                       {raw: `[]`, err: "want a JSON object"},
		"broken JSON is invalid":                    {raw: `{"Logs":[`, err: "invalid invocation result"},
		"logs of the wrong type are invalid":        {raw: `{"Logs":"a"}`, err: "invalid invocation result"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseResult([]byte(tc.raw))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.Logs) != fmt.Sprint(tc.logs) || string(got.ReturnValue) != tc.ret || len(got.Outputs) != len(tc.outputs) {
				t.Errorf("got %+v", got)
			}
			for _, o := range tc.outputs {
				if got.Outputs[o] == nil {
					t.Errorf("output %q missing", o)
				}
			}
		})
	}
}

func TestParseHTTPOutput(t *testing.T) {
	cases := map[string]struct {
		raw    string
		status int
		body   string
		ctype  string
		err    string
	}{
		"a numeric status and string body":           {raw: `{"statusCode":202,"body":"accepted","headers":{"Content-Type":"text/plain"}}`, status: 202, body: "accepted", ctype: "text/plain"},
		"a string status code is accepted":           {raw: `{"statusCode":"404","body":"{\"error\":\"x\"}"}`, status: 404, body: `{"error":"x"}`},
		"status is an alias of statusCode":           {raw: `{"status":409}`, status: 409},
		"a JSON body is serialised as JSON":          {raw: `{"body":{"ok":true}}`, status: 200, body: `{"ok":true}`, ctype: "application/json; charset=utf-8"},
		"header values that are not strings print":   {raw: `{"headers":{"Retry-After":30}}`, status: 200},
		"no output at all is 204":                    {raw: ``, status: 204},
		"a null output is 204":                       {raw: `null`, status: 204},
		"a string output is refused like the host":   {raw: `"hello"`, err: "httpOutputBindingResponse"},
		"a status code that is not a number fails":   {raw: `{"statusCode":"teapot"}`, err: "teapot"},
		"an out-of-range status code fails":          {raw: `{"statusCode":42}`, err: "42"},
		"headers that are not an object are refused": {raw: `{"headers":[1]}`, err: "headers"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseHTTPOutput(json.RawMessage(tc.raw))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.StatusCode != tc.status || string(got.Body) != tc.body || got.Headers.Get("Content-Type") != tc.ctype {
				t.Errorf("got %d %q %v", got.StatusCode, got.Body, got.Headers)
			}
		})
	}
}

func TestOutputBytesReproducesTheBase64Gotcha(t *testing.T) {
	cases := map[string]struct {
		raw, dataType string
		want          string
		err           bool
	}{
		"a string that is valid base64 becomes its decoded bytes": {raw: `"dGVzdA=="`, want: "test"},
		"a 52-character alphanumeric string is decoded too":       {raw: `"` + strings.Repeat("abcd", 13) + `"`, want: string(mustB64(strings.Repeat("abcd", 13)))},
		"whitespace inside base64 is ignored as .NET does":        {raw: `"dGVz dA=="`, want: "test"},
		"a string that is not base64 stays text":                  {raw: `"hello world"`, want: "hello world"},
		"a JSON object is passed as its JSON text":                {raw: `{"secret":"pat-1"}`, want: `{"secret":"pat-1"}`},
		"a string starting with a brace is never base64":          {raw: `"{\"a\":1}"`, want: `{"a":1}`},
		"a binary output must be base64":                          {raw: `"not base64!"`, dataType: "binary", err: true},
		"a binary output that is an object is refused":            {raw: `{}`, dataType: "binary", err: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := OutputBytes(json.RawMessage(tc.raw), tc.dataType)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.err && string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func mustB64(s string) []byte {
	b, ok := netFromBase64(s)
	if !ok {
		panic("not base64: " + s)
	}
	return b
}

func TestRouteTemplates(t *testing.T) {
	cases := map[string]struct {
		route, path string
		params      map[string]string // nil = no match
	}{
		"a literal and a parameter":              {route: "rotate/{secret}", path: "rotate/pat-1", params: map[string]string{"secret": "pat-1"}},
		"literals match case-insensitively":      {route: "rotate/{secret}", path: "ROTATE/Pat-1", params: map[string]string{"secret": "Pat-1"}},
		"a required parameter must be present":   {route: "rotate/{secret}", path: "rotate"},
		"extra segments do not match":            {route: "rotate/{secret}", path: "rotate/a/b"},
		"an optional parameter may be absent":    {route: "status/{secret?}", path: "status", params: map[string]string{}},
		"an optional parameter may be present":   {route: "status/{secret?}", path: "status/x", params: map[string]string{"secret": "x"}},
		"escaped characters are decoded":         {route: "status/{secret?}", path: "status/a%2Fb", params: map[string]string{"secret": "a/b"}},
		"a default fills an absent parameter":    {route: "list/{page=1}", path: "list", params: map[string]string{"page": "1"}},
		"a constraint is accepted":               {route: "item/{id:int}", path: "item/5", params: map[string]string{"id": "5"}},
		"a catch-all takes the rest":             {route: "files/{*path}", path: "files/a/b/c", params: map[string]string{"path": "a/b/c"}},
		"an empty route matches the bare prefix": {route: "", path: "", params: map[string]string{}},
		"a different literal does not match":     {route: "rotate/{secret}", path: "revoke/x"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tmpl, err := parseRoute(tc.route)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := tmpl.match(tc.path)
			if ok != (tc.params != nil) || (ok && fmt.Sprint(got) != fmt.Sprint(tc.params)) {
				t.Errorf("match(%q) = %v, %v; want %v", tc.path, got, ok, tc.params)
			}
		})
	}
	bad := map[string]string{
		"a parameter glued to text is refused":        "a/x{y}",
		"two parameters in one segment are refused":   "a/{x}{y}",
		"a catch-all before the end is refused":       "{*x}/a",
		"an optional parameter before a required one": "{x?}/{y}",
		"a repeated parameter is refused":             "{x}/{X}",
		"an empty segment is refused":                 "a//b",
	}
	for name, route := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := parseRoute(route); err == nil {
				t.Errorf("parseRoute(%q) succeeded", route)
			}
		})
	}
}

func TestEventGridBodies(t *testing.T) {
	cases := map[string]struct {
		body  string
		n     int
		code  string
		isErr bool
	}{
		"an array of events":                       {body: `[{"id":"1"},{"id":"2"}]`, n: 2},
		"one CloudEvent object":                    {body: `{"id":"1","data":{"validationCode":"c1"}}`, n: 1, code: "c1"},
		"a validation event in an array":           {body: `[{"data":{"validationCode":"c2"}}]`, n: 1, code: "c2"},
		"a CloudEvent with data as a JSON string":  {body: `{"data":"{\"validationCode\":\"c3\"}"}`, n: 1, code: "c3"},
		"an array holding a non-object is refused": {body: `[1]`, isErr: true},
		"a string body is refused":                 {body: `"x"`, isErr: true},
		"an empty body is refused":                 {body: ``, isErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			evs, isArray, err := splitEvents([]byte(tc.body))
			if tc.isErr {
				if err == nil {
					t.Fatal("splitEvents succeeded")
				}
				return
			}
			if err != nil || len(evs) != tc.n || isArray != strings.HasPrefix(tc.body, "[") {
				t.Fatalf("splitEvents = %d events, %v, %v", len(evs), isArray, err)
			}
			if tc.code != "" {
				if code, err := validationCode(evs, isArray); err != nil || code != tc.code {
					t.Errorf("validationCode = %q, %v", code, err)
				}
			}
		})
	}
}

func FuzzParseResult(f *testing.F) {
	f.Add([]byte(`{"Outputs":{"res":{"statusCode":"201","body":"x","headers":{"A":"b"}}},"Logs":["a"],"ReturnValue":null}`))
	f.Add([]byte(`{"Outputs":{"res":"dGVzdA=="}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := ParseResult(raw)
		if err != nil {
			return
		}
		for name, v := range res.Outputs {
			out, err := ParseHTTPOutput(v)
			if err == nil && (out.StatusCode < 100 || out.StatusCode > 999 || out.Headers == nil) {
				t.Fatalf("output %s accepted with status %d", name, out.StatusCode)
			}
			_, _ = OutputBytes(v, "")
			_, _ = OutputBytes(v, "binary")
		}
	})
}

func FuzzEventGridWebhookBody(f *testing.F) {
	f.Add([]byte(`[{"id":"1","data":{"validationCode":"c"},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent"}]`))
	f.Add([]byte(`{"specversion":"1.0","data":"{\"validationCode\":\"c\"}"}`))
	f.Add([]byte(`[]`))
	fn := Function{Name: "F", Bindings: []Binding{{Type: TypeEventGridTrigger, Direction: "in", Name: "event"}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, isArray, err := splitEvents(body)
		if err != nil {
			return
		}
		if code, err := validationCode(evs, isArray); err == nil && code == "" {
			t.Fatal("an empty validation code was accepted")
		}
		for _, ev := range evs {
			req, err := BuildEventGrid(fn, ev, goldenStamp)
			if err != nil {
				t.Fatalf("an event splitEvents accepted could not be bound: %v", err)
			}
			if _, err := req.Encode(); err != nil {
				t.Fatalf("encode: %v", err)
			}
		}
	})
}

func TestKeyKinds(t *testing.T) {
	h := &Host{keys: keys{function: "fk", master: "mk", eventGrid: "ek"}}
	cases := map[string]struct {
		header, query, want string
	}{
		"the function key in the header":           {header: "fk", want: AuthFunction},
		"the master key in the query":              {query: "mk", want: AuthAdmin},
		"the header wins over the query":           {header: "fk", query: "mk", want: AuthFunction},
		"the Event Grid system key is no HTTP key": {header: "ek", want: ""},
		"no key at all":                            {want: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "http://x/api/f?code="+tc.query, nil)
			if tc.header != "" {
				r.Header.Set("x-functions-key", tc.header)
			}
			if got := h.keyKind(r); got != tc.want {
				t.Errorf("keyKind = %q, want %q", got, tc.want)
			}
		})
	}
}
