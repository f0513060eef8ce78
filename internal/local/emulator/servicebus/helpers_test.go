package servicebus

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

// testConfig has one entity per behaviour under test.
func testConfig() store.Config {
	q := func(name string, p store.QueueProperties) store.Queue { return store.Queue{Name: name, Properties: p} }
	base := store.QueueProperties{LockDuration: "PT30S", MaxDeliveryCount: 3, DefaultMessageTimeToLive: "PT1H"}
	dedup := base
	dedup.RequiresDuplicateDetection, dedup.DuplicateDetectionHistoryTimeWindow = true, "PT10M"
	sess := base
	sess.RequiresSession = true
	expiring := base
	expiring.DefaultMessageTimeToLive, expiring.DeadLetteringOnMessageExpiration = "PT5M", true
	return store.Config{UserConfig: store.UserConfig{Namespaces: []store.Namespace{{
		Name:   "sbemulatorns",
		Queues: []store.Queue{q("plain", base), q("dedup", dedup), q("sessions", sess), q("expiring", expiring), q("other", base)},
		Topics: []store.Topic{{Name: "events", Subscriptions: []store.Subscription{
			{Name: "a", Properties: store.SubscriptionProperties{LockDuration: "PT30S", MaxDeliveryCount: 3}},
			{Name: "b", Properties: store.SubscriptionProperties{LockDuration: "PT30S", MaxDeliveryCount: 3}},
		}}},
	}}}}
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	broker *Emulator
	clk    *clock.Clock
	client *azservicebus.Client
	logs   *syncBuffer
}

// newFixture starts a broker on a manual clock (at wall time, so SAS expiry stays
// meaningful) and returns a real azservicebus client connected to it.
func newFixture(t *testing.T, tweaks ...func(*Options)) *fixture {
	t.Helper()
	clk := clock.NewManual(time.Now().UTC())
	logs := &syncBuffer{}
	opts := Options{Config: testConfig(), Clock: clk, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, tw := range tweaks {
		tw(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{broker: b, clk: clk, logs: logs}
	f.client = f.newClient(t, b.ConnectionString())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
		b.Close()
	})
	return f
}

func (f *fixture) newClient(t *testing.T, connStr string) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(connStr, &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (f *fixture) sender(t *testing.T, entity string) *azservicebus.Sender {
	t.Helper()
	s, err := f.client.NewSender(entity, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func (f *fixture) receiver(t *testing.T, entity string, opts *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	t.Helper()
	r, err := f.client.NewReceiverForQueue(entity, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func (f *fixture) send(t *testing.T, entity string, msgs ...*azservicebus.Message) {
	t.Helper()
	s := f.sender(t, entity)
	for _, m := range msgs {
		if err := s.SendMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
			t.Fatalf("send to %s: %v", entity, err)
		}
	}
}

// receiveOne receives exactly one message or fails.
func receiveOne(t *testing.T, r *azservicebus.Receiver) *azservicebus.ReceivedMessage {
	t.Helper()
	msgs, err := r.ReceiveMessages(ctxT(t, 10*time.Second), 1, nil)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func (f *fixture) counts(t *testing.T, entity string) store.Counts {
	t.Helper()
	c, err := f.broker.Counts(entity)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func body(s string) *azservicebus.Message { return &azservicebus.Message{Body: []byte(s)} }
