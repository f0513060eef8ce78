package devhost

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	sbemu "github.com/patrol-dev/patrol/internal/local/emulator/servicebus"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

var serviceBusAppFiles = map[string]string{
	"host.json": `{
  "version": "2.0",
  "customHandler": {"description": {"defaultExecutablePath": "handler"}},
  "extensions": {"serviceBus": {"maxConcurrentCalls": 4, "maxConcurrentSessions": 2, "sessionIdleTimeout": "00:00:00.500", "maxAutoLockRenewalDuration": "00:05:00"}}
}`,
	"functions/Offboarding/function.json": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"hr-offboarding","connection":"ServiceBusConnection"}]}`,
	"functions/Rotate/function.json":      `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"pat-rotations","connection":"ServiceBusConnection","isSessionsEnabled":true}]}`,
	"functions/Revoke/function.json":      `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"pat-revocations","connection":"ServiceBusConnection"}]}`,
}

type sbFixture struct {
	*testHost
	broker *sbemu.Emulator
	sender func(queue string) *azservicebus.Sender
}

func startServiceBusHost(t *testing.T) *sbFixture {
	t.Helper()
	clk := clock.New()
	b, err := sbemu.New(sbemu.Options{Config: store.PatrolConfig(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	th := startTestHost(t, serviceBusAppFiles, func(o *Options) {
		o.Settings["ServiceBusConnection"] = b.ConnectionString()
		o.Clock = clk
	})
	client, err := azservicebus.NewClientFromConnectionString(b.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	senders := map[string]*azservicebus.Sender{}
	return &sbFixture{testHost: th, broker: b, sender: func(queue string) *azservicebus.Sender {
		if s, ok := senders[queue]; ok {
			return s
		}
		s, err := client.NewSender(queue, nil)
		if err != nil {
			t.Fatal(err)
		}
		senders[queue] = s
		return s
	}}
}

func (f *sbFixture) send(t *testing.T, queue string, msgs ...*azservicebus.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range msgs {
		if err := f.sender(queue).SendMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *sbFixture) waitIdle(t *testing.T, queue string) store.Counts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := f.broker.WaitIdle(ctx, queue); err != nil {
		t.Fatalf("queue %s did not drain: %v", queue, err)
	}
	if err := f.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := f.broker.Counts(queue)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func metadataString(t *testing.T, r recorded, key string) string {
	t.Helper()
	raw, ok := r.Body.Metadata[key]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("Metadata.%s = %s is not a string", key, raw)
	}
	return s
}

func TestServiceBusSuccessCompletesTheMessage(t *testing.T) {
	f := startServiceBusHost(t)
	ct := "application/json"
	f.send(t, "hr-offboarding", &azservicebus.Message{
		Body: []byte(`{"upn":"alice@contoso.example"}`), MessageID: ptr("hr-1"), ContentType: &ct,
		ApplicationProperties: map[string]any{"source": "hr"},
	})
	c := f.waitIdle(t, "hr-offboarding")
	if c.DeadLettered != 0 || c.Active != 0 {
		t.Errorf("queue counts = %+v, want everything completed", c)
	}
	invs := f.invocations(t, "Offboarding")
	if len(invs) != 1 {
		t.Fatalf("invocations = %d, want 1", len(invs))
	}
	inv := invs[0]
	var data string
	if err := json.Unmarshal(inv.Body.Data["msg"], &data); err != nil || data != `"{\"upn\":\"alice@contoso.example\"}"` {
		t.Errorf("Data.msg = %s, want the body JSON-encoded twice", inv.Body.Data["msg"])
	}
	checks := map[string]struct{ got, want string }{
		"the delivery count is a string":       {metadataString(t, inv, "DeliveryCount"), "1"},
		"the message id is double-encoded":     {metadataString(t, inv, "MessageId"), `"hr-1"`},
		"the content type is double-encoded":   {metadataString(t, inv, "ContentType"), `"application/json"`},
		"the sequence number is a string":      {fmt.Sprint(metadataString(t, inv, "SequenceNumber") != ""), "true"},
		"a lock token is present":              {fmt.Sprint(len(metadataString(t, inv, "LockToken")) == 38), "true"},
		"an unset session id is omitted":       {metadataString(t, inv, "SessionId"), ""},
		"sys names the function":               {string(inv.Body.Metadata["sys"])[:len(`{"MethodName":"Offboarding"`)], `{"MethodName":"Offboarding"`},
		"application properties are an object": {string(inv.Body.Metadata["ApplicationProperties"]), `{"source":"hr"}`},
	}
	for name, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", name, c.got, c.want)
		}
	}
	var client ServiceBusClientInfo
	if err := json.Unmarshal(inv.Body.Metadata["Client"], &client); err != nil || client.FullyQualifiedNamespace != "localhost" {
		t.Errorf("Metadata.Client = %s", inv.Body.Metadata["Client"])
	}
	if got := f.Counts("Offboarding"); got.Succeeded != 1 || got.Failed != 0 {
		t.Errorf("counts = %+v", got)
	}
}

func TestServiceBusFailureAbandonsUntilSuccess(t *testing.T) {
	f := startServiceBusHost(t)
	f.send(t, "pat-revocations", &azservicebus.Message{Body: []byte(`{"note":"fail-until-3"}`), MessageID: ptr("rev-1")})
	c := f.waitIdle(t, "pat-revocations")
	if c.DeadLettered != 0 {
		t.Errorf("queue counts = %+v, want no dead letters", c)
	}
	var counts []string
	for _, inv := range f.invocations(t, "Revoke") {
		counts = append(counts, metadataString(t, inv, "DeliveryCount"))
	}
	if strings.Join(counts, ",") != "1,2,3" {
		t.Errorf("delivery counts seen = %v, want 1,2,3 (abandon on each failure)", counts)
	}
	if got := f.Counts("Revoke"); got.Succeeded != 1 || got.Failed != 2 {
		t.Errorf("counts = %+v, want 1 succeeded, 2 failed", got)
	}
}

func TestServiceBusPoisonMessageIsDeadLetteredByTheEntity(t *testing.T) {
	f := startServiceBusHost(t)
	f.send(t, "pat-revocations", &azservicebus.Message{Body: []byte(`fail-always`), MessageID: ptr("rev-poison")})
	c := f.waitIdle(t, "pat-revocations")
	if c.DeadLettered != 1 {
		t.Errorf("queue counts = %+v, want the message dead-lettered after MaxDeliveryCount", c)
	}
	if got := f.Counts("Revoke"); got.Failed != 10 || got.Succeeded != 0 {
		t.Errorf("counts = %+v, want 10 failures (MaxDeliveryCount)", got)
	}
}

// The host owns the message lock: a handler that settles the message itself makes the
// host's completion fail, and the host reports that as an error, not quietly.
func TestServiceBusACompletionTheBrokerRefusesIsLoggedAsAnError(t *testing.T) {
	f := startServiceBusHost(t)
	f.send(t, "pat-revocations", &azservicebus.Message{Body: []byte(`self-deadletter`), MessageID: ptr("rev-bad")})
	c := f.waitIdle(t, "pat-revocations")
	if c.DeadLettered != 1 {
		t.Errorf("queue counts = %+v, want the message in the dead-letter queue", c)
	}
	if got := f.Counts("Revoke"); got.Succeeded != 1 || got.Failed != 0 {
		t.Errorf("counts = %+v, want one success", got)
	}
	r := f.logs.find("devhost: complete message")
	if r == nil || r["level"] != "ERROR" || r["lockLost"] != "true" {
		t.Errorf("the refused completion of a message the handler settled itself was logged as %v, want an ERROR with lockLost", r)
	}
}

func TestServiceBusSessionsAreProcessedInOrder(t *testing.T) {
	f := startServiceBusHost(t)
	var msgs []*azservicebus.Message
	for i := 1; i <= 5; i++ {
		for _, s := range []string{"pat-a", "pat-b", "pat-c"} {
			body := fmt.Sprintf(`{"secret":%q,"step":%d}`, s, i)
			if s == "pat-b" && i == 2 {
				body = fmt.Sprintf(`{"secret":%q,"step":%d,"note":"fail-until-2"}`, s, i)
			}
			msgs = append(msgs, &azservicebus.Message{Body: []byte(body), SessionID: ptr(s), MessageID: ptr(fmt.Sprintf("%s-%d", s, i))})
		}
	}
	f.send(t, "pat-rotations", msgs...)
	c := f.waitIdle(t, "pat-rotations")
	if c.DeadLettered != 0 {
		t.Errorf("queue counts = %+v", c)
	}

	steps := map[string][]int{}
	for _, inv := range f.invocations(t, "Rotate") {
		session := metadataString(t, inv, "SessionId")
		var raw string
		if err := json.Unmarshal(inv.Body.Data["msg"], &raw); err != nil {
			t.Fatal(err)
		}
		var body struct {
			Secret string
			Step   int
		}
		inner, _ := strconv.Unquote(raw)
		if err := json.Unmarshal([]byte(inner), &body); err != nil {
			t.Fatalf("Data.msg %s: %v", raw, err)
		}
		if session != strconv.Quote(body.Secret) {
			t.Errorf("SessionId %s for a message of %s", session, body.Secret)
		}
		if _, ok := inv.Body.Metadata["SessionActions"]; !ok {
			t.Error("a session message has no SessionActions")
		}
		steps[body.Secret] = append(steps[body.Secret], body.Step)
	}
	want := map[string]string{"pat-a": "[1 2 3 4 5]", "pat-b": "[1 2 2 3 4 5]", "pat-c": "[1 2 3 4 5]"}
	for s, w := range want {
		if got := fmt.Sprint(steps[s]); got != w {
			t.Errorf("session %s saw steps %s, want %s (in order, the failed one retried before the next)", s, got, w)
		}
	}
	if keys := sortedStepKeys(steps); len(keys) != 3 {
		t.Errorf("sessions seen = %v", keys)
	}
}

func sortedStepKeys(m map[string][]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestServiceBusWaitsForARestartedHandlerInsteadOfBurningDeliveries(t *testing.T) {
	f := startServiceBusHost(t)
	if err := f.Kill(); err != nil {
		t.Fatal(err)
	}
	f.send(t, "hr-offboarding", &azservicebus.Message{Body: []byte(`{"upn":"bob@contoso.example"}`), MessageID: ptr("hr-2")})
	// Give a receiver that ignored the dead handler time to fail the message many times.
	time.Sleep(200 * time.Millisecond)
	if err := f.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := f.waitIdle(t, "hr-offboarding")
	invs := f.invocations(t, "Offboarding")
	if c.DeadLettered != 0 || len(invs) != 1 || metadataString(t, invs[0], "DeliveryCount") != "1" || f.Counts("Offboarding").Failed != 0 {
		t.Errorf("queue %+v, invocations %d, counts %+v: want one first delivery after the restart", c, len(invs), f.Counts("Offboarding"))
	}
}

func TestServiceBusMessageInFlightWhenTheHandlerDiesIsAbandoned(t *testing.T) {
	f := startServiceBusHost(t)
	f.send(t, "hr-offboarding", &azservicebus.Message{Body: []byte(`{"note":"crash-now"}`), MessageID: ptr("hr-3")})
	waitFor(t, "the failed delivery", func() bool { return f.Counts("Offboarding").Failed == 1 })
	if err := f.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The echo handler crashes on this message every time; the entity dead-letters it
	// after MaxDeliveryCount only if devhost keeps abandoning (not completing) it.
	waitFor(t, "the redelivery after restart", func() bool { return f.Counts("Offboarding").Failed == 2 })
	invs := f.invocations(t, "Offboarding")
	if got := metadataString(t, invs[len(invs)-1], "DeliveryCount"); got != "2" {
		t.Errorf("redelivery DeliveryCount = %q, want 2 (abandoned once)", got)
	}
}

func TestServiceBusConnectionMustBeSet(t *testing.T) {
	cases := map[string]struct {
		settings map[string]string
		want     string
	}{
		"a missing connection setting is named": {settings: map[string]string{}, want: "app setting ServiceBusConnection is not set"},
		"an identity-based connection is explained": {
			settings: map[string]string{"ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net"},
			want:     "identity-based connections",
		},
		"a malformed connection string is named without echoing it": {
			settings: map[string]string{"ServiceBusConnection": "SharedAccessKey=super-secret-value"},
			want:     "not a valid Service Bus connection string",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			app, err := LoadAppDefinition(writeApp(t, serviceBusAppFiles))
			if err != nil {
				t.Fatal(err)
			}
			h, err := Start(context.Background(), Options{Definition: app, Settings: tc.settings, Command: []string{echoBin}})
			if err == nil {
				_ = h.Close(context.Background())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "super-secret-value") {
				t.Errorf("error = %q, want it to mention %q and never the key", err, tc.want)
			}
		})
	}
}

func TestServiceBusOutputBindingsSendWhatTheHostWould(t *testing.T) {
	clk := clock.New()
	b, err := sbemu.New(sbemu.Options{Config: store.PatrolConfig(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	files := map[string]string{
		"host.json": minimalHost,
		"functions/Emit/function.json": `{"bindings":[
			{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
			{"type":"serviceBus","direction":"out","name":"outMsg","queueName":"hr-offboarding","connection":"ServiceBusConnection"},
			{"type":"serviceBus","direction":"out","name":"outMany","topicName":"pat-events","connection":"ServiceBusConnection"}]}`,
	}
	th := startTestHost(t, files, func(o *Options) { o.Settings["ServiceBusConnection"] = b.ConnectionString(); o.Clock = clk })
	if _, err := th.Invoke(context.Background(), "Emit", map[string]any{"req": map[string]any{}}, nil); err != nil {
		t.Fatal(err)
	}
	client, err := azservicebus.NewClientFromConnectionString(b.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	receive := func(r *azservicebus.Receiver, n int) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out []string
		for len(out) < n {
			msgs, err := r.ReceiveMessages(ctx, n-len(out), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				out = append(out, string(m.Body))
				_ = r.CompleteMessage(ctx, m, nil)
			}
		}
		return out
	}
	q, _ := client.NewReceiverForQueue("hr-offboarding", nil)
	if got := receive(q, 1); got[0] != "test" {
		t.Errorf("outMsg body = %q, want the base64 string decoded to %q (the host's quirk)", got[0], "test")
	}
	sub, _ := client.NewReceiverForSubscription("pat-events", "all", nil)
	got := receive(sub, 2)
	sort.Strings(got)
	if fmt.Sprint(got) != `[plain text {"kind":"a"}]` {
		t.Errorf("outMany bodies = %q, want one message per array element", got)
	}
}

func TestServiceBusLocksAreRenewedWhileTheHandlerWorks(t *testing.T) {
	// One manual clock for the broker and devhost: the lock (PT1M) only expires when
	// the test moves time, and devhost renews at half the remaining time.
	clk := clock.NewManual(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	b, err := sbemu.New(sbemu.Options{Config: store.PatrolConfig(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	th := startTestHost(t, serviceBusAppFiles, func(o *Options) {
		o.Settings["ServiceBusConnection"] = b.ConnectionString()
		o.Clock = clk
		o.DisableTriggers = []string{"Offboarding", "Rotate"}
	})
	f := &sbFixture{testHost: th, broker: b}
	client, err := azservicebus.NewClientFromConnectionString(b.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	s, err := client.NewSender("pat-revocations", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMessage(context.Background(), &azservicebus.Message{Body: []byte("sleep-ms-1500"), MessageID: ptr("slow")}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slow invocation to start", func() bool { return len(th.invocations(t, "Revoke")) == 1 })
	renewals := func() int {
		th.logs.mu.Lock()
		defer th.logs.mu.Unlock()
		n := 0
		for _, r := range th.logs.records {
			if r["msg"] == "devhost: lock renewed" {
				n++
			}
		}
		return n
	}
	// One jump over one and a half lock periods: the renewals (due at 30 s, 60 s and
	// 90 s) run inside the Advance, each before the expiry it prevents.
	clk.Advance(90 * time.Second)
	if n := renewals(); n != 3 {
		t.Errorf("renewals during the jump = %d, want 3", n)
	}
	c := f.waitIdle(t, "pat-revocations")
	if got := th.Counts("Revoke"); got.Succeeded != 1 || got.Failed != 0 || len(th.invocations(t, "Revoke")) != 1 || c.DeadLettered != 0 {
		t.Errorf("counts %+v, invocations %d, queue %+v: want one delivery completed under a renewed lock", got, len(th.invocations(t, "Revoke")), c)
	}
	if th.logs.find("devhost: complete message") != nil {
		t.Error("the lock was lost although devhost renews it")
	}
}

func TestServiceBusConcurrencyIsBoundedByMaxConcurrentCalls(t *testing.T) {
	f := startServiceBusHost(t) // host.json: maxConcurrentCalls 4
	for i := range 10 {
		f.send(t, "hr-offboarding", &azservicebus.Message{Body: []byte(`{"note":"sleep-ms-150"}`), MessageID: ptr(fmt.Sprint("c-", i))})
	}
	f.waitIdle(t, "hr-offboarding")
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats", f.HandlerPort()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct{ MaxInFlight int }
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if stats.MaxInFlight > 4 || stats.MaxInFlight < 2 {
		t.Errorf("at most %d invocations ran at once, want between 2 and maxConcurrentCalls (4)", stats.MaxInFlight)
	}
	if c := f.Counts("Offboarding"); c.Succeeded != 10 {
		t.Errorf("counts = %+v", c)
	}
}
