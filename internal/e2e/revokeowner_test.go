package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/functionapp"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
)

// Found by TestFaultCampaign (seed 16): an offboarding rotation that dies after storing
// the new version but before scheduling the revocation of the person's PAT is finished
// by the redelivered command, which finds its work done and schedules the revocation —
// without the PAT's owner, which only the replaced version recorded. Revoked as the
// service account's own, the person's PAT "was not found" and stayed active. The
// revocation must take the owner from the vault's history and revoke it through token
// administration.
func TestACrashBeforeTheRevocationIsScheduledStillRevokesThePersonsPAT(t *testing.T) {
	e := newEnv(t, envOptions{})
	const name = "alice-crash"
	personal := e.plantPersonal(e.personToken(), name)
	u, _ := e.st.Entra.User(campaignPerson)
	cmd := contract.RotationCommand{SchemaVersion: contract.SchemaVersion, Secret: name,
		OperationID: functionapp.OffboardingOpID("hr-crash", name), Trigger: contract.TriggerOffboarding,
		Person: &contract.Person{UPN: campaignPerson, ObjectID: u.ObjectID}, RequestedBy: "hr-offboarding hr-crash"}

	ctx, cancel := context.WithCancel(e.ctx)
	cp := &crashPoint{}
	cp.arm("store", cancel)
	crashing := e.appWith(e.rotator(crashStore{e.svc.Store, cp}, crashPATs{e.svc.PATs, cp}, crashIDs{e.svc.Identities, cp}, crashFX{e.svc.Effects, cp}))
	_ = crashing.Rotate(ctx, cmd)
	cancel()
	if !cp.disarm() {
		t.Fatal("the run never stored its version")
	}
	a := e.app()
	if err := a.Rotate(e.ctx, cmd); err != nil {
		t.Fatalf("the redelivered command: %v", err)
	}

	e.st.Clock.Advance(e.svc.Defaults.Grace + time.Minute)
	r, err := azservicebus.NewClientFromConnectionString(e.cfg.ServiceBusConnection, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(e.ctx)
	recv, err := r.NewReceiverForQueue(contract.QueueRevocations, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := recv.ReceiveMessages(e.ctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("no revocation to run: %d messages, %v", len(msgs), err)
	}
	rev, err := contract.DecodeRevocationCommand(msgs[0].Body)
	if err != nil || rev.PATID != personal {
		t.Fatalf("revocation of %s (%v); want the person's PAT %s", rev.PATID, err, personal)
	}
	if err := a.Revoke(e.ctx, rev); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	for _, p := range e.st.DevOps.PATs(org) {
		if p.AuthorizationID == personal && p.Status == devopsemu.StatusActive {
			t.Fatalf("the person's PAT %s is still active after its revocation ran", personal)
		}
	}
	e.assertConverged(name)
}
