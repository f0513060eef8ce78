package servicebus

import (
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
)

func TestInjectedFaultsReachTheClient(t *testing.T) {
	inj := fault.New()
	f := newFixture(t, func(o *Options) { o.Faults = inj })

	t.Run("a busy server on send is retried by the SDK", func(t *testing.T) {
		inj.Set("send", fault.Fault{Status: 503, Times: 1})
		f.send(t, "plain", body("after busy"))
		if inj.Hits("send") != 1 {
			t.Fatalf("fault hits = %d, want 1", inj.Hits("send"))
		}
		if c := f.counts(t, "plain"); c.Active != 1 {
			t.Fatalf("counts %+v", c)
		}
	})
	t.Run("a management status maps to the SDK's error code", func(t *testing.T) {
		r := f.receiver(t, "plain", nil)
		m := receiveOne(t, r)
		inj.Set(opRenewLock, fault.Fault{Status: 410, Times: 1})
		err := r.RenewMessageLock(ctxT(t, 10*time.Second), m, nil)
		var sbErr *azservicebus.Error
		if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
			t.Fatalf("renew with an injected 410: %v", err)
		}
		if err := r.CompleteMessage(ctxT(t, 10*time.Second), m, nil); err != nil {
			t.Fatalf("the real lock is intact: %v", err)
		}
	})
}
