package functionapp

import (
	"slices"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const (
	ver1 = "0123456789abcdef0123456789abcdef"
	ver2 = "fedcba9876543210fedcba9876543210"
	pat1 = "11111111-2222-4333-8444-555555555555"
	pat2 = "66666666-7777-4888-8999-aaaaaaaaaaaa"
)

var defaults = rotation.Defaults{ServiceAccount: "svc-build@contoso.com", Lifetime: 90 * 24 * time.Hour, Grace: 24 * time.Hour, RenewBefore: 14 * 24 * time.Hour,
	Bounds: rotation.Bounds{Orgs: []string{"contoso"}, ServiceAccounts: map[string][]string{"svc-build@contoso.com": nil}, Scopes: []string{"vso.*"}, MaxLifetime: 90 * 24 * time.Hour, MaxGrace: 7 * 24 * time.Hour}}

func managed(name, version string, extra map[string]string) rotation.Version {
	tags := map[string]string{rotation.TagManaged: "true", rotation.TagOrg: "contoso", rotation.TagScopes: "vso.code",
		rotation.TagOwner: "svc-build@contoso.com", rotation.TagPATID: pat1}
	for k, v := range extra {
		if v == "" {
			delete(tags, k)
			continue
		}
		tags[k] = v
	}
	return rotation.Version{Name: name, ID: version, Enabled: true, Created: now.Add(-80 * 24 * time.Hour), Expires: now.Add(10 * 24 * time.Hour), Tags: tags}
}

func disabled(v rotation.Version) rotation.Version {
	v.Enabled = false
	return v
}

func TestEventCommand(t *testing.T) {
	ev := func(typ, version string) handlers.KeyVaultEvent {
		return handlers.KeyVaultEvent{ID: "ev-1", Type: typ, VaultName: "patrol", Secret: "pat-build", Version: version}
	}
	disabled := managed("pat-build", ver1, nil)
	disabled.Enabled = false
	nearOp := EventOpID(rotation.TriggerNearExpiry, "pat-build", ver1)
	tests := map[string]struct {
		ev      handlers.KeyVaultEvent
		in      rotation.Input
		vault   string
		skip    string
		trigger contract.Trigger
	}{
		"a near-expiry event for the current version of a managed secret enqueues a near-expiry command": {
			ev: ev(handlers.EventSecretNearExpiry, ver1), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, nil)},
			vault: "patrol", trigger: contract.TriggerNearExpiry},
		"an expired event enqueues an expired command": {
			ev: ev(handlers.EventSecretExpired, ver1), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, nil)},
			trigger: contract.TriggerExpired},
		"an event naming the version in upper case still matches": {
			ev: ev(handlers.EventSecretNearExpiry, "0123456789ABCDEF0123456789ABCDEF"), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, nil)},
			trigger: contract.TriggerNearExpiry},
		"an event for a version that is no longer current is skipped": {
			ev: ev(handlers.EventSecretNearExpiry, ver2), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, nil)},
			skip: SkipStaleVersion},
		"an event for a secret without patrol-managed is skipped": {
			ev: ev(handlers.EventSecretNearExpiry, ver1), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, map[string]string{rotation.TagManaged: "false"})},
			skip: SkipNotManaged},
		"an event for a deleted secret is skipped": {
			ev: ev(handlers.EventSecretNearExpiry, ver1), in: rotation.Input{}, skip: SkipMissing},
		"an event for a disabled version is skipped": {
			ev: ev(handlers.EventSecretNearExpiry, ver1), in: rotation.Input{Exists: true, Current: disabled}, skip: SkipDisabled},
		"an event from another vault is skipped": {
			ev: ev(handlers.EventSecretNearExpiry, ver1), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, nil)},
			vault: "other", skip: SkipOtherVault},
		"an event type patrol does not act on is skipped": {
			ev: ev("Microsoft.KeyVault.SecretNewVersionCreated", ver1), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, nil)},
			skip: SkipUnhandledType},
		"an event whose command already wrote the current version is skipped": {
			ev: ev(handlers.EventSecretNearExpiry, ver1), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, map[string]string{rotation.TagOp: nearOp})},
			skip: SkipAlreadyDone},
		// The core's admission order: already done before stale. The command's own
		// rotation replaced the version, so the redelivered event is done, not stale.
		"a redelivered event whose rotation replaced the version is already done, not stale": {
			ev: ev(handlers.EventSecretNearExpiry, ver1), in: rotation.Input{Exists: true, Current: managed("pat-build", ver2, map[string]string{rotation.TagOp: nearOp})},
			skip: SkipAlreadyDone},
		"an event for a secret with unreadable state tags is enqueued, for the worker to report": {
			ev: ev(handlers.EventSecretNearExpiry, ver1), in: rotation.Input{Exists: true, Current: managed("pat-build", ver1, map[string]string{rotation.TagPATID: "not-a-guid"})},
			trigger: contract.TriggerNearExpiry},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cmd, skip := EventCommand(tc.ev, tc.in, tc.vault, now)
			if skip != tc.skip {
				t.Fatalf("skip = %q, want %q", skip, tc.skip)
			}
			if tc.skip != "" {
				return
			}
			if cmd.Trigger != tc.trigger || cmd.Secret != "pat-build" || cmd.Version != ver1 {
				t.Errorf("command = %+v, want trigger %s for pat-build version %s", cmd, tc.trigger, ver1)
			}
			if want := EventOpID(rotation.TriggerKind(tc.trigger), "pat-build", ver1); cmd.OperationID != want {
				t.Errorf("operation id = %q, want the derived %q", cmd.OperationID, want)
			}
			if err := cmd.Validate(); err != nil {
				t.Errorf("the command does not validate: %v", err)
			}
		})
	}
}

func TestTheSameEventTwiceIsOneOperation(t *testing.T) {
	in := rotation.Input{Exists: true, Current: managed("pat-build", ver1, nil)}
	ev := handlers.KeyVaultEvent{ID: "a", Type: handlers.EventSecretNearExpiry, Secret: "pat-build", Version: ver1}
	a, _ := EventCommand(ev, in, "", now)
	ev.ID = "b" // Event Grid redelivers with the same id; a re-raised event has another
	b, _ := EventCommand(ev, in, "", now.Add(time.Hour))
	if a.OperationID != b.OperationID {
		t.Errorf("operation ids differ: %q vs %q; the queue could not drop the duplicate", a.OperationID, b.OperationID)
	}
	expired, _ := EventCommand(handlers.KeyVaultEvent{Type: handlers.EventSecretExpired, Secret: "pat-build", Version: ver1}, in, "", now)
	if expired.OperationID == a.OperationID {
		t.Error("near-expiry and expired for one version share an operation id")
	}
}

func TestPlanOffboarding(t *testing.T) {
	const aliceOID = "0b8f5e52-3c1d-4a7e-9f60-1d2c3b4a5e6f"
	alice := contract.OffboardingMessage{EventID: "hr-42", Person: contract.Person{UPN: "alice@contoso.com", ObjectID: aliceOID}}
	tests := map[string]struct {
		msg       contract.OffboardingMessage
		versions  []rotation.Version
		d         rotation.Defaults
		commands  []string
		attention []string
	}{
		"a secret whose current PAT the person owns gets one command": {
			msg: alice, versions: []rotation.Version{managed("pat-a", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com"})},
			commands: []string{"pat-a"}},
		"the owner matches whatever the case of the UPN": {
			msg: alice, versions: []rotation.Version{managed("pat-a", ver1, map[string]string{rotation.TagOwner: "Alice@Contoso.com"})},
			commands: []string{"pat-a"}},
		"the owner matches by object id": {
			msg: alice, versions: []rotation.Version{managed("pat-a", ver1, map[string]string{rotation.TagOwner: aliceOID})},
			commands: []string{"pat-a"}},
		"secrets owned by the service account are left alone": {
			msg: alice, versions: []rotation.Version{managed("pat-a", ver1, nil), managed("pat-b", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com"})},
			commands: []string{"pat-b"}},
		"a secret whose service account is the person needs attention instead": {
			msg: alice, versions: []rotation.Version{managed("pat-a", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com", rotation.TagServiceAccount: "alice@contoso.com"})},
			attention: []string{"pat-a"}},
		"the default service account counts when the secret names none": {
			msg: alice, d: rotation.Defaults{ServiceAccount: "alice@contoso.com"},
			versions:  []rotation.Version{managed("pat-a", ver1, map[string]string{rotation.TagOwner: "", rotation.TagPATID: ""})},
			attention: []string{"pat-a"}},
		"a person owning nothing yields nothing": {
			msg: alice, versions: []rotation.Version{managed("pat-a", ver1, nil)}},
		"a disabled secret is left alone, as the Rotate worker would leave it": {
			msg: alice, versions: []rotation.Version{disabled(managed("pat-a", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com"}))}},
		"a secret this HR event already rotated is left alone": {
			msg: alice, versions: []rotation.Version{managed("pat-a", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com", rotation.TagOp: OffboardingOpID("hr-42", "pat-a")})}},
		"unmanaged secrets are never touched": {
			msg: alice, versions: []rotation.Version{managed("pat-a", ver1, map[string]string{rotation.TagManaged: "", rotation.TagOwner: "alice@contoso.com"})}},
		"commands come sorted by secret": {
			msg: alice, versions: []rotation.Version{
				managed("pat-c", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com"}),
				managed("pat-a", ver1, map[string]string{rotation.TagOwner: "alice@contoso.com"}),
			},
			commands: []string{"pat-a", "pat-c"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := tc.d
			if d.ServiceAccount == "" {
				d = defaults
			}
			p := PlanOffboarding(tc.msg, tc.versions, d, now)
			var got, att []string
			for _, c := range p.Commands {
				got = append(got, c.Secret)
				if c.OperationID != OffboardingOpID(tc.msg.EventID, c.Secret) {
					t.Errorf("%s: operation id %q is not derived from (event, secret)", c.Secret, c.OperationID)
				}
				if err := c.Validate(); err != nil {
					t.Errorf("%s: command does not validate: %v", c.Secret, err)
				}
			}
			for _, o := range p.Attention {
				att = append(att, o.Secret)
				if o.Status != rotation.StatusNeedsAttention || o.Reason != rotation.ReasonServiceAccountOffboarded {
					t.Errorf("%s: outcome %s/%s, want needs-attention/%s", o.Secret, o.Status, o.Reason, rotation.ReasonServiceAccountOffboarded)
				}
			}
			if !slices.Equal(got, tc.commands) || !slices.Equal(att, tc.attention) {
				t.Errorf("commands %v attention %v, want %v and %v", got, att, tc.commands, tc.attention)
			}
		})
	}
}

func TestOffboardingOperationIDs(t *testing.T) {
	if first, again := OffboardingOpID("hr-1", "pat-a"), OffboardingOpID("hr-1", "pat-a"); first != again {
		t.Error("the same HR event and secret give different ids: a redelivered message would rotate twice")
	}
	if OffboardingOpID("hr-1", "pat-a") == OffboardingOpID("hr-1", "pat-b") || OffboardingOpID("hr-1", "pat-a") == OffboardingOpID("hr-2", "pat-a") {
		t.Error("different secrets or HR events share an operation id")
	}
}

func TestSweepCommands(t *testing.T) {
	due := managed("pat-due", ver1, nil)
	due.Expires = now.Add(24 * time.Hour)
	later := managed("pat-later", ver2, nil)
	later.Expires = now.Add(60 * 24 * time.Hour)
	rows := rotation.Plan([]rotation.Version{due, later}, defaults, now)
	cmds := SweepCommands(rows, now)
	if len(cmds) != 1 || cmds[0].Secret != "pat-due" || cmds[0].Version != ver1 || cmds[0].Trigger != contract.TriggerSweep {
		t.Fatalf("commands = %+v, want one sweep command for pat-due version %s", cmds, ver1)
	}
	if cmds[0].OperationID != rotation.SweepOpID(rows[0]) {
		t.Errorf("operation id %q is not the core's SweepOpID", cmds[0].OperationID)
	}
	if err := cmds[0].Validate(); err != nil {
		t.Error(err)
	}
}

func TestOrphanRevocations(t *testing.T) {
	current := managed("pat-a", ver1, nil) // holds pat1
	g := AccountOrg{Account: "svc-build@contoso.com", Org: "contoso"}
	old := now.Add(-2 * time.Hour)
	tests := map[string]struct {
		pat  rotation.PATInfo
		want bool
	}{
		"a patrol PAT no secret holds is revoked under the operation its name carries": {
			pat: rotation.PATInfo{ID: pat2, DisplayName: rotation.DisplayName("pat-a", "abcdefghijklmnop"), ValidFrom: old}, want: true},
		"the current PAT of a secret is kept": {
			pat: rotation.PATInfo{ID: pat1, DisplayName: rotation.DisplayName("pat-a", "abcdefghijklmnop"), ValidFrom: old}},
		"a PAT patrol did not name is never touched": {
			pat: rotation.PATInfo{ID: pat2, DisplayName: "my laptop", ValidFrom: old}},
		"an orphan named for a secret patrol does not manage is left (Revoke would refuse it)": {
			pat: rotation.PATInfo{ID: pat2, DisplayName: rotation.DisplayName("gone", "abcdefghijklmnop"), ValidFrom: old}},
		"a PAT created minutes ago may belong to a rotation in flight and is kept": {
			pat: rotation.PATInfo{ID: pat2, DisplayName: rotation.DisplayName("pat-a", "abcdefghijklmnop"), ValidFrom: now.Add(-time.Minute)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			revs := OrphanRevocations([]rotation.PATInfo{tc.pat}, []rotation.Version{current}, defaults, g, now)
			if got := len(revs) == 1; got != tc.want {
				t.Fatalf("revocations = %+v, want one: %v", revs, tc.want)
			}
			if tc.want {
				r := revs[0]
				if r.Secret != "pat-a" || r.Op != "abcdefghijklmnop" || r.PATID != pat2 || r.Account != g.Account || r.Org != "contoso" {
					t.Errorf("revocation = %+v", r)
				}
			}
		})
	}
}

func TestCheckRotatable(t *testing.T) {
	off := managed("pat-a", ver1, nil)
	off.Enabled = false
	tests := map[string]struct {
		in   rotation.Input
		want handlers.Class
		ok   bool
	}{
		"a managed, enabled secret can be rotated":    {in: rotation.Input{Exists: true, Current: managed("pat-a", ver1, nil)}, ok: true},
		"a secret that does not exist is a 404":       {in: rotation.Input{}, want: handlers.NotFound},
		"a secret patrol does not manage is a 409":    {in: rotation.Input{Exists: true, Current: managed("pat-a", ver1, map[string]string{rotation.TagManaged: ""})}, want: handlers.Conflict},
		"a secret whose version is disabled is a 409": {in: rotation.Input{Exists: true, Current: off}, want: handlers.Conflict},
		"a secret with unreadable state tags is accepted, for the worker to report": {
			in: rotation.Input{Exists: true, Current: managed("pat-a", ver1, map[string]string{rotation.TagPATID: "not-a-guid"})}, ok: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckRotatable("pat-a", tc.in)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || handlers.Classify(err) != tc.want {
				t.Fatalf("err = %v (class %v), want class %v", err, classOf(err), tc.want)
			}
		})
	}
}

func classOf(err error) string {
	if err == nil {
		return "none"
	}
	return handlers.Classify(err).String()
}
