package servicebus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// A key limited like a principal with Data Sender on "plain" and Data Receiver on the
// topic "events" (so on its subscriptions).
const limitedKey = "limited"

func limitedFixture(t *testing.T) (*fixture, *azservicebus.Client) {
	t.Helper()
	f := newFixture(t, func(o *Options) {
		o.Keys = map[string]string{DefaultKeyName: DefaultKey, limitedKey: "limited-secret"}
		o.Rights = map[string]Rights{limitedKey: {"plain": Send, "events": Listen, "sessions": Manage}}
	})
	return f, f.newClient(t, f.broker.KeyConnectionString(limitedKey))
}

func isUnauthorized(err error) bool {
	var sbErr *azservicebus.Error
	return errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeUnauthorizedAccess
}

func TestAKeyMayDoOnlyWhatItsRightsSay(t *testing.T) {
	f, limited := limitedFixture(t)
	if cs := f.broker.ConnectionString(); !strings.Contains(cs, "SharedAccessKeyName="+DefaultKeyName) {
		t.Fatalf("ConnectionString = %q, want the unlimited key's", cs)
	}
	for name, tc := range map[string]struct {
		do      func(t *testing.T) error
		allowed bool
	}{
		"Send on a queue sends to it": {allowed: true, do: func(t *testing.T) error {
			s, err := limited.NewSender("plain", nil)
			if err != nil {
				return err
			}
			return s.SendMessage(ctxT(t, 10*time.Second), body("x"), nil)
		}},
		"Send on a queue schedules on it": {allowed: true, do: func(t *testing.T) error {
			s, err := limited.NewSender("plain", nil)
			if err != nil {
				return err
			}
			_, err = s.ScheduleMessages(ctxT(t, 10*time.Second), []*azservicebus.Message{body("later")}, f.clk.Now().Add(time.Hour), nil)
			return err
		}},
		"Send on a queue does not receive from it": {do: func(t *testing.T) error {
			r, err := limited.NewReceiverForQueue("plain", nil)
			if err != nil {
				return err
			}
			_, err = r.ReceiveMessages(ctxT(t, 10*time.Second), 1, nil)
			return err
		}},
		"Send on a queue does not peek it": {do: func(t *testing.T) error {
			r, err := limited.NewReceiverForQueue("plain", nil)
			if err != nil {
				return err
			}
			_, err = r.PeekMessages(ctxT(t, 10*time.Second), 1, nil)
			return err
		}},
		"no right on a queue sends nothing to it": {do: func(t *testing.T) error {
			s, err := limited.NewSender("other", nil)
			if err != nil {
				return err
			}
			return s.SendMessage(ctxT(t, 10*time.Second), body("x"), nil)
		}},
		"Listen on a topic receives from its subscriptions": {allowed: true, do: func(t *testing.T) error {
			r, err := limited.NewReceiverForSubscription("events", "a", nil)
			if err != nil {
				return err
			}
			_, err = r.PeekMessages(ctxT(t, 10*time.Second), 1, nil)
			return err
		}},
		"Listen on a topic does not publish to it": {do: func(t *testing.T) error {
			s, err := limited.NewSender("events", nil)
			if err != nil {
				return err
			}
			return s.SendMessage(ctxT(t, 10*time.Second), body("x"), nil)
		}},
		"Manage implies Send": {allowed: true, do: func(t *testing.T) error {
			s, err := limited.NewSender("sessions", nil)
			if err != nil {
				return err
			}
			return s.SendMessage(ctxT(t, 10*time.Second), sessionMsg("s1", "x"), nil)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.do(t)
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.allowed && !isUnauthorized(err):
				t.Fatalf("got %v, want CodeUnauthorizedAccess", err)
			}
		})
	}
	if !strings.Contains(f.logs.String(), "claim") {
		t.Error("the broker log does not say which claim was missing")
	}
}

func TestRightsForAKeyThatIsNotConfiguredAreRefused(t *testing.T) {
	_, err := New(Options{Config: testConfig(), Rights: map[string]Rights{"ghost": {"plain": Send}}})
	if err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("New: %v, want an error naming the key", err)
	}
}
