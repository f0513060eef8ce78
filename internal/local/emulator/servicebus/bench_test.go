package servicebus

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// BenchmarkQueueThroughput sends b.N messages through one queue with one sender and one
// peek-lock receiver that completes each message, and reports messages per second and
// the p50/p99 latency from the send call to the receiver holding the message.
func BenchmarkQueueThroughput(b *testing.B) {
	br, err := New(Options{Config: testConfig(), Clock: clock.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	client, err := azservicebus.NewClientFromConnectionString(br.ConnectionString(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	defer client.Close(ctx)
	sender, err := client.NewSender("plain", nil)
	if err != nil {
		b.Fatal(err)
	}
	receiver, err := client.NewReceiverForQueue("plain", nil)
	if err != nil {
		b.Fatal(err)
	}
	// Warm up: links and CBS are set up outside the measurement.
	if err := sender.SendMessage(ctx, body("warm-up"), nil); err != nil {
		b.Fatal(err)
	}
	warm, err := receiver.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(warm) != 1 {
		b.Fatalf("warm-up receive: %v", err)
	}
	if err := receiver.CompleteMessage(ctx, warm[0], nil); err != nil {
		b.Fatal(err)
	}

	latencies := make([]time.Duration, 0, b.N)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		for len(latencies) < b.N {
			msgs, err := receiver.ReceiveMessages(ctx, 100, nil)
			if err != nil {
				done <- err
				return
			}
			now := time.Now()
			for _, m := range msgs {
				sent, _ := m.ApplicationProperties["sent"].(int64)
				latencies = append(latencies, now.Sub(time.Unix(0, sent)))
				if err := receiver.CompleteMessage(ctx, m, nil); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	for range b.N {
		m := &azservicebus.Message{Body: []byte("payload"), ApplicationProperties: map[string]any{"sent": time.Now().UnixNano()}}
		if err := sender.SendMessage(ctx, m, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
