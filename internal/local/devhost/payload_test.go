package devhost

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var (
	goldenNow   = time.Date(2026, 11, 27, 20, 13, 49, 640002000, time.UTC)
	goldenStamp = Stamp{Now: goldenNow, RandGUID: "6e4a3c1d-2f5b-4c7e-9a8d-0b1c2d3e4f50"}
)

func mustFunction(t *testing.T, name, raw string) Function {
	t.Helper()
	f, err := ParseFunctionJSON(name, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// golden compares v, encoded as the host sends it (compact JSON, re-indented for
// reading), to testdata/golden/name.json.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := marshalNet(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n%s", path, buf.String())
	}
}

func ptr[T any](v T) *T { return &v }

func TestServiceBusPayloadMatchesGolden(t *testing.T) {
	rotate := mustFunction(t, "Rotate", `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"pat-rotations","isSessionsEnabled":true}]}`)
	offboarding := mustFunction(t, "Offboarding", `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"hr-offboarding"}]}`)
	binary := mustFunction(t, "Raw", `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"q","dataType":"binary"}]}`)
	enq := time.Date(2026, 11, 27, 20, 13, 49, 123456700, time.UTC)
	lock := uuid.MustParse("4e773554-f6b7-4ea2-b07d-4c5fd5aba741")
	client := ServiceBusClientInfo{FullyQualifiedNamespace: "localhost", Identifier: "localhost-2b0a1f5e-8c3d-4f6a-9b7e-1d2c3b4a5f60"}
	sessionMsg := &azservicebus.ReceivedMessage{
		Body:                  []byte(`{"secret":"pat-svc1","reason":"nearExpiry"}`),
		MessageID:             "pat-svc1:ee059b2b:rotate",
		SessionID:             ptr("pat-svc1"),
		ContentType:           ptr("application/json"),
		CorrelationID:         ptr("op-123"),
		Subject:               ptr("rotate"),
		DeliveryCount:         1,
		SequenceNumber:        ptr(int64(42)),
		EnqueuedTime:          &enq,
		ExpiresAt:             ptr(enq.Add(14 * 24 * time.Hour)),
		LockToken:             lock,
		ApplicationProperties: map[string]any{"op": "rotate", "attempt": int64(2), "at": enq},
	}
	plainMsg := &azservicebus.ReceivedMessage{
		Body:           []byte(`{"upn":"alice@contoso.example"}`),
		MessageID:      "hr-1",
		DeliveryCount:  3,
		SequenceNumber: ptr(int64(7)),
		EnqueuedTime:   &enq,
		LockToken:      lock,
	}
	cases := map[string]struct {
		fn      Function
		msg     *azservicebus.ReceivedMessage
		session *ServiceBusSession
	}{
		"servicebus-session-message": {fn: rotate, msg: sessionMsg, session: &ServiceBusSession{LockedUntil: enq.Add(time.Minute)}},
		"servicebus-plain-message":   {fn: offboarding, msg: plainMsg},
		"servicebus-binary-message":  {fn: binary, msg: plainMsg},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			golden(t, name, BuildServiceBus(tc.fn, tc.msg, tc.session, client, goldenStamp))
		})
	}
}

func TestServiceBusPayloadQuirks(t *testing.T) {
	fn := mustFunction(t, "Offboarding", `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"hr-offboarding"}]}`)
	req := BuildServiceBus(fn, &azservicebus.ReceivedMessage{Body: []byte(`{"a":"b"}`), MessageID: "m1", DeliveryCount: 2}, nil, ServiceBusClientInfo{}, goldenStamp)
	cases := map[string]struct {
		got  any
		want any
	}{
		"the body is a JSON string holding a JSON string": {got: req.Data["msg"], want: `"{\"a\":\"b\"}"`},
		"the delivery count is a string of digits":        {got: req.Metadata["DeliveryCount"], want: "2"},
		"the message id is double-encoded":                {got: req.Metadata["MessageId"], want: `"m1"`},
		"an unset session id is omitted":                  {got: req.Metadata["SessionId"], want: nil},
		"an unset content type is omitted":                {got: req.Metadata["ContentType"], want: nil},
		"no session actions outside a session":            {got: req.Metadata["SessionActions"], want: nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
}

func TestHTTPPayloadMatchesGolden(t *testing.T) {
	fn := mustFunction(t, "RotateNow", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["post"],"route":"rotate/{secret}"},{"type":"http","direction":"out","name":"res"}]}`)
	status := mustFunction(t, "SecretStatus", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","methods":["get"],"route":"status/{secret?}"},{"type":"http","direction":"out","name":"res"}]}`)
	cases := map[string]struct {
		fn  Function
		req HTTPTriggerRequest
	}{
		"http-post-with-function-key": {fn: fn, req: HTTPTriggerRequest{
			URL: "http://127.0.0.1:7071/api/rotate/pat-svc1?wait=30s&revoke=now&revoke=later", Method: "post",
			Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json", "text/plain"}},
			Body:   []byte(`{"reason":"leaked"}`), Params: map[string]string{"secret": "pat-svc1"}, KeyKind: AuthFunction,
		}},
		"http-get-anonymous-no-body": {fn: status, req: HTTPTriggerRequest{
			URL: "http://127.0.0.1:7071/api/status", Method: "GET", Header: http.Header{"User-Agent": {"curl/8"}}, Params: map[string]string{},
		}},
		"http-octet-stream-with-master-key": {fn: fn, req: HTTPTriggerRequest{
			URL: "http://127.0.0.1:7071/api/rotate/x", Method: "POST", Header: http.Header{"Content-Type": {"application/octet-stream"}},
			Body: []byte{0, 1, 2, 0xff}, Params: map[string]string{"secret": "x"}, KeyKind: AuthAdmin,
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) { golden(t, name, BuildHTTP(tc.fn, tc.req, goldenStamp)) })
	}
}

func TestTimerPayloadMatchesGolden(t *testing.T) {
	monitored := mustFunction(t, "Sweep", `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 0 */6 * * *"}]}`)
	unmonitored := mustFunction(t, "Sweep", `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 0 */6 * * *","useMonitor":false}]}`)
	at := time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		fn   Function
		tick TimerTick
	}{
		"timer-tick":                 {fn: monitored, tick: TimerTick{Last: at.Add(-6 * time.Hour), Next: at.Add(6 * time.Hour)}},
		"timer-first-tick-past-due":  {fn: monitored, tick: TimerTick{Next: at.Add(6 * time.Hour), IsPastDue: true}},
		"timer-tick-without-monitor": {fn: unmonitored, tick: TimerTick{Next: at.Add(6 * time.Hour)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) { golden(t, name, BuildTimer(tc.fn, tc.tick, goldenStamp)) })
	}
}

func TestEventGridPayloadMatchesGolden(t *testing.T) {
	fn := mustFunction(t, "KeyVaultEvents", `{"bindings":[{"type":"eventGridTrigger","direction":"in","name":"event"}]}`)
	cases := map[string]string{
		"eventgrid-near-expiry": `{"id":"00eccf70-95a7-4e7c-8299-2eb17ee9ad64","topic":"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/patrol-demo","subject":"pat-svc1","eventType":"Microsoft.KeyVault.SecretNearExpiry","eventTime":"2026-11-27T01:08:33.1036736Z","data":{"Id":"https://patrol-demo.vault.localhost:8443/secrets/pat-svc1/ee059b2bb5bc48398a53b168c6cdcb10","VaultName":"patrol-demo","ObjectType":"Secret","ObjectName":"pat-svc1","Version":"ee059b2bb5bc48398a53b168c6cdcb10","NBF":1559081980,"EXP":1559082102},"dataVersion":"1","metadataVersion":"1"}`,
		"eventgrid-cloudevent":  `{"id":"1","source":"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/patrol-demo","subject":"pat-svc1","type":"Microsoft.KeyVault.SecretExpired","time":"2026-11-27T01:08:33Z","data":{"ObjectName":"pat-svc1"},"specversion":"1.0"}`,
	}
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			req, err := BuildEventGrid(fn, json.RawMessage(ev), goldenStamp)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, req)
		})
	}
	if _, err := BuildEventGrid(fn, json.RawMessage(`[1]`), goldenStamp); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("an array event: err = %v", err)
	}
}
