package handlers

import (
	"context"
	"testing"

	"github.com/patrol-dev/patrol/internal/contract"
)

// BenchmarkDecodeServiceBusInvocation measures the decode path of one Rotate
// invocation in the host's real shape: envelope, metadata, double-encoded body, command.
func BenchmarkDecodeServiceBusInvocation(b *testing.B) {
	body := mustRead(b, "testdata/Rotate/session.request.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		inv, err := DecodeInvocation(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeMessageInfo(inv); err != nil {
			b.Fatal(err)
		}
		msg, err := inv.messageBody("msg")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := contract.DecodeRotationCommand(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEventGridInvocation measures envelope plus Key Vault event decoding.
func BenchmarkDecodeEventGridInvocation(b *testing.B) {
	body := mustRead(b, "testdata/KeyVaultEvents/near-expiry-eventgrid.request.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		inv, err := DecodeInvocation(body)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := inv.binding("event")
		if _, err := DecodeKeyVaultEvent(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeRotate is a whole invocation through ServeHTTP with an in-memory App:
// the handler's own overhead per message.
func BenchmarkInvokeRotate(b *testing.B) {
	body := mustRead(b, "testdata/Rotate/session.request.json")
	h := New(Options{Deps: func(context.Context) (Deps, error) { return Deps{App: nopApp{}}, nil }})
	b.ReportAllocs()
	for b.Loop() {
		if w := invoke(h, "Rotate", body); w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

type nopApp struct{}

func (nopApp) KeyVaultEvent(context.Context, KeyVaultEvent) error          { return nil }
func (nopApp) Offboard(context.Context, contract.OffboardingMessage) error { return nil }
func (nopApp) Rotate(context.Context, contract.RotationCommand) error      { return nil }
func (nopApp) Revoke(context.Context, contract.RevocationCommand) error    { return nil }
func (nopApp) Sweep(context.Context, SweepTick) error                      { return nil }
func (nopApp) Status(context.Context, StatusRequest) (contract.StatusResult, error) {
	return contract.StatusResult{}, nil
}
func (nopApp) RotateNow(context.Context, RotateNowRequest) (RotateNowResult, error) {
	return RotateNowResult{}, nil
}
func (nopApp) Account(context.Context, contract.Person) (contract.PersonAccount, error) {
	return contract.PersonAccount{}, nil
}
