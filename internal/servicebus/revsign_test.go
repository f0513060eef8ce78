package servicebus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/servicebus"
)

type fixedKey struct{ k contract.CommandKey }

func (f fixedKey) SigningKey(context.Context) (contract.CommandKey, error) { return f.k, nil }

// Only the revocation a revokeNow schedules before the grace end carries a signature;
// the one at the grace end, which the schedule would make anyway, does not.
func TestOnlyAnEarlyRevocationIsSigned(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := contract.NewCommandKey("0123456789abcdef0123456789abcdef", []byte(strings.Repeat("k", contract.CommandKeySize)))
	bus, err := servicebus.NewFromConnectionString(f.b.ConnectionString(), servicebus.Options{
		Clock: rotation.NowFunc(f.clk.Now), RetryDelay: time.Millisecond, CommandKeys: fixedKey{key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close(ctx) })
	graceEnd := start.Add(24 * time.Hour)
	early := rotation.Revocation{Secret: "feed", Org: "contoso", PATID: patID, Account: "svc-build@contoso.com", Op: "op1", GraceEnd: graceEnd}
	due := early
	due.PATID = "1f8fad5b-d9cb-469f-a165-70867728950e"
	if err := bus.ScheduleRevocation(ctx, early, start); err != nil {
		t.Fatal(err)
	}
	if err := bus.ScheduleRevocation(ctx, due, graceEnd); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(25 * time.Hour)
	r, err := f.client.NewReceiverForQueue(contract.QueueRevocations, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.receive(t, r, 2) {
		cmd, err := contract.DecodeRevocationCommand(m.Body)
		if err != nil {
			t.Fatalf("the handler cannot decode it: %v", err)
		}
		switch cmd.PATID {
		case early.PATID:
			if err := cmd.Verify(key, start.Add(time.Minute)); err != nil {
				t.Errorf("the early revocation does not verify: %v", err)
			}
		case due.PATID:
			if cmd.Signature != nil || !cmd.RequestedAt.IsZero() {
				t.Errorf("the revocation at the grace end is signed: %+v", cmd)
			}
		}
	}
}

type keyErr struct{ permanent bool }

func (e keyErr) Error() string   { return "keyvault: get secret patrol-command-key: 403 Forbidden" }
func (e keyErr) Permanent() bool { return e.permanent }

type failingKeys struct{ err error }

func (f failingKeys) SigningKey(context.Context) (contract.CommandKey, error) {
	return contract.CommandKey{}, f.err
}

// A key patrol may not read leaves the early revocation unsigned (Revoke defers it to
// the grace end) instead of failing the rotation for good; a passing failure is retried.
func TestAnEarlyRevocationWithoutAReadableKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	early := rotation.Revocation{Secret: "feed", Org: "contoso", PATID: patID, Account: "svc-build@contoso.com", Op: "op1", GraceEnd: start.Add(24 * time.Hour)}
	for name, tc := range map[string]struct {
		err     error
		wantErr bool
	}{
		"a key this identity may not read: sent unsigned": {keyErr{permanent: true}, false},
		"a key that cannot be read just now: retried":     {keyErr{permanent: false}, true},
	} {
		t.Run(name, func(t *testing.T) {
			bus, err := servicebus.NewFromConnectionString(f.b.ConnectionString(), servicebus.Options{
				Clock: rotation.NowFunc(f.clk.Now), RetryDelay: time.Millisecond, CommandKeys: failingKeys{tc.err}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = bus.Close(ctx) })
			if err := bus.ScheduleRevocation(ctx, early, start); (err != nil) != tc.wantErr {
				t.Errorf("ScheduleRevocation: %v, want an error %v", err, tc.wantErr)
			}
		})
	}
	r, err := f.client.NewReceiverForQueue(contract.QueueRevocations, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := f.receive(t, r, 1)[0]
	if cmd, err := contract.DecodeRevocationCommand(m.Body); err != nil || cmd.Signature != nil {
		t.Errorf("sent %+v (%v), want the revocation unsigned", cmd, err)
	}
}
