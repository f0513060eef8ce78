package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// TestConcurrentProducersAndConsumersCompleteEveryMessageOnce runs many senders and
// peek-lock receivers (some abandoning first) against one queue and one session queue;
// run it with -race.
func TestConcurrentProducersAndConsumersCompleteEveryMessageOnce(t *testing.T) {
	const producers, consumers, perProducer = 4, 6, 150
	clk := clock.NewManual(t0)
	st, err := New(testConfig(), clk)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	completed := map[string]int{}
	record := func(id string) {
		mu.Lock()
		completed[id]++
		mu.Unlock()
	}

	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				id := fmt.Sprintf("p%d-%d", p, i)
				if _, err := st.Send("work", msg(id)); err != nil {
					t.Error(err)
					return
				}
				if _, err := st.Send("sessions", msg(id, withSession(fmt.Sprintf("s%d", i%5)))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	total := producers * perProducer
	var consumed sync.WaitGroup
	remaining := make(chan struct{}, total)
	for range total {
		remaining <- struct{}{}
	}
	for c := range consumers {
		consumed.Go(func() {
			for {
				select {
				case <-remaining:
				default:
					return
				}
				d, err := st.Receive(ctx, "work", "", PeekLock)
				if err != nil {
					t.Error(err)
					return
				}
				if c%2 == 0 && d.DeliveryCount == 0 {
					// Abandon once (MaxDeliveryCount 3 leaves room), then someone completes it.
					if err := st.Abandon("work", d.LockToken, nil); err != nil {
						t.Error(err)
						return
					}
					remaining <- struct{}{}
					continue
				}
				if err := st.Complete("work", d.LockToken); err != nil {
					t.Error(err)
					return
				}
				record("work/" + d.MessageID)
			}
		})
	}
	// Session consumers: each accepts the next free session and drains what it holds.
	var sessionsDone sync.WaitGroup
	var sessionCount sync.Mutex
	sessionLeft := total
	for c := range 3 {
		sessionsDone.Go(func() {
			owner := fmt.Sprintf("session-link-%d", c)
			for {
				sessionCount.Lock()
				left := sessionLeft
				sessionCount.Unlock()
				if left == 0 {
					return
				}
				actx, acancel := context.WithTimeout(ctx, 50*time.Millisecond)
				lk, err := st.AcceptSession(actx, "sessions", "", owner)
				acancel()
				if err != nil {
					continue // timeout: every session locked or empty right now
				}
				for {
					rctx, rcancel := context.WithTimeout(ctx, 10*time.Millisecond)
					d, err := st.Receive(rctx, "sessions", lk.SessionID, PeekLock)
					rcancel()
					if err != nil {
						break
					}
					if d.SessionID != lk.SessionID {
						t.Errorf("session %s received a message of session %s", lk.SessionID, d.SessionID)
					}
					if err := st.Complete("sessions", d.LockToken); err != nil {
						t.Error(err)
						return
					}
					record("sessions/" + d.MessageID)
					sessionCount.Lock()
					sessionLeft--
					sessionCount.Unlock()
				}
				st.ReleaseSession(owner)
			}
		})
	}
	wg.Wait()
	consumed.Wait()
	sessionsDone.Wait()
	if err := st.WaitIdle(ctx, "work"); err != nil {
		t.Fatal(err)
	}
	if len(completed) != 2*total {
		t.Fatalf("%d distinct messages completed, want %d", len(completed), 2*total)
	}
	for id, n := range completed {
		if n != 1 {
			t.Fatalf("%s completed %d times", id, n)
		}
	}
	wantCounts(t, st, "work", Counts{})
	wantCounts(t, st, "sessions", Counts{})
}

func BenchmarkSendReceiveComplete(b *testing.B) {
	st, err := New(testConfig(), clock.NewManual(t0))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	m := msg("bench")
	for b.Loop() {
		if _, err := st.Send("work", m); err != nil {
			b.Fatal(err)
		}
		d, err := st.Receive(ctx, "work", "", PeekLock)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Complete("work", d.LockToken); err != nil {
			b.Fatal(err)
		}
	}
}
