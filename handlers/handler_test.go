package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func invoke(h http.Handler, fn string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/"+fn, bytes.NewReader(body))
	r.Header.Set(InvocationIDHeader, testInvocationID)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func staticDeps(app App, rep FailureReporter) func(context.Context) (Deps, error) {
	return func(context.Context) (Deps, error) { return Deps{App: app, Failures: rep}, nil }
}

func TestReadinessAnswersWithoutBuildingDependencies(t *testing.T) {
	h := New(Options{Deps: func(context.Context) (Deps, error) {
		t.Error("dependencies were built for the readiness probe")
		return Deps{}, errors.New("no")
	}})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusOK {
		t.Errorf("GET / = %d, want 200", w.Code)
	}
}

func TestRoutingErrors(t *testing.T) {
	h := New(Options{Deps: staticDeps(&fakeApp{}, nil)})
	cases := map[string]struct {
		method, path string
		want         int
	}{
		"an unknown function is 404 (the host then fails the invocation)": {http.MethodPost, "/Nope", http.StatusNotFound},
		"a GET to a function is 405":                                      {http.MethodGet, "/Rotate", http.StatusMethodNotAllowed},
		"a body that is not an envelope is 400":                           {http.MethodPost, "/Rotate", http.StatusBadRequest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader("[1]")))
			if w.Code != tc.want {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.path, w.Code, tc.want)
			}
			if !json.Valid(w.Body.Bytes()) {
				t.Errorf("answer is not JSON: %q", w.Body)
			}
		})
	}
}

func TestDependenciesFailingFailTheInvocationAndAreRetried(t *testing.T) {
	calls := 0
	app := &fakeApp{}
	h := New(Options{Deps: func(context.Context) (Deps, error) {
		calls++
		if calls == 1 {
			return Deps{}, errors.New("config: PATROL_KEYVAULT_URL is not set")
		}
		return Deps{App: app}, nil
	}})
	sb := mustRead(t, "testdata/Revoke/scheduled.request.json")
	if w := invoke(h, "Revoke", sb); w.Code != http.StatusInternalServerError {
		t.Errorf("first invocation = %d, want 500 while dependencies cannot be built", w.Code)
	}
	if w := invoke(h, "Revoke", sb); w.Code != http.StatusOK {
		t.Errorf("second invocation = %d, want 200 once dependencies build", w.Code)
	}
	invoke(h, "Revoke", sb)
	if calls != 2 {
		t.Errorf("dependencies built %d times, want 2 (retried after failure, then kept)", calls)
	}
}

func TestHTTPTriggerAnswersUnavailableWhenDependenciesFail(t *testing.T) {
	h := New(Options{Deps: func(context.Context) (Deps, error) { return Deps{}, errors.New("no config") }})
	w := invoke(h, "SecretStatus", mustRead(t, "testdata/SecretStatus/one-secret.request.json"))
	res := decodeResponse(t, w)
	if w.Code != http.StatusOK || res.status() != http.StatusServiceUnavailable {
		t.Errorf("host status %d, res status %d; want 200 carrying a 503", w.Code, res.status())
	}
}

type hostResponse struct {
	Outputs map[string]json.RawMessage
	Logs    []string
}

func (r hostResponse) status() int {
	var res struct{ StatusCode int }
	_ = json.Unmarshal(r.Outputs["res"], &res)
	return res.StatusCode
}

func decodeResponse(t *testing.T, w *httptest.ResponseRecorder) hostResponse {
	t.Helper()
	var r hostResponse
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatalf("answer is not the host's response shape: %v", err)
	}
	return r
}

// ctxApp hands each call's context to a function.
type ctxApp struct {
	fakeApp
	onRotate func(ctx context.Context) error
}

func (a *ctxApp) Rotate(ctx context.Context, c contract.RotationCommand) error {
	return a.onRotate(ctx)
}

func TestEveryInvocationHasADeadlineBelowTheFunctionTimeout(t *testing.T) {
	var deadline time.Time
	var hasDeadline bool
	app := &ctxApp{onRotate: func(ctx context.Context) error {
		deadline, hasDeadline = ctx.Deadline()
		return nil
	}}
	h := New(Options{Deps: staticDeps(app, nil), InvocationTimeout: 3 * time.Minute})
	before := time.Now()
	invoke(h, "Rotate", mustRead(t, "testdata/Rotate/session.request.json"))
	if !hasDeadline {
		t.Fatal("the App's context has no deadline")
	}
	if deadline.After(before.Add(3*time.Minute+time.Second)) || deadline.Before(before.Add(2*time.Minute)) {
		t.Errorf("deadline %v is not about 3 minutes after %v", deadline, before)
	}
	if DefaultInvocationTimeout >= 10*time.Minute {
		t.Errorf("DefaultInvocationTimeout %v is not below host.json's functionTimeout", DefaultInvocationTimeout)
	}
}

func TestAnAppPastItsDeadlineIsRetriedNotDeadLettered(t *testing.T) {
	app := &ctxApp{onRotate: func(ctx context.Context) error {
		<-ctx.Done() // the deadline is 1 ns: already passed
		return ctx.Err()
	}}
	rep := &fakeReporter{}
	h := New(Options{Deps: staticDeps(app, rep), InvocationTimeout: time.Nanosecond})
	w := invoke(h, "Rotate", mustRead(t, "testdata/Rotate/session.request.json"))
	if w.Code != http.StatusInternalServerError || len(rep.calls) != 0 {
		t.Errorf("status %d, %d failures reported; want 500 and none", w.Code, len(rep.calls))
	}
}

func TestAPanickingAppFailsTheInvocation(t *testing.T) {
	app := &ctxApp{onRotate: func(context.Context) error { panic("bug") }}
	h := New(Options{Deps: staticDeps(app, nil)})
	if w := invoke(h, "Rotate", mustRead(t, "testdata/Rotate/session.request.json")); w.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", w.Code)
	}
}

// patrol never settles a message (the host owns the lock) and never acknowledges one it
// gave up on: the invocation fails every time, so the host abandons it and Service Bus
// dead-letters it after MaxDeliveryCount, whether or not the report could be published.
func TestARejectedMessageIsNeverAcknowledged(t *testing.T) {
	bad := mustRead(t, "testdata/Offboarding/malformed.request.json")
	mismatch := mustRead(t, "testdata/Rotate/session-mismatch.request.json")
	cases := map[string]struct {
		body []byte
		deps Deps
	}{
		"a malformed HR message, reported":                 {body: bad, deps: Deps{App: &fakeApp{}, Failures: &fakeReporter{}}},
		"a rotation command for another session, reported": {body: mismatch, deps: Deps{App: &fakeApp{}, Failures: &fakeReporter{}}},
		"no FailureReporter configured":                    {body: bad, deps: Deps{App: &fakeApp{}}},
		"the FailureReporter fails": {body: mismatch,
			deps: Deps{App: &fakeApp{}, Failures: &fakeReporter{err: errors.New("servicebus: send: 503")}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := tc.deps
			h := New(Options{Deps: func(context.Context) (Deps, error) { return d, nil }})
			fn := "Offboarding"
			if bytes.Contains(tc.body, []byte(`"SessionId"`)) {
				fn = "Rotate"
			}
			if w := invoke(h, fn, tc.body); w.Code < 300 {
				t.Errorf("status %d: a message patrol gave up on was acknowledged", w.Code)
			}
		})
	}
}

// A failure the app recorded itself (its own failed outcome) is not recorded twice:
// the handler only logs it, and still fails the message.
func TestAFailureTheAppRecordedIsNotReportedAgain(t *testing.T) {
	rep := &fakeReporter{}
	app := &fakeApp{err: fmt.Errorf("revocation refused: not on record: %w (%w)", ErrPermanent, ErrRecorded)}
	h := New(Options{Deps: staticDeps(app, rep)})
	if w := invoke(h, "Revoke", mustRead(t, "testdata/Revoke/scheduled.request.json")); w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", w.Code)
	}
	if len(rep.calls) != 0 {
		t.Errorf("failures reported: %+v, want none (the app published its own)", rep.calls)
	}
}

// The reason is recorded once: at the first delivery, not at each of the
// MaxDeliveryCount redeliveries before Service Bus dead-letters the message.
func TestARejectedMessageIsReportedOnlyAtItsFirstDelivery(t *testing.T) {
	first := mustRead(t, "testdata/Offboarding/malformed.request.json")
	again := bytes.Replace(first, []byte(`"DeliveryCount": "1"`), []byte(`"DeliveryCount": "2"`), 1)
	if bytes.Equal(first, again) {
		t.Fatal("the fixture's DeliveryCount was not found")
	}
	rep := &fakeReporter{}
	h := New(Options{Deps: staticDeps(&fakeApp{}, rep)})
	for _, body := range [][]byte{first, again, again} {
		if w := invoke(h, "Offboarding", body); w.Code != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500", w.Code)
		}
	}
	if len(rep.calls) != 1 || rep.calls[0].MessageID != "9c1d2e3f-hr-0043" || rep.calls[0].Reason != contract.DeadLetterMalformed {
		t.Errorf("failures reported: %+v, want one for message 9c1d2e3f-hr-0043 (malformed)", rep.calls)
	}
}

func TestWaitIsCappedAndParsed(t *testing.T) {
	cases := map[string]struct {
		query   string
		want    time.Duration
		wantErr bool
	}{
		"a Go duration":                        {query: "30s", want: 30 * time.Second},
		"whole seconds":                        {query: "45", want: 45 * time.Second},
		"more than MaxWait is capped":          {query: "1h", want: time.Minute},
		"a negative duration is a bad request": {query: "-5s", wantErr: true},
		"prose is a bad request":               {query: "soon", wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := HTTPRequest{Params: map[string]string{"secret": "s"}, Query: map[string]string{"wait": tc.query}}
			got, err := decodeRotateNow(Invocation{}, r, "inv", time.Minute)
			if (err != nil) != tc.wantErr || got.Wait != tc.want {
				t.Errorf("wait=%s → %v, %v; want %v, error %v", tc.query, got.Wait, err, tc.want, tc.wantErr)
			}
		})
	}
}

// recordingHandler keeps every slog record's attributes.
type recordingHandler struct {
	mu      *sync.Mutex
	records *[]map[string]string
	attrs   []slog.Attr
}

func newRecordingHandler() recordingHandler {
	return recordingHandler{mu: &sync.Mutex{}, records: &[]map[string]string{}}
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	*h.records = append(*h.records, m)
	h.mu.Unlock()
	return nil
}
func (h recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return h
}
func (h recordingHandler) WithGroup(string) slog.Handler { return h }

func TestEveryLogRecordCarriesTheInvocationID(t *testing.T) {
	rec := newRecordingHandler()
	logger := slog.New(LogHandler(rec))
	app := &ctxApp{onRotate: func(ctx context.Context) error {
		logger.InfoContext(ctx, "rotation step", slog.String("step", "create"))
		if got := InvocationID(ctx); got != testInvocationID {
			t.Errorf("InvocationID(ctx) = %q", got)
		}
		return nil
	}}
	h := New(Options{Deps: staticDeps(app, nil), Logger: logger})
	invoke(h, "Rotate", mustRead(t, "testdata/Rotate/session.request.json"))
	if len(*rec.records) < 2 {
		t.Fatalf("got %d records, want the App's and the handler's", len(*rec.records))
	}
	for _, r := range *rec.records {
		if r["invocationId"] != testInvocationID {
			t.Errorf("record %v lacks invocationId", r)
		}
	}
}

func TestServeAnswersReadinessAndDrainsOnShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	app := &ctxApp{onRotate: func(context.Context) error {
		close(entered)
		<-release
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, ln, New(Options{Deps: staticDeps(app, nil)})) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readiness = %d", resp.StatusCode)
	}

	inflight := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/Rotate", "application/json", bytes.NewReader(mustRead(t, "testdata/Rotate/session.request.json")))
		if err != nil {
			inflight <- -1
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while an invocation was in flight", err)
	default:
	}
	close(release)
	if code := <-inflight; code != http.StatusOK {
		t.Errorf("in-flight invocation = %d, want 200 (drained, not cut)", code)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after a clean drain", err)
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

func TestListenAddr(t *testing.T) {
	cases := map[string]struct {
		env     map[string]string
		want    string
		wantErr bool
	}{
		"the custom handler port on loopback":     {env: map[string]string{EnvPort: "7071"}, want: "127.0.0.1:7071"},
		"the legacy variable as a fallback":       {env: map[string]string{EnvLegacyPort: "7072"}, want: "127.0.0.1:7072"},
		"the new variable wins over the legacy":   {env: map[string]string{EnvPort: "1", EnvLegacyPort: "2"}, want: "127.0.0.1:1"},
		"no port is an error naming the variable": {env: map[string]string{}, wantErr: true},
		"a port that is not a number is an error": {env: map[string]string{EnvPort: "http"}, wantErr: true},
		"a port out of range is an error":         {env: map[string]string{EnvPort: "70000"}, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ListenAddr(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ListenAddr = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "PORT") {
				t.Errorf("error %q does not name the variable", err)
			}
		})
	}
}
