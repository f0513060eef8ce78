package servicebus

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	goamqp "github.com/Azure/go-amqp"
)

func sessionMsg(session, text string) *azservicebus.Message {
	return &azservicebus.Message{SessionID: &session, Body: []byte(text)}
}

func TestAcceptNamedSessionGetsOnlyItsMessagesInOrder(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("s1", "1a"), sessionMsg("s2", "2a"), sessionMsg("s1", "1b"), sessionMsg("s1", "1c"))
	sr, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close(ctxT(t, 5*time.Second))
	if sr.SessionID() != "s1" {
		t.Fatalf("SessionID = %q", sr.SessionID())
	}
	if want := f.clk.Now().Add(30 * time.Second).Truncate(time.Millisecond); !sr.LockedUntil().Equal(want) {
		t.Errorf("LockedUntil = %v, want %v", sr.LockedUntil(), want)
	}
	// The Go SDK peeks without a session-id: the broker scopes it by the receiver link.
	peeked, err := sr.PeekMessages(ctxT(t, 10*time.Second), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(peeked) != 3 {
		t.Fatalf("peek on session s1 returned %d messages, want its 3", len(peeked))
	}
	var got []string
	for len(got) < 3 {
		msgs, err := sr.ReceiveMessages(ctxT(t, 10*time.Second), 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if *m.SessionID != "s1" {
				t.Fatalf("session s1 received a message of %q", *m.SessionID)
			}
			got = append(got, string(m.Body))
			if err := sr.CompleteMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got[0] != "1a" || got[1] != "1b" || got[2] != "1c" {
		t.Fatalf("order %v, want FIFO", got)
	}
	peeked, err = sr.PeekMessages(ctxT(t, 10*time.Second), 10, nil)
	if err != nil || len(peeked) != 0 {
		t.Fatalf("peek on the drained session: %d messages, %v", len(peeked), err)
	}
}

func TestSessionStateAndLockRenewal(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("st", "x"))
	sr, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "st", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close(ctxT(t, 5*time.Second))
	if s, err := sr.GetSessionState(ctxT(t, 10*time.Second), nil); err != nil || s != nil {
		t.Fatalf("initial state %q, %v", s, err)
	}
	if err := sr.SetSessionState(ctxT(t, 10*time.Second), []byte("step-2"), nil); err != nil {
		t.Fatal(err)
	}
	if s, err := sr.GetSessionState(ctxT(t, 10*time.Second), nil); err != nil || string(s) != "step-2" {
		t.Fatalf("state %q, %v", s, err)
	}
	f.clk.Advance(20 * time.Second)
	if err := sr.RenewSessionLock(ctxT(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if want := f.clk.Now().Add(30 * time.Second).Truncate(time.Millisecond); !sr.LockedUntil().Equal(want) {
		t.Fatalf("LockedUntil after renew = %v, want %v", sr.LockedUntil(), want)
	}
	ids := listSessions(t, f)
	if len(ids) != 1 || ids[0] != "st" {
		t.Fatalf("sessions = %v", ids)
	}
}

// listSessions drives com.microsoft:get-message-sessions through the SDK's pager.
func listSessions(t *testing.T, f *fixture) []string {
	t.Helper()
	var ids []string
	pager := f.client.NewListSessionsForQueuePager("sessions", nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatalf("list sessions: %v", err)
		}
		ids = append(ids, page.Sessions...)
	}
	return ids
}

func TestAcceptNextSessionAndTimeout(t *testing.T) {
	f := newFixture(t)
	t.Run("no session available times out", func(t *testing.T) {
		_, err := f.client.AcceptNextSessionForQueue(ctxT(t, 300*time.Millisecond), "sessions", nil)
		var sbErr *azservicebus.Error
		if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeTimeout {
			t.Fatalf("accept next on an empty queue: %v, want CodeTimeout", err)
		}
	})
	t.Run("a waiting accept gets a session sent later", func(t *testing.T) {
		done := make(chan *azservicebus.SessionReceiver, 1)
		go func() {
			sr, err := f.client.AcceptNextSessionForQueue(ctxT(t, 10*time.Second), "sessions", nil)
			if err != nil {
				t.Error(err)
			}
			done <- sr
		}()
		f.send(t, "sessions", sessionMsg("late", "x"))
		sr := <-done
		if sr == nil {
			return
		}
		defer sr.Close(ctxT(t, 5*time.Second))
		if sr.SessionID() != "late" {
			t.Fatalf("accepted %q", sr.SessionID())
		}
	})
}

func TestConcurrentSessionReceiversNeverShareASession(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("c1", "x"), sessionMsg("c2", "y"))
	var wg sync.WaitGroup
	ids := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sr, err := f.client.AcceptNextSessionForQueue(ctxT(t, 10*time.Second), "sessions", nil)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { sr.Close(ctxT(t, 5*time.Second)) })
			ids[i] = sr.SessionID()
		}()
	}
	wg.Wait()
	if ids[0] == ids[1] || ids[0] == "" || ids[1] == "" {
		t.Fatalf("two receivers got sessions %q and %q", ids[0], ids[1])
	}
	_, err := f.client.AcceptSessionForQueue(ctxT(t, 5*time.Second), "sessions", "c1", nil)
	var amqpErr *goamqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Condition != "com.microsoft:session-cannot-be-locked" {
		t.Fatalf("accepting a locked session: %v, want com.microsoft:session-cannot-be-locked", err)
	}
}

func TestSessionLockExpiryDetachesTheReceiver(t *testing.T) {
	f := newFixture(t)
	f.send(t, "sessions", sessionMsg("exp", "x"))
	sr, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "exp", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close(ctxT(t, 5*time.Second))
	m, err := sr.ReceiveMessages(ctxT(t, 10*time.Second), 1, nil)
	if err != nil || len(m) != 1 {
		t.Fatalf("receive: %d, %v", len(m), err)
	}
	f.clk.Advance(31 * time.Second)
	// The session is free again: another receiver gets it, with the message redelivered.
	sr2, err := f.client.AcceptSessionForQueue(ctxT(t, 10*time.Second), "sessions", "exp", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr2.Close(ctxT(t, 5*time.Second))
	m2, err := sr2.ReceiveMessages(ctxT(t, 10*time.Second), 1, nil)
	if err != nil || len(m2) != 1 || m2[0].DeliveryCount != 2 {
		t.Fatalf("redelivery: %d messages, %v", len(m2), err)
	}
}
