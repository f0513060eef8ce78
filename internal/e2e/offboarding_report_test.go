package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/functionapp"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/wiring"
)

// app is the function app as `patrol serve` builds it, on this stack, with the
// account tests' two organizations and the given unmanaged-PAT policy.
func (a *accountEnv) app(policy functionapp.UnmanagedPolicy) *functionapp.App {
	a.t.Helper()
	app, err := functionapp.New(functionapp.Options{
		Rotator: a.svc.Rotator, Inventory: a.svc.Store, Commands: a.svc.Bus, Publisher: a.svc.Bus,
		People: wiring.People{PATs: a.svc.PATs, Identities: a.svc.Identities}, Unmanaged: policy,
		Defaults: a.d, Clock: a.opts.Clock, CommandKeys: a.svc.Store.CommandKeys(), History: a.svc.Store, Logger: a.opts.Logger,
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return app
}

func (a *accountEnv) offboard(app *functionapp.App, eventID string) {
	a.t.Helper()
	if err := app.Offboard(a.ctx, contract.OffboardingMessage{SchemaVersion: contract.SchemaVersion, EventID: eventID, Person: a.person}); err != nil {
		a.t.Fatalf("offboard: %v", err)
	}
}

// receiveReport takes the offboarding-report outcome off pat-events (subscription all).
func (e *env) receiveReport() contract.Outcome {
	e.t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(e.cfg.ServiceBusConnection, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close(context.Background())
	r, err := c.NewReceiverForSubscription(contract.TopicEvents, "all", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	for {
		ms, err := r.ReceiveMessages(ctx, 10, nil)
		if err != nil {
			e.t.Fatalf("no offboarding-report on %s: %v", contract.TopicEvents, err)
		}
		for _, m := range ms {
			_ = r.CompleteMessage(ctx, m, nil)
			if m.Subject == nil || *m.Subject != string(contract.StatusOffboardingReport) {
				continue
			}
			o := rotation.Outcome{}
			if err := o.UnmarshalJSON(m.Body); err != nil || o.Account == nil {
				e.t.Fatalf("the report's body: %v", err)
			}
			return o.Contract()
		}
	}
}

func TestOffboardingPublishesTheAccountAcrossTwoOrganizationsAndTouchesNoUnmanagedPATByDefault(t *testing.T) {
	a := newAccountEnv(t)
	held := a.alicePAT(org, "feed", "pat-feed", account)
	own := a.alicePAT(org2, "agent", "pat-agent", stack.Person)
	loose := a.alicePAT(org2, "release pipeline", "", "")
	a.offboard(a.app(functionapp.UnmanagedReport), "hr-report")

	r := a.receiveReport()
	if r.OperationID != functionapp.ReportOpID("hr-report") || r.Account.EventID != "hr-report" || len(r.Account.Organizations) != 2 {
		t.Fatalf("report %+v", r)
	}
	got := patsByID(*r.Account)
	for id, want := range map[string]contract.PATClass{held: contract.PATManaged, own: contract.PATServiceAccount, loose: contract.PATUnmanaged} {
		if got[id].Class != want {
			t.Errorf("PAT %s is %q in the report, want %s", id, got[id].Class, want)
		}
	}
	if n := len(a.messages(contract.QueueRevocations)); n != 0 {
		t.Errorf("report only, yet %d revocations were sent", n)
	}
	if !a.st.DevOps.IsActive(loose) {
		t.Error("report only, yet the unmanaged PAT was revoked")
	}
	if n := len(a.messages(contract.QueueRotations)); n != 1 {
		t.Errorf("%d re-issues queued, want 1 (pat-feed)", n)
	}
}

func TestRevokeNowRevokesAnUnmanagedPATThroughASignedRevocation(t *testing.T) {
	a := newAccountEnv(t)
	loose := a.alicePAT(org, "release pipeline", "", "")
	app := a.app(functionapp.UnmanagedRevokeNow)
	a.offboard(app, "hr-now")
	if p := patsByID(*a.receiveReport().Account)[loose]; p.Class != contract.PATUnmanaged || p.RevokeAt.IsZero() {
		t.Errorf("the report says %+v, want the unmanaged PAT with its revocation time", p)
	}
	cmd := a.receiveRevocation()
	if cmd.Kind != contract.RevokeUnmanaged || cmd.PATID != loose || cmd.Signature == nil {
		t.Fatalf("revocation %+v, want a signed one of %s", cmd, loose)
	}

	forged := cmd
	forged.Signature = nil
	if err := app.Revoke(a.ctx, forged); !errors.Is(err, handlers.ErrPermanent) || !a.st.DevOps.IsActive(loose) {
		t.Fatalf("an unsigned copy: %v; the PAT active %v; want a refusal", err, a.st.DevOps.IsActive(loose))
	}
	if err := app.Revoke(a.ctx, cmd); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if a.st.DevOps.IsActive(loose) {
		t.Error("the unmanaged PAT is still active")
	}
	if err := app.Revoke(a.ctx, cmd); err != nil {
		t.Errorf("a redelivered revocation: %v, want success (nothing left to revoke)", err)
	}
}

func TestRevokeAfterGraceSchedulesTheRevocationForTheEndOfTheGrace(t *testing.T) {
	a := newAccountEnv(t)
	loose := a.alicePAT(org, "release pipeline", "", "")
	app := a.app(functionapp.UnmanagedRevokeAfterGrace)
	a.offboard(app, "hr-grace")
	a.receiveReport()
	if ids := a.messages(contract.QueueRevocations); len(ids) != 1 || ids[0] != functionapp.UnmanagedOpID("hr-grace", loose) {
		t.Fatalf("pat-revocations holds %v, want the one revocation", ids)
	}
	a.st.Clock.Advance(a.d.Grace + time.Minute)
	a.forgetAccessTokens() // a new process, a day later
	app = a.app(functionapp.UnmanagedRevokeAfterGrace)
	cmd := a.receiveRevocation()
	// A report-only instance refuses the same command: the setting is checked where it
	// runs, too.
	if err := a.app(functionapp.UnmanagedReport).Revoke(a.ctx, cmd); !errors.Is(err, handlers.ErrPermanent) || !a.st.DevOps.IsActive(loose) {
		t.Fatalf("on a report-only instance: %v, want a refusal", err)
	}
	if err := app.Revoke(a.ctx, cmd); err != nil {
		t.Fatalf("revoke after the grace: %v", err)
	}
	if a.st.DevOps.IsActive(loose) {
		t.Error("the unmanaged PAT is still active after its grace")
	}
}
