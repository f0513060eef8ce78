package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestLateHandler(t *testing.T) {
	real := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "invoked") })
	tests := map[string]struct {
		path     string
		then     func(l *Late) // after the request was sent; nil: nothing happens
		timeout  time.Duration
		wantCode int
		wantBody string
	}{
		"the readiness probe is answered before the handler is set": {
			path: "/", wantCode: http.StatusOK, wantBody: "ok\n",
		},
		"an invocation waits for the handler and then reaches it": {
			path: "/Rotate", then: func(l *Late) { l.Set(real) }, wantCode: http.StatusOK, wantBody: "invoked",
		},
		"an invocation answers 503 when the process will never be ready": {
			path: "/Rotate", then: func(l *Late) { l.Fail(errors.New("config: PATROL_KEYVAULT_URL is missing")) }, wantCode: http.StatusServiceUnavailable,
			wantBody: "handlers: not started: config: PATROL_KEYVAULT_URL is missing\n",
		},
		"an invocation whose request ends before the handler is set answers 503": {
			path: "/Rotate", timeout: 20 * time.Millisecond, wantCode: http.StatusServiceUnavailable,
			wantBody: "handlers: the request ended before the handler was ready\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := NewLate()
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			rec := httptest.NewRecorder()
			done := make(chan struct{})
			go func() {
				l.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodPost, tc.path, nil))
				close(done)
			}()
			if tc.then != nil {
				time.Sleep(10 * time.Millisecond) // let the request reach the wait
				tc.then(l)
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the request never finished")
			}
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
		})
	}
}
