package contract_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/functionapp"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// Messages of every released schema version, written by the release that sent them
// (testdata/compat/<version>/README.md), must decode in this version and lead to what
// they meant then. Scheduled revocations and wake-ups sit in the queues for up to a
// PAT's lifetime, so an upgrade meets them.

const (
	compatVersion = "0123456789abcdef0123456789abcdef"     // the secret version the v1 commands name
	compatPATID   = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a" // the PAT the v1 revocation names
	alice         = "alice@contoso.com"
	aliceOID      = "5a1c0a9e-3f2b-4c6d-8e7f-0a1b2c3d4e5f"
	svc           = "svc-build@contoso.com"
)

var (
	compatSent     = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	compatNow      = compatSent.Add(time.Hour) // the upgrade happened in between
	compatDefaults = rotation.Defaults{ServiceAccount: svc, Lifetime: 90 * 24 * time.Hour, Grace: 72 * time.Hour, RenewBefore: 30 * 24 * time.Hour,
		Bounds: rotation.Bounds{Orgs: []string{"contoso"}, ServiceAccounts: map[string][]string{svc: nil}, Scopes: []string{"vso.*"},
			MaxLifetime: 90 * 24 * time.Hour, MaxGrace: 7 * 24 * time.Hour}}
)

// compatSecret is a managed secret as v0.1.0 left it: its current version (the one the
// v1 commands name) is 80 days old, 10 days from expiry, and replaced compatPATID.
func compatSecret(name, owner string) rotation.Version {
	return rotation.Version{Name: name, ID: compatVersion, Enabled: true,
		Created: compatNow.Add(-80 * 24 * time.Hour), Expires: compatNow.Add(10 * 24 * time.Hour),
		Tags: map[string]string{
			rotation.TagManaged: "true", rotation.TagOrg: "contoso", rotation.TagScopes: "vso.code",
			rotation.TagServiceAccount: svc, rotation.TagOwner: owner,
			rotation.TagPATID: "11111111-2222-4333-8444-555555555555", rotation.TagPreviousPATID: compatPATID,
		}}
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "compat", "v1", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestV1RotationCommandsDecodeAndActAsTheyDid(t *testing.T) {
	build := compatSecret("pat-build", svc)
	legacy := compatSecret("pat-legacy", alice)
	for name, tc := range map[string]struct {
		file      string
		secret    rotation.Version
		trigger   contract.Trigger
		op        string // the v1 operation id; the same derivation in this version must give it
		derivedOp string // "" when the op was not derived
		version   string
		by        string
		revokeNow bool
		person    *contract.Person
		// refused: this version must not act on it (and says why); else the core's action.
		refused bool
	}{
		"a scheduled wake-up still rotates the version it names": {
			file: "rotation-wake-up.json", secret: build, trigger: contract.TriggerWakeup, op: "wakeupop1",
			version: compatVersion, by: "patrol"},
		"a near-expiry command keeps its event's operation id": {
			file: "rotation-near-expiry.json", secret: build, trigger: contract.TriggerNearExpiry, op: "5o7freaoehzmespq",
			derivedOp: functionapp.EventOpID(rotation.TriggerNearExpiry, "pat-build", compatVersion), version: compatVersion, by: "keyvault-event"},
		"a sweep command keeps the sweep's operation id": {
			file: "rotation-sweep.json", secret: build, trigger: contract.TriggerSweep, op: "mplalqei7sfoiyqm",
			derivedOp: rotation.SweepOpID(rotation.PlanRow{Secret: "pat-build", Version: compatVersion}), version: compatVersion, by: "sweep"},
		"an offboarding command re-issues the leaver's PAT": {
			file: "rotation-offboarding.json", secret: legacy, trigger: contract.TriggerOffboarding, op: "pxyue7rxggsww7il",
			derivedOp: functionapp.OffboardingOpID("hr-2026-0042", "pat-legacy"), by: "hr-offboarding hr-2026-0042",
			person: &contract.Person{UPN: alice, ObjectID: aliceOID}},
		"an unsigned manual command from v0.1.0's RotateNow is refused": {
			file: "rotation-manual-unsigned.json", secret: build, trigger: contract.TriggerManual, op: "manualop1", by: "RotateNow",
			refused: true},
		"an unsigned revokeNow from v0.1.0's RotateNow is refused": {
			file: "rotation-manual-revoke-now-unsigned.json", secret: build, trigger: contract.TriggerManual, op: "manualop2",
			by: "ops@contoso.com", revokeNow: true, refused: true},
	} {
		t.Run(name, func(t *testing.T) {
			cmd, err := contract.DecodeRotationCommand(golden(t, tc.file))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if cmd.SchemaVersion != "1" || cmd.Secret != tc.secret.Name || cmd.OperationID != tc.op || cmd.Trigger != tc.trigger ||
				cmd.Version != tc.version || cmd.RequestedBy != tc.by || !cmd.RequestedAt.Equal(compatSent) || cmd.RevokeNow != tc.revokeNow {
				t.Errorf("decoded %+v", cmd)
			}
			if (cmd.Person == nil) != (tc.person == nil) || cmd.Person != nil && *cmd.Person != *tc.person {
				t.Errorf("person = %+v, want %+v", cmd.Person, tc.person)
			}
			if tc.derivedOp != "" && tc.derivedOp != tc.op {
				t.Errorf("this version derives operation id %s where v1 derived %s: a redelivered trigger would no longer collapse with the queued command", tc.derivedOp, tc.op)
			}

			// What the Rotate function does with it: a command that must be signed is
			// verified first (functionapp's verify: no signature is refused with no key
			// looked up); the rest go to the core's decision.
			if cmd.NeedsSignature() != tc.refused {
				t.Fatalf("NeedsSignature = %v, want %v", cmd.NeedsSignature(), tc.refused)
			}
			if tc.refused {
				if err := cmd.Verify(contract.CommandKey{}, compatNow); !errors.Is(err, contract.ErrUnauthenticated) {
					t.Errorf("verify an unsigned v1 %s command: %v, want ErrUnauthenticated", cmd.Trigger, err)
				}
				return
			}
			in := rotation.Input{Exists: true, Current: tc.secret, Defaults: compatDefaults}
			if d := rotation.Decide(in, functionapp.TriggerOf(cmd), compatNow); d.Action != rotation.ActionRotate {
				t.Errorf("the core decides %s (%s: %s), want rotate", d.Action, d.Reason, d.Message)
			}
		})
	}
}

func TestV1RevocationStillRevokesThePATOnRecord(t *testing.T) {
	cmd, err := contract.DecodeRevocationCommand(golden(t, "revocation.json"))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := contract.RevocationCommand{SchemaVersion: "1", Secret: "pat-build", Org: "contoso", PATID: compatPATID,
		Owner: svc, Account: svc, OperationID: "rotateop1"}
	if cmd != want {
		t.Errorf("decoded %+v, want %+v", cmd, want)
	}
	if r := functionapp.RevocationOf(cmd); r.Secret != "pat-build" || r.PATID != compatPATID || r.Account != svc || r.Owner != svc || r.Op != "rotateop1" {
		t.Errorf("the core's revocation is %+v", r)
	}
	// The Revoke function's check: the PAT the old version replaced is on record.
	secret := compatSecret("pat-build", svc)
	in := rotation.Input{Exists: true, Current: secret, Defaults: compatDefaults}
	if why := functionapp.OnRecord(cmd, in, []rotation.Version{secret}, nil, compatDefaults); why != "" {
		t.Errorf("the v1 revocation is refused: %s", why)
	}
}

func TestV1OffboardingMessageFansOutAsItDid(t *testing.T) {
	msg, err := contract.DecodeOffboardingMessage(golden(t, "offboarding.json"))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if msg.SchemaVersion != "1" || msg.EventID != "hr-2026-0042" || msg.Person.UPN != alice || msg.Person.ObjectID != aliceOID ||
		!msg.EffectiveAt.Equal(compatSent) || msg.Reason != "leaver" {
		t.Errorf("decoded %+v", msg)
	}
	plan := functionapp.PlanOffboarding(msg, []rotation.Version{compatSecret("pat-build", svc), compatSecret("pat-legacy", alice)}, compatDefaults, compatNow)
	if len(plan.Commands) != 1 || len(plan.Attention) != 0 {
		t.Fatalf("plan: %d commands, %d needing attention; want one command (alice owns pat-legacy only)", len(plan.Commands), len(plan.Attention))
	}
	// The command this version sends is the one v0.1.0 sent for the same HR event, by
	// operation id, so a redelivery across the upgrade is dropped as a duplicate.
	old, err := contract.DecodeRotationCommand(golden(t, "rotation-offboarding.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := plan.Commands[0]
	if got.Secret != old.Secret || got.OperationID != old.OperationID || got.Trigger != old.Trigger || got.Person == nil || *got.Person != *old.Person {
		t.Errorf("this version sends %+v for the v1 HR message, v0.1.0 sent %+v", got, old)
	}
}
