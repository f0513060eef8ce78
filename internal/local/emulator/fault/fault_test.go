package fault

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestTake(t *testing.T) {
	tests := map[string]struct {
		rules map[string]Fault
		op    string
		calls int
		want  []bool // whether each call got a fault
	}{
		"an operation without a rule gets no fault": {
			rules: map[string]Fault{"GetSecret": {Status: 500}}, op: "SetSecret", calls: 1, want: []bool{false},
		},
		"a rule limited to two uses applies twice, then never": {
			rules: map[string]Fault{"SetSecret": {Status: 503, Times: 2}}, op: "SetSecret", calls: 3, want: []bool{true, true, false},
		},
		"an unlimited rule applies every time": {
			rules: map[string]Fault{"SetSecret": {Status: 503}}, op: "SetSecret", calls: 3, want: []bool{true, true, true},
		},
		"the wildcard applies to any operation": {
			rules: map[string]Fault{"*": {Latency: time.Millisecond, Times: 1}}, op: "CreatePat", calls: 2, want: []bool{true, false},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := New()
			for op, f := range tc.rules {
				in.Set(op, f)
			}
			for i := 0; i < tc.calls; i++ {
				if _, got := in.Take(tc.op); got != tc.want[i] {
					t.Fatalf("call %d: got fault = %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestExactRuleWinsOverWildcard(t *testing.T) {
	in := New()
	in.Set("*", Fault{Status: 500})
	in.Set("GetSecret", Fault{Status: 429})
	f, _ := in.Take("GetSecret")
	if f.Status != 429 {
		t.Fatalf("status = %d, want the exact rule's 429", f.Status)
	}
}

func TestApplyWritesStatusWithRetryAfter(t *testing.T) {
	in := New()
	in.Set("CreatePat", Fault{Status: 429, RetryAfter: 1500 * time.Millisecond})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	done := in.Apply(rec, req, "CreatePat", func(w http.ResponseWriter, status int) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"message":"TF400733"}`))
	})
	if !done || rec.Code != 429 || rec.Header().Get("Retry-After") != "2" || !strings.Contains(rec.Body.String(), "TF400733") {
		t.Fatalf("done=%v code=%d retry-after=%q body=%q", done, rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	}
}

func TestApplyDropsTheConnection(t *testing.T) {
	in := New()
	in.Set("GetSecret", Fault{Drop: true})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in.Apply(w, r, "GetSecret", nil) {
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a dropped connection", resp.StatusCode)
	}
}

func TestServeHTTPInstallsAndRejectsRules(t *testing.T) {
	in := New()
	rec := httptest.NewRecorder()
	in.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/SetSecret", strings.NewReader(`{"status":503,"latency":"10ms","times":1}`)))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("PUT valid rule: %d %s", rec.Code, rec.Body)
	}
	if f, ok := in.Take("SetSecret"); !ok || f.Status != 503 || f.Latency != 10*time.Millisecond {
		t.Fatalf("installed rule = %+v, %v", f, ok)
	}
	rec = httptest.NewRecorder()
	in.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/SetSecret", strings.NewReader(`{"status":1000}`)))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "SetSecret") {
		t.Fatalf("PUT invalid rule: %d %s", rec.Code, rec.Body)
	}
}

func FuzzFaultJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"status":429,"retryAfter":"2s"}`, `{"latency":1000000}`, `{"times":-1}`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var x Fault
		if err := x.UnmarshalJSON([]byte(s)); err == nil && (x.Times < 0 || (x.Status != 0 && (x.Status < 100 || x.Status > 599))) {
			t.Fatalf("accepted invalid rule %+v from %q", x, s)
		}
	})
}
