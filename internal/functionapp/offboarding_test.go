package functionapp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

func unmanagedAccount(eventID string) contract.PersonAccount {
	return contract.PersonAccount{Person: alice, EventID: eventID, Time: now, Organizations: []contract.OrgAccount{{
		Org: "contoso", ListedBy: "svc-build@contoso.com", PATs: []contract.AccountPAT{
			{PATID: pat1, Org: "contoso", Class: contract.PATUnmanaged, Action: "report only"},
			{PATID: pat2, Org: "contoso", Class: contract.PATManaged, Secret: "pat-a", Action: "re-issue"},
		}}}}
}

func TestApplyUnmanaged(t *testing.T) {
	grace := 24 * time.Hour
	tests := map[string]struct {
		eventID  string
		policy   UnmanagedPolicy
		commands int
		at       time.Time // the revocation's time, when one is sent
		action   string    // the start of the unmanaged PAT's action
	}{
		"report touches nothing and says so":                   {eventID: "hr-1", policy: UnmanagedReport, action: "report only"},
		"revoke-now on offboarding sends a revocation for now": {eventID: "hr-1", policy: UnmanagedRevokeNow, commands: 1, at: now, action: "revocation queued for " + now.Format(time.RFC3339)},
		"revoke-after-grace on offboarding sends one for after the grace": {
			eventID: "hr-1", policy: UnmanagedRevokeAfterGrace, commands: 1, at: now.Add(grace), action: "revocation queued for " + now.Add(grace).Format(time.RFC3339)},
		"a live account only says what an offboarding would do": {policy: UnmanagedRevokeAfterGrace, action: "an offboarding revokes it 24h0m0s later"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := unmanagedAccount(tc.eventID)
			acc, cmds := ApplyUnmanaged(in, tc.policy, grace, now)
			if len(cmds) != tc.commands {
				t.Fatalf("%d commands, want %d", len(cmds), tc.commands)
			}
			if p := acc.Organizations[0].PATs[0]; !strings.HasPrefix(p.Action, tc.action) {
				t.Errorf("action %q, want it to start %q", p.Action, tc.action)
			}
			if acc.Organizations[0].PATs[1].Action != "re-issue" || in.Organizations[0].PATs[0].Action != "report only" {
				t.Error("a managed PAT's action changed, or the input account was modified")
			}
			for _, c := range cmds {
				if err := c.Validate(); err != nil {
					t.Errorf("command does not validate: %v", err)
				}
				if c.Kind != contract.RevokeUnmanaged || c.PATID != pat1 || c.Account != "svc-build@contoso.com" || c.EventID != "hr-1" ||
					!c.RequestedAt.Equal(tc.at) || c.OperationID != UnmanagedOpID("hr-1", pat1) {
					t.Errorf("command %+v", c)
				}
			}
		})
	}
}

func TestUnmanagedOnRecord(t *testing.T) {
	cmd := func(edit func(*contract.RevocationCommand)) contract.RevocationCommand {
		p := alice
		c := contract.RevocationCommand{Kind: contract.RevokeUnmanaged, Org: "contoso", PATID: pat1, Owner: alice.UPN,
			Account: "svc-build@contoso.com", OperationID: "op", EventID: "hr-1", Person: &p}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	listed := []contract.AccountPAT{{PATID: pat1, Org: "contoso"}}
	held := []rotation.Version{managed("pat-a", ver1, map[string]string{rotation.TagPATID: pat1, rotation.TagOwner: alice.UPN})}
	tests := map[string]struct {
		cmd      contract.RevocationCommand
		policy   UnmanagedPolicy
		listed   []contract.AccountPAT
		versions []rotation.Version
		want     string // the start of the answer
	}{
		"an active PAT no secret holds is revoked": {cmd: cmd(nil), policy: UnmanagedRevokeNow, listed: listed, want: ""},
		"an instance that only reports refuses":    {cmd: cmd(nil), policy: UnmanagedReport, listed: listed, want: "PATROL_OFFBOARDING_UNMANAGED"},
		"a PAT no longer listed is gone":           {cmd: cmd(nil), policy: UnmanagedRevokeNow, want: "gone"},
		"a PAT a managed secret now holds is refused": {
			cmd: cmd(nil), policy: UnmanagedRevokeNow, listed: listed, versions: held, want: "PAT " + pat1 + " is managed now"},
		"an organization outside the bounds is refused": {
			cmd: cmd(func(c *contract.RevocationCommand) { c.Org = "fabrikam" }), policy: UnmanagedRevokeNow, listed: listed, want: "organization fabrikam"},
		"another account than the listing one is refused": {
			cmd: cmd(func(c *contract.RevocationCommand) { c.Account = "mallory@contoso.com" }), policy: UnmanagedRevokeNow, listed: listed, want: "account mallory"},
		"a service account is never a leaver": {
			cmd: cmd(func(c *contract.RevocationCommand) { c.Person = &contract.Person{UPN: "svc-build@contoso.com"} }), policy: UnmanagedRevokeNow, listed: listed,
			want: "the person is one of patrol's service accounts"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := UnmanagedOnRecord(tc.cmd, tc.policy, tc.listed, tc.versions, defaults)
			if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("UnmanagedOnRecord = %q, want it to start %q", got, tc.want)
			}
		})
	}
}

func TestAnInstanceThatCannotRevokeStillReportsAndSaysSo(t *testing.T) {
	r := &memRotator{secrets: map[string]rotation.Version{}}
	b := &memBus{}
	a, err := New(Options{Rotator: r, Inventory: r, Commands: b, Publisher: b, Defaults: defaults, People: fakePeople{},
		Unmanaged: UnmanagedRevokeNow, Clock: rotation.NowFunc(func() time.Time { return now })})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Offboard(context.Background(), contract.OffboardingMessage{EventID: "hr-1", Person: alice}); err != nil {
		t.Fatalf("offboard: %v", err)
	}
	if len(b.published) != 1 || b.published[0].Account == nil {
		t.Fatalf("published %+v, want the report", b.published)
	}
	p := b.published[0].Account.Organizations[0].PATs[0]
	if p.Class != contract.PATUnmanaged || !strings.HasPrefix(p.Action, "not revoked") || !p.RevokeAt.IsZero() {
		t.Errorf("unmanaged PAT %+v, want it reported as not revoked", p)
	}
}
