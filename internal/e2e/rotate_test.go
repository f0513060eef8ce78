package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

func TestAdoptThenRotateThenStatus(t *testing.T) {
	e := newEnv(t, envOptions{})
	const secret = "build-feed-pat"

	adopted := e.mustAdopt(secret)
	first := e.assertConverged(secret)
	if adopted.PATID != first {
		t.Fatalf("adopt reported PAT %s, the vault holds %s", adopted.PATID, first)
	}
	if adopted.NextCheck.IsZero() || !adopted.NextCheck.Before(adopted.Expires) {
		t.Errorf("adopt scheduled the next check at %v, want before expiry %v", adopted.NextCheck, adopted.Expires)
	}

	rotated, err := e.rotate(secret, rotation.NewOpID())
	if err != nil || rotated.Status != rotation.StatusRotated {
		t.Fatalf("rotate: %s %v", rotated.Status, err)
	}
	second := e.assertConverged(secret)
	if second == first || rotated.PreviousPATID != first {
		t.Fatalf("rotate: new PAT %s replacing %s; first was %s", second, rotated.PreviousPATID, first)
	}
	// The replaced PAT stays valid through the grace period, with its revocation
	// scheduled for then on pat-revocations.
	if !e.st.DevOps.IsActive(first) {
		t.Errorf("the replaced PAT was revoked before its grace period")
	}
	if !e.scheduled("pat-revocations", "revoke-"+first) {
		t.Errorf("no revocation scheduled for %s; pat-revocations holds %v", first, e.messages("pat-revocations"))
	}
	// Both outcomes were published.
	if n := len(e.messages("pat-events/Subscriptions/all")); n != 2 {
		t.Errorf("pat-events/Subscriptions/all holds %d outcomes, want 2 (adopted, rotated)", n)
	}

	versions, err := e.svc.Store.ListManaged(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows := rotation.Plan(versions, e.svc.Defaults, e.st.Clock.Now())
	if len(rows) != 1 {
		t.Fatalf("status lists %d secrets, want 1: %+v", len(rows), rows)
	}
	r := rows[0]
	if r.Secret != secret || r.Org != org || r.Owner != account || r.Action != rotation.ActionWait || r.DaysLeft < 89 {
		t.Fatalf("status row = %+v", r)
	}
	if want := rotated.Expires.Add(-30 * 24 * time.Hour); !r.At.Equal(want) {
		t.Errorf("next action at %v, want the renew window's start %v", r.At, want)
	}

	// After the grace period the revocation comes due on pat-revocations; the Revoke
	// function's work retires the first PAT. (A fresh process an hour later: its
	// token comes from a refresh, as MSAL's wall clock has not moved.)
	e.st.Clock.Advance(config.DefaultGrace + time.Hour)
	e.forgetAccessTokens()
	cmd := e.receiveRevocation()
	if cmd.PATID != first || cmd.Secret != secret {
		t.Fatalf("revocation for %s of %s, want %s of %s", cmd.PATID, cmd.Secret, first, secret)
	}
	o, err := e.svc.Rotator.Revoke(e.ctx, rotation.Revocation{Secret: cmd.Secret, Org: cmd.Org, PATID: cmd.PATID, Owner: cmd.Owner, Account: cmd.Account, Op: cmd.OperationID})
	if err != nil || o.Status != rotation.StatusRevoked {
		t.Fatalf("revoke: %s %v", o.Status, err)
	}
	if e.st.DevOps.IsActive(first) || !e.st.DevOps.IsActive(second) {
		t.Errorf("after the revocation: first active %v, second active %v", e.st.DevOps.IsActive(first), e.st.DevOps.IsActive(second))
	}
	if n := len(e.activePATs(secret)); n != 1 {
		t.Errorf("%d active PATs, want 1", n)
	}
}

func TestAPasswordSignInWorksWhereAllowed(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	e.allowROPC()
	e.mustAdopt("ropc")
	e.assertConverged("ropc")
}

// receiveRevocation takes the next due message off pat-revocations as the Functions
// host would, completes it, and decodes it with the contract's decoder (the one the handler uses).
func (e *env) receiveRevocation() contract.RevocationCommand {
	e.t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(e.cfg.ServiceBusConnection, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close(context.Background())
	r, err := c.NewReceiverForQueue("pat-revocations", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	ms, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(ms) != 1 {
		e.t.Fatalf("receive a revocation: %d messages, %v", len(ms), err)
	}
	if err := r.CompleteMessage(ctx, ms[0], nil); err != nil {
		e.t.Fatal(err)
	}
	cmd, err := contract.DecodeRevocationCommand(ms[0].Body)
	if err != nil {
		e.t.Fatalf("the handler cannot decode the revocation: %v", err)
	}
	return cmd
}
