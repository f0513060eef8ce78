package keyvault

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

const day = 24 * time.Hour

// eventTypes lists the types of the events raised so far, for one subject.
func eventTypes(kv *Emulator, subject string) []string {
	var out []string
	for _, ev := range kv.Events() {
		if ev.Subject == subject {
			out = append(out, strings.TrimPrefix(ev.Type, "Microsoft.KeyVault."))
		}
	}
	return out
}

func TestExpiryEventsFollowTheClock(t *testing.T) {
	exp := testStart.Add(40 * day)
	tests := []struct {
		name  string
		steps func(env *testEnv) // after the first version was created with exp
		want  string
	}{
		{name: "nothing but the new version is raised before exp minus 30 days",
			steps: func(env *testEnv) { env.clk.Advance(10*day - time.Second) },
			want:  "SecretNewVersionCreated"},
		{name: "near expiry is raised at exp minus 30 days",
			steps: func(env *testEnv) { env.clk.Advance(10 * day) },
			want:  "SecretNewVersionCreated SecretNearExpiry"},
		{name: "near expiry is raised once however far the clock moves, and expired at exp",
			steps: func(env *testEnv) { env.clk.Advance(20 * day); env.clk.Advance(100 * day) },
			want:  "SecretNewVersionCreated SecretNearExpiry SecretExpired"},
		{name: "a newer version silences the older one's expiry events",
			steps: func(env *testEnv) {
				env.put("s", NewSecret{Value: "2", Expires: ptr(testStart.Add(100 * day))})
				env.clk.Advance(60 * day)
			},
			want: "SecretNewVersionCreated SecretNewVersionCreated"},
		{name: "moving exp with an update moves the events",
			steps: func(env *testEnv) {
				newExp := testStart.Add(80 * day)
				if _, err := env.client("alpha", env.cred(officerOID), nil).UpdateSecretProperties(context.Background(), "s", "",
					azsecrets.UpdateSecretPropertiesParameters{SecretAttributes: &azsecrets.SecretAttributes{Expires: &newExp}}, nil); err != nil {
					env.t.Fatal(err)
				}
				env.clk.Advance(49 * day)
				if got := eventTypes(env.kv, "s"); len(got) != 1 {
					env.t.Fatalf("events at day 49 after moving exp to day 80: %v", got)
				}
				env.clk.Advance(day)
			},
			want: "SecretNewVersionCreated SecretNearExpiry"},
		{name: "a deleted secret raises no expiry events",
			steps: func(env *testEnv) {
				if _, err := env.client("alpha", env.cred(officerOID), nil).DeleteSecret(context.Background(), "s", nil); err != nil {
					env.t.Fatal(err)
				}
				env.clk.Advance(60 * day)
			},
			want: "SecretNewVersionCreated"},
		{name: "a recovered secret raises the events that came due while it was deleted",
			steps: func(env *testEnv) {
				c := env.client("alpha", env.cred(officerOID), nil)
				if _, err := c.DeleteSecret(context.Background(), "s", nil); err != nil {
					env.t.Fatal(err)
				}
				env.clk.Advance(15 * day)
				if _, err := c.RecoverDeletedSecret(context.Background(), "s", nil); err != nil {
					env.t.Fatal(err)
				}
			},
			want: "SecretNewVersionCreated SecretNearExpiry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, nil)
			env.put("s", NewSecret{Value: "1", Expires: &exp})
			tc.steps(env)
			if got := strings.Join(eventTypes(env.kv, "s"), " "); got != tc.want {
				t.Fatalf("events = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAVersionExpiringWithinThirtyDaysIsNearExpiryAtOnce(t *testing.T) {
	env := newEnv(t, nil)
	env.put("soon", NewSecret{Value: "x", Expires: ptr(testStart.Add(5 * day))})
	if got := strings.Join(eventTypes(env.kv, "soon"), " "); got != "SecretNewVersionCreated SecretNearExpiry" {
		t.Fatalf("events = %q", got)
	}
	vs, _ := env.kv.Versions("alpha", "soon")
	if !vs[0].NearExpiryRaised || vs[0].ExpiredRaised {
		t.Fatalf("inspection flags = %+v", vs[0])
	}
}

func (e *testEnv) put(name string, n NewSecret) string {
	e.t.Helper()
	v, err := e.kv.Put("alpha", name, n)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// hook is a webhook endpoint that answers Event Grid's validation handshakes and
// records notifications, failing the first `fail` of them.
type hook struct {
	mu        sync.Mutex
	fail      int
	failWith  int
	noEcho    bool
	options   []http.Header
	validated int
	got       []delivery
}

type delivery struct {
	header http.Header
	body   []byte
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.Method == http.MethodOptions:
		h.options = append(h.options, r.Header.Clone())
		if r.Header.Get("WebHook-Request-Origin") == "eventgrid.azure.net" {
			w.Header().Set("WebHook-Allowed-Origin", "eventgrid.azure.net")
		}
	case r.Header.Get("aeg-event-type") == "SubscriptionValidation":
		h.validated++
		var evs []struct {
			Data struct {
				ValidationCode string `json:"validationCode"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &evs); err != nil || len(evs) != 1 {
			w.WriteHeader(400)
			return
		}
		code := evs[0].Data.ValidationCode
		if h.noEcho {
			code = "wrong"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": code})
	case r.Header.Get("aeg-event-type") == "Notification":
		h.got = append(h.got, delivery{header: r.Header.Clone(), body: body})
		if h.fail > 0 {
			h.fail--
			w.WriteHeader(h.failWith)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(400)
	}
}

func (h *hook) deliveries() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]delivery(nil), h.got...)
}

func (e *testEnv) subscribe(h *hook, s Subscription) {
	e.t.Helper()
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	s.Endpoint = srv.URL + "/runtime/webhooks/eventgrid?functionName=KeyVaultEvents&code=function-key"
	if err := e.kv.Subscribe(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) waitDeliveries() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.kv.WaitDeliveries(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func TestEventGridDeliveryAfterTheValidationHandshake(t *testing.T) {
	env := newEnv(t, nil)
	h := &hook{}
	env.subscribe(h, Subscription{Name: "patrol-events", Vault: "alpha", EventTypes: []string{EventSecretNearExpiry, EventSecretExpired}})
	if h.validated != 1 {
		t.Fatalf("validation handshakes = %d, want 1 before any delivery", h.validated)
	}
	exp := testStart.Add(31 * day)
	nbf := testStart
	_, err := env.client("alpha", env.cred(officerOID), nil).SetSecret(context.Background(), "pat-svc1", azsecrets.SetSecretParameters{
		Value: ptr("x"), SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp, NotBefore: &nbf}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.waitDeliveries()
	if n := len(h.deliveries()); n != 0 {
		t.Fatalf("%d deliveries of a type the subscription filters out", n)
	}
	env.clk.Advance(day)
	env.waitDeliveries()
	got := h.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1 SecretNearExpiry", len(got))
	}
	hd := got[0].header
	for k, want := range map[string]string{"aeg-event-type": "Notification", "aeg-subscription-name": "PATROL-EVENTS",
		"aeg-delivery-count": "0", "aeg-data-version": "1", "aeg-metadata-version": "1"} {
		if hd.Get(k) != want {
			t.Errorf("header %s = %q, want %q", k, hd.Get(k), want)
		}
	}
	var evs []map[string]json.RawMessage
	if err := json.Unmarshal(got[0].body, &evs); err != nil || len(evs) != 1 {
		t.Fatalf("body is not a one-event array: %s", got[0].body)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(evs[0]["data"], &data); err != nil {
		t.Fatal(err)
	}
	if string(data["EXP"]) != "1798459200" || string(data["NBF"]) != "1795780800" || string(data["ObjectName"]) != `"pat-svc1"` ||
		string(data["ObjectType"]) != `"Secret"` || string(data["VaultName"]) != `"alpha"` || !bytes.Contains(data["Id"], []byte("/secrets/pat-svc1/")) {
		t.Fatalf("data = %s", evs[0]["data"])
	}
	if string(evs[0]["eventType"]) != `"Microsoft.KeyVault.SecretNearExpiry"` || string(evs[0]["subject"]) != `"pat-svc1"` ||
		!bytes.Contains(evs[0]["topic"], []byte("/providers/Microsoft.KeyVault/vaults/alpha")) {
		t.Fatalf("envelope = %s", got[0].body)
	}
}

func TestFailedDeliveriesAreRetriedOnEventGridsSchedule(t *testing.T) {
	env := newEnv(t, nil)
	h := &hook{fail: 2, failWith: 500}
	env.subscribe(h, Subscription{Name: "retrying"})
	env.put("s", NewSecret{Value: "x"})
	env.waitDeliveries()
	if n := len(h.deliveries()); n != 1 {
		t.Fatalf("%d attempts before any time passed, want 1", n)
	}
	env.clk.Advance(10*time.Second - time.Millisecond)
	env.waitDeliveries()
	if n := len(h.deliveries()); n != 1 {
		t.Fatalf("retried before 10 s passed (%d attempts)", n)
	}
	env.clk.Advance(time.Millisecond)
	env.waitDeliveries()
	env.clk.Advance(30 * time.Second)
	env.waitDeliveries()
	got := h.deliveries()
	if len(got) != 3 {
		t.Fatalf("%d attempts after 10 s + 30 s, want 3", len(got))
	}
	for i, d := range got {
		if c := d.header.Get("aeg-delivery-count"); c != string(rune('0'+i)) {
			t.Fatalf("attempt %d has aeg-delivery-count %s", i+1, c)
		}
	}
	log := env.kv.Deliveries()
	if len(log) != 3 || log[0].Status != 500 || !log[2].Succeeded() || len(env.kv.DeadLetters()) != 0 {
		t.Fatalf("delivery log = %+v", log)
	}
	if strings.Contains(log[0].Err+log[1].Err, "function-key") {
		t.Fatal("the delivery log leaks the endpoint's key")
	}
}

func TestUndeliverableEventsAreDeadLettered(t *testing.T) {
	tests := []struct {
		name     string
		failWith int
		advance  time.Duration
		attempts int
		reason   string
	}{
		{name: "after the last allowed attempt", failWith: 500, advance: 10 * time.Second, attempts: 2, reason: "MaxDeliveryAttemptsExceeded"},
		{name: "at once when the endpoint calls the request bad", failWith: 400, attempts: 1, reason: "DeliveryFailed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, nil)
			h := &hook{fail: 100, failWith: tc.failWith}
			env.subscribe(h, Subscription{Name: "doomed", MaxAttempts: 2})
			env.put("s", NewSecret{Value: "x"})
			env.waitDeliveries()
			env.clk.Advance(tc.advance)
			env.waitDeliveries()
			dl := env.kv.DeadLetters()
			if len(dl) != 1 || dl[0].Attempts != tc.attempts || dl[0].Reason != tc.reason || dl[0].Event.Subject != "s" {
				t.Fatalf("dead letters = %+v", dl)
			}
			env.clk.Advance(day)
			env.waitDeliveries()
			if n := len(h.deliveries()); n != tc.attempts {
				t.Fatalf("%d attempts, want %d and none after dead-lettering", n, tc.attempts)
			}
		})
	}
}

func TestCloudEventsDelivery(t *testing.T) {
	env := newEnv(t, nil)
	h := &hook{}
	env.subscribe(h, Subscription{Name: "cloud-events", Schema: CloudEventSchema})
	if len(h.options) != 1 || h.options[0].Get("WebHook-Request-Origin") != "eventgrid.azure.net" {
		t.Fatalf("CloudEvents handshake = %v", h.options)
	}
	env.put("s", NewSecret{Value: "x"})
	env.waitDeliveries()
	got := h.deliveries()
	if len(got) != 1 || !strings.HasPrefix(got[0].header.Get("Content-Type"), "application/cloudevents+json") ||
		got[0].header.Get("aeg-metadata-version") != "1.0" || got[0].header.Get("aeg-event-type") != "Notification" {
		t.Fatalf("deliveries = %d, content type %q", len(got), got[0].header.Get("Content-Type"))
	}
	var ce map[string]json.RawMessage
	if err := json.Unmarshal(got[0].body, &ce); err != nil {
		t.Fatalf("body is not one CloudEvent object: %s", got[0].body)
	}
	if string(ce["specversion"]) != `"1.0"` || string(ce["type"]) != `"Microsoft.KeyVault.SecretNewVersionCreated"` ||
		!bytes.Contains(ce["source"], []byte("/vaults/alpha")) || !bytes.Contains(ce["data"], []byte(`"ObjectName":"s"`)) {
		t.Fatalf("CloudEvent = %s", got[0].body)
	}
}

func TestSubscribingFailsWithoutAValidHandshake(t *testing.T) {
	tests := map[string]struct {
		h      http.Handler
		schema Schema
	}{
		"an endpoint that does not echo the validation code":    {h: &hook{noEcho: true}},
		"an endpoint that answers 404":                          {h: http.NotFoundHandler()},
		"a CloudEvents endpoint that does not allow the origin": {h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), schema: CloudEventSchema},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t, nil)
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			err := env.kv.Subscribe(context.Background(), Subscription{Name: "bad", Endpoint: srv.URL + "/hook?code=k", Schema: tc.schema})
			if err == nil {
				t.Fatal("Subscribe succeeded")
			}
			if strings.Contains(err.Error(), "code=k") {
				t.Fatalf("error %q leaks the endpoint query", err)
			}
			if len(env.kv.Subscriptions()) != 0 {
				t.Fatal("a subscription that failed validation exists")
			}
		})
	}
}

func TestRetryDecisions(t *testing.T) {
	first := testStart
	tests := map[string]struct {
		failed, status, max int
		now                 time.Time
		ttl                 time.Duration
		delay               time.Duration
		reason              string
	}{
		"the first failure waits 10 seconds":           {failed: 1, status: 500, max: 30, now: first, ttl: day, delay: 10 * time.Second},
		"the third failure waits a minute":             {failed: 3, status: 500, max: 30, now: first, ttl: day, delay: time.Minute},
		"late failures wait an hour":                   {failed: 12, status: 500, max: 30, now: first, ttl: day, delay: time.Hour},
		"a 404 waits at least 5 minutes":               {failed: 1, status: 404, max: 30, now: first, ttl: day, delay: 5 * time.Minute},
		"a 503 waits at least 30 seconds":              {failed: 1, status: 503, max: 30, now: first, ttl: day, delay: 30 * time.Second},
		"a 408 waits at least 2 minutes":               {failed: 1, status: 408, max: 30, now: first, ttl: day, delay: 2 * time.Minute},
		"no response is treated like a server error":   {failed: 2, status: 0, max: 30, now: first, ttl: day, delay: 30 * time.Second},
		"a 413 is dead-lettered at once":               {failed: 1, status: 413, max: 30, now: first, ttl: day, reason: "DeliveryFailed"},
		"the last attempt is dead-lettered":            {failed: 30, status: 500, max: 30, now: first, ttl: day, reason: "MaxDeliveryAttemptsExceeded"},
		"a retry beyond the time to live is abandoned": {failed: 5, status: 500, max: 30, now: first.Add(day - time.Minute), ttl: day, reason: "TimeToLiveExceeded"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			delay, reason := nextStep(tc.failed, tc.status, tc.max, first, tc.now, tc.ttl)
			if delay != tc.delay || reason != tc.reason {
				t.Fatalf("nextStep = %v %q, want %v %q", delay, reason, tc.delay, tc.reason)
			}
		})
	}
}

func TestRateWindow(t *testing.T) {
	limit := RateLimit{Window: 10 * time.Second, Writes: 2, Others: 1}
	tests := map[string]struct {
		ops  []string
		at   []time.Duration
		want []bool
	}{
		"writes beyond the budget are refused":      {ops: []string{OpSetSecret, OpSetSecret, OpSetSecret}, at: []time.Duration{0, 1, 2}, want: []bool{true, true, false}},
		"reads and writes have separate budgets":    {ops: []string{OpSetSecret, OpGetSecret, OpSetSecret}, at: []time.Duration{0, 0, 0}, want: []bool{true, true, true}},
		"the budget returns once the window slides": {ops: []string{OpGetSecret, OpGetSecret, OpGetSecret}, at: []time.Duration{0, 5 * time.Second, 10 * time.Second}, want: []bool{true, false, true}},
		"a refused request does not use the budget": {ops: []string{OpGetSecret, OpGetSecret, OpGetSecret}, at: []time.Duration{0, 9 * time.Second, 10*time.Second + 1}, want: []bool{true, false, true}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var rs rateState
			for i, op := range tc.ops {
				if got := rs.admit(limit, op, testStart.Add(tc.at[i])); got != tc.want[i] {
					t.Fatalf("request %d (%s at +%v) admitted=%v, want %v", i, op, tc.at[i], got, tc.want[i])
				}
			}
		})
	}
}
