package functionapp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

const testKeyVersion = "0123456789abcdef0123456789abcdef"

// memKeys is a command key in memory; versions other than its own are unknown.
type memKeys struct{ key contract.CommandKey }

var testKeys = memKeys{key: contract.NewCommandKey(testKeyVersion, []byte(strings.Repeat("k", contract.CommandKeySize)))}

func (m memKeys) SigningKey(context.Context) (contract.CommandKey, error) { return m.key, nil }

func (m memKeys) VerifyingKey(_ context.Context, v string) (contract.CommandKey, error) {
	if v != m.key.Version {
		return contract.CommandKey{}, fmt.Errorf("no key %s: %w", v, contract.ErrUnauthenticated)
	}
	return m.key, nil
}

// signed signs cmd as RotateNow does, at the tests' now.
func signed(t *testing.T, cmd contract.RotationCommand) contract.RotationCommand {
	t.Helper()
	if cmd.RequestedAt.IsZero() {
		cmd.RequestedAt = now
	}
	if err := cmd.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Sign(testKeys.key); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestRotateRefusesCommandsThatCannotProveTheyComeFromPatrol(t *testing.T) {
	manual := contract.RotationCommand{Secret: "pat-a", OperationID: "op-1", Trigger: contract.TriggerManual, RequestedAt: now}
	otherKey := contract.NewCommandKey("fedcba9876543210fedcba9876543210", []byte(strings.Repeat("x", contract.CommandKeySize)))
	tests := map[string]func() contract.RotationCommand{
		"an unsigned manual command": func() contract.RotationCommand { return manual },
		"an unsigned revokeNow on a sweep command": func() contract.RotationCommand {
			c := manual
			c.Trigger, c.RevokeNow, c.Version = contract.TriggerSweep, true, testKeyVersion
			return c
		},
		"a signed command altered afterwards (revokeNow added)": func() contract.RotationCommand {
			c := signed(t, manual)
			c.RevokeNow = true
			return c
		},
		"a command signed with a key patrol does not hold": func() contract.RotationCommand {
			c := manual
			_ = c.Validate()
			_ = c.Sign(otherKey)
			return c
		},
		"a command signed with another key but naming patrol's key version": func() contract.RotationCommand {
			c := manual
			_ = c.Validate()
			_ = c.Sign(otherKey)
			c.Signature.KeyVersion = testKeyVersion
			return c
		},
		"a signed command replayed after MaxCommandAge": func() contract.RotationCommand {
			c := manual
			c.RequestedAt = now.Add(-contract.MaxCommandAge - time.Minute)
			return signed(t, c)
		},
	}
	for name, mk := range tests {
		t.Run(name, func(t *testing.T) {
			ran := false
			r := &memRotator{secrets: map[string]rotation.Version{"pat-a": managedVersion("pat-a")},
				run: func(string, rotation.Trigger) (rotation.Outcome, error) { ran = true; return rotation.Outcome{}, nil }}
			a := newApp(t, r, &memBus{})
			err := a.Rotate(context.Background(), mk())
			if !errors.Is(err, contract.ErrUnauthenticated) || handlers.Classify(err) != handlers.Permanent {
				t.Errorf("err %v (class %v), want a permanent ErrUnauthenticated", err, handlers.Classify(err))
			}
			if ran {
				t.Error("the command was acted on")
			}
		})
	}
	t.Run("a command RotateNow signed runs", func(t *testing.T) {
		ran := false
		r := &memRotator{secrets: map[string]rotation.Version{"pat-a": managedVersion("pat-a")},
			run: func(string, rotation.Trigger) (rotation.Outcome, error) {
				ran = true
				return rotation.Outcome{Status: rotation.StatusRotated}, nil
			}}
		if err := newApp(t, r, &memBus{}).Rotate(context.Background(), signed(t, manual)); err != nil || !ran {
			t.Errorf("err %v, ran %v; want it run", err, ran)
		}
	})
}

func managedVersion(name string, kv ...string) rotation.Version {
	tags := map[string]string{rotation.TagManaged: "true", rotation.TagOrg: "contoso", rotation.TagScopes: "vso.code",
		rotation.TagServiceAccount: "svc@contoso.com", rotation.TagPATID: "aaaaaaaa-0000-0000-0000-000000000001"}
	for i := 0; i+1 < len(kv); i += 2 {
		tags[kv[i]] = kv[i+1]
	}
	return rotation.Version{Name: name, ID: "v-" + name, Enabled: true, Created: now.Add(-time.Hour), Tags: tags}
}

func TestRotateNowSignsAndRecordsTheCaller(t *testing.T) {
	r := &memRotator{secrets: map[string]rotation.Version{"pat-a": managedVersion("pat-a")}}
	b := &memBus{}
	a := newApp(t, r, b)
	_, err := a.RotateNow(context.Background(), handlers.RotateNowRequest{Secret: "pat-a", OperationID: "op-1", RevokeNow: true,
		Reason: "leaked in a log", RequestedBy: "entra:alice@contoso.com (1)"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.sent) != 1 {
		t.Fatalf("sent %d commands", len(b.sent))
	}
	c := b.sent[0]
	if c.RequestedBy != "entra:alice@contoso.com (1)" || c.Reason != "leaked in a log" {
		t.Errorf("command requestedBy %q reason %q", c.RequestedBy, c.Reason)
	}
	if err := c.Verify(testKeys.key, now); err != nil {
		t.Errorf("the command RotateNow sent does not verify: %v", err)
	}
	if trig := TriggerOf(c); trig.RequestedBy != c.RequestedBy || trig.Reason != c.Reason {
		t.Errorf("the core's trigger lost the trail: %+v", trig)
	}
}

func TestManualCooldown(t *testing.T) {
	recent := managedVersion("pat-a", rotation.TagReason, string(rotation.ReasonManual), rotation.TagOp, "op-0")
	recent.Created = now.Add(-3 * time.Minute)
	old := recent
	old.Created = now.Add(-11 * time.Minute)
	bySweep := managedVersion("pat-a", rotation.TagReason, string(rotation.ReasonRenewWindow))
	bySweep.Created = now.Add(-time.Minute)
	tests := map[string]struct {
		current rotation.Version
		want    time.Duration
	}{
		"a second RotateNow three minutes after a manual rotation waits the other seven": {recent, 7 * time.Minute},
		"after the cooldown it is accepted":                                              {old, 0},
		"a version the sweep wrote does not count":                                       {bySweep, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := &memRotator{secrets: map[string]rotation.Version{"pat-a": tc.current}}
			b := &memBus{}
			_, err := newApp(t, r, b).RotateNow(context.Background(), handlers.RotateNowRequest{Secret: "pat-a", OperationID: "op-2"})
			var tm *TooManyRequests
			switch {
			case tc.want == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want > 0 && (!errors.As(err, &tm) || handlers.Classify(err) != handlers.TooManyRequests || tm.RetryAfter() != tc.want):
				t.Fatalf("err %v, want 429 with Retry-After %s", err, tc.want)
			case tc.want > 0 && len(b.sent) != 0:
				t.Error("a command was sent inside the cooldown")
			}
		})
	}
	t.Run("a manual command reaching the queue inside the cooldown is skipped with an outcome", func(t *testing.T) {
		ran := false
		r := &memRotator{secrets: map[string]rotation.Version{"pat-a": recent},
			run: func(string, rotation.Trigger) (rotation.Outcome, error) { ran = true; return rotation.Outcome{}, nil }}
		b := &memBus{}
		if err := newApp(t, r, b).Rotate(context.Background(), signed(t, contract.RotationCommand{Secret: "pat-a", OperationID: "op-3", Trigger: contract.TriggerManual})); err != nil {
			t.Fatal(err)
		}
		if ran || len(b.published) != 1 || b.published[0].Reason != ReasonCooldown {
			t.Errorf("ran %v, published %+v; want a %s outcome and no rotation", ran, b.published, ReasonCooldown)
		}
	})
}

func TestStatusIsNoOracle(t *testing.T) {
	unmanaged := rotation.Version{Name: "db-password", ID: "v1", Enabled: true, Tags: map[string]string{}}
	cache := managedVersion("patrol-msal-svc-contoso-com", "patrol-kind", "msal-cache")
	kinded := managedVersion("innocent", "patrol-kind", "msal-cache")
	r := &memRotator{secrets: map[string]rotation.Version{"db-password": unmanaged, cache.Name: cache, "innocent": kinded, "pat-a": managedVersion("pat-a")}}
	a := newApp(t, r, &memBus{})
	answer := func(name string) string {
		_, err := a.Status(context.Background(), handlers.StatusRequest{Secret: name})
		if err == nil {
			return "200"
		}
		return fmt.Sprintf("%v %s", handlers.Classify(err), strings.ReplaceAll(err.Error(), name, "NAME"))
	}
	absent := answer("no-such")
	if !strings.HasPrefix(absent, handlers.NotFound.String()) {
		t.Fatalf("absent: %s", absent)
	}
	for _, name := range []string{"db-password", cache.Name, "innocent"} {
		if got := answer(name); got != absent {
			t.Errorf("%s answers %q, an absent name %q", name, got, absent)
		}
	}
	all, err := a.Status(context.Background(), handlers.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all.Secrets {
		if s.Secret == cache.Name || s.Secret == "innocent" {
			t.Errorf("the list shows the internal secret %s", s.Secret)
		}
	}
	if _, err := a.RotateNow(context.Background(), handlers.RotateNowRequest{Secret: cache.Name, OperationID: "op-1"}); handlers.Classify(err) != handlers.NotFound {
		t.Errorf("RotateNow of an internal secret: %v, want not found", err)
	}
}

func TestOnRecord(t *testing.T) {
	const (
		current  = "aaaaaaaa-0000-0000-0000-000000000001"
		replaced = "bbbbbbbb-0000-0000-0000-000000000002"
		older    = "cccccccc-0000-0000-0000-000000000003"
		stranger = "dddddddd-0000-0000-0000-000000000004"
		orphan   = "eeeeeeee-0000-0000-0000-000000000005"
	)
	cur := managedVersion("pat-a", rotation.TagPATID, current, rotation.TagPreviousPATID, replaced)
	prev := managedVersion("pat-a", rotation.TagPATID, replaced, rotation.TagPreviousPATID, older)
	in := rotation.Input{Exists: true, Current: cur, Defaults: defaults}
	pats := []rotation.PATInfo{
		{ID: orphan, DisplayName: rotation.DisplayName("pat-a", "lostattempt")},
		{ID: stranger, DisplayName: "someone's laptop"},
		{ID: "ffffffff-0000-0000-0000-000000000006", DisplayName: rotation.DisplayName("pat-b", "x")},
	}
	rev := func(secret, id string) contract.RevocationCommand {
		return contract.RevocationCommand{Secret: secret, Org: "contoso", PATID: id, Account: "svc@contoso.com", OperationID: "op"}
	}
	tests := map[string]struct {
		cmd     contract.RevocationCommand
		in      rotation.Input
		allowed bool
	}{
		"the PAT a rotation replaced":                                 {rev("pat-a", replaced), in, true},
		"a PAT an older version held":                                 {rev("pat-a", older), in, true},
		"the current PAT (the core then refuses it as still current)": {rev("pat-a", current), in, true},
		"an orphan named for the secret":                              {rev("pat-a", orphan), in, true},
		"a PAT patrol never recorded":                                 {rev("pat-a", stranger), in, false},
		"another secret's orphan":                                     {rev("pat-a", "ffffffff-0000-0000-0000-000000000006"), in, false},
		"another secret's current PAT named under this secret":        {rev("pat-b", current), rotation.Input{Exists: true, Current: managedVersion("pat-b", rotation.TagPATID, "99999999-0000-0000-0000-000000000009"), Defaults: defaults}, false},
		"a secret that does not exist":                                {rev("ghost", current), rotation.Input{Defaults: defaults}, false},
		"a recorded PAT in another organization": func() struct {
			cmd     contract.RevocationCommand
			in      rotation.Input
			allowed bool
		} {
			c := rev("pat-a", replaced)
			c.Org = "fabrikam"
			return struct {
				cmd     contract.RevocationCommand
				in      rotation.Input
				allowed bool
			}{c, in, false}
		}(),
		"an orphan revoked as another account": func() struct {
			cmd     contract.RevocationCommand
			in      rotation.Input
			allowed bool
		} {
			c := rev("pat-a", orphan)
			c.Account = "admin@contoso.com"
			return struct {
				cmd     contract.RevocationCommand
				in      rotation.Input
				allowed bool
			}{c, in, false}
		}(),
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var versions []rotation.Version
			if tc.in.Exists {
				versions = []rotation.Version{tc.in.Current}
				if tc.in.Current.Name == "pat-a" {
					versions = append(versions, prev)
				}
			}
			why := OnRecord(tc.cmd, tc.in, versions, pats, defaults)
			if (why == "") != tc.allowed {
				t.Errorf("refusal %q, want allowed %v", why, tc.allowed)
			}
		})
	}
}

func TestRevokeRefusesWhatIsNotOnRecord(t *testing.T) {
	r := &memRotator{secrets: map[string]rotation.Version{"pat-a": managedVersion("pat-a")}}
	b := &memBus{}
	a := newApp(t, r, b)
	err := a.Revoke(context.Background(), contract.RevocationCommand{Secret: "ghost", Org: "contoso",
		PATID: "aaaaaaaa-0000-0000-0000-000000000001", Account: "svc@contoso.com", OperationID: "op"})
	if handlers.Classify(err) != handlers.Permanent {
		t.Fatalf("err %v, want a permanent refusal", err)
	}
	if len(b.published) != 1 || b.published[0].Reason != ReasonNotOnRecord || b.published[0].Status != rotation.StatusFailed {
		t.Errorf("published %+v, want one failed %s outcome", b.published, ReasonNotOnRecord)
	}
}

// memHistory is a secret's every version.
type memHistory map[string][]rotation.Version

func (h memHistory) Versions(_ context.Context, name string) ([]rotation.Version, error) {
	return h[name], nil
}

// memPATs lists the same patrol PATs for any account.
type memPATs []rotation.PATInfo

func (p memPATs) PatrolPATs(context.Context, string, string) ([]rotation.PATInfo, error) {
	return p, nil
}

func TestRevocationBeforeTheGraceEndMustBeSigned(t *testing.T) {
	const (
		current  = "aaaaaaaa-0000-0000-0000-000000000001"
		replaced = "bbbbbbbb-0000-0000-0000-000000000002"
		orphan   = "eeeeeeee-0000-0000-0000-000000000005"
	)
	otherKey := contract.NewCommandKey("fedcba9876543210fedcba9876543210", []byte(strings.Repeat("x", contract.CommandKeySize)))
	rev := func(id string) contract.RevocationCommand {
		return contract.RevocationCommand{SchemaVersion: "1", Secret: "pat-a", Org: "contoso", PATID: id, Account: "svc@contoso.com", OperationID: "op-2"}
	}
	sign := func(c contract.RevocationCommand, key contract.CommandKey, at time.Time) contract.RevocationCommand {
		c.RequestedAt = at
		if err := c.Sign(key); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := map[string]struct {
		replacedAgo time.Duration // how long ago the current version replaced the PAT
		graceTag    string        // the current version's patrol-grace, if any
		cmd         func() contract.RevocationCommand
		keys        CommandKeys   // default testKeys
		revoked     bool          // carried out now
		deferredTo  time.Duration // else: deferred to replacedAgo+grace from now, plus DeferSlack
	}{
		"an unsigned revocation at the grace end is carried out": {
			replacedAgo: 24 * time.Hour, cmd: func() contract.RevocationCommand { return rev(replaced) }, revoked: true},
		"an unsigned revocation after the grace end is carried out": {
			replacedAgo: 30 * time.Hour, cmd: func() contract.RevocationCommand { return rev(replaced) }, revoked: true},
		"the grace of the replacing version's policy counts, not the default": {
			replacedAgo: 2 * time.Hour, graceTag: "1h", cmd: func() contract.RevocationCommand { return rev(replaced) }, revoked: true},
		"an unsigned revocation of an orphan is carried out (the sweep sends those at once)": {
			replacedAgo: time.Minute, cmd: func() contract.RevocationCommand { return rev(orphan) }, revoked: true},
		"an unsigned revocation of the current PAT goes on to the core (which refuses it as still current)": {
			replacedAgo: time.Minute, cmd: func() contract.RevocationCommand { return rev(current) }, revoked: true},
		"a revocation patrol signed is carried out before the grace end": {
			replacedAgo: time.Minute, cmd: func() contract.RevocationCommand { return sign(rev(replaced), testKeys.key, now) }, revoked: true},
		"an unsigned revocation before the grace end is deferred to it": {
			replacedAgo: time.Hour, cmd: func() contract.RevocationCommand { return rev(replaced) }, deferredTo: 23 * time.Hour},
		"a revocation signed with a key patrol does not hold is deferred": {
			replacedAgo: time.Hour, cmd: func() contract.RevocationCommand { return sign(rev(replaced), otherKey, now) }, deferredTo: 23 * time.Hour},
		"a signed revocation altered afterwards (another operation) is deferred": {
			replacedAgo: time.Hour, deferredTo: 23 * time.Hour, cmd: func() contract.RevocationCommand {
				c := sign(rev(replaced), testKeys.key, now)
				c.OperationID = "op-3"
				return c
			}},
		"a signed revocation replayed after MaxCommandAge is deferred": {
			replacedAgo: 2 * time.Hour, deferredTo: 22 * time.Hour, cmd: func() contract.RevocationCommand {
				return sign(rev(replaced), testKeys.key, now.Add(-contract.MaxCommandAge-time.Minute))
			}},
		"a rotation command's signature on a revocation is deferred": {
			replacedAgo: time.Hour, deferredTo: 23 * time.Hour, cmd: func() contract.RevocationCommand {
				c := rev(replaced)
				c.RequestedAt = now
				c.Signature = signed(t, contract.RotationCommand{Secret: "pat-a", OperationID: "op-2", Trigger: contract.TriggerManual}).Signature
				return c
			}},
		"an early revocation reaching an app without a command key is deferred": {
			replacedAgo: time.Hour, keys: memKeys{}, deferredTo: 23 * time.Hour,
			cmd: func() contract.RevocationCommand { return sign(rev(replaced), testKeys.key, now) }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cur := managedVersion("pat-a", rotation.TagPATID, current, rotation.TagPreviousPATID, replaced)
			cur.Created = now.Add(-tc.replacedAgo)
			if tc.graceTag != "" {
				cur.Tags[rotation.TagGrace] = tc.graceTag
			}
			prev := managedVersion("pat-a", rotation.TagPATID, replaced)
			prev.ID, prev.Created = "v-prev", cur.Created.Add(-30*24*time.Hour)
			r := &memRotator{secrets: map[string]rotation.Version{"pat-a": cur}}
			b := &memBus{}
			keys := tc.keys
			if keys == nil {
				keys = testKeys
			}
			a, err := New(Options{Rotator: r, Inventory: r, Commands: b, Publisher: b, Defaults: defaults, CommandKeys: keys,
				History: memHistory{"pat-a": {prev, cur}}, PATs: memPATs{{ID: orphan, DisplayName: rotation.DisplayName("pat-a", "lostattempt")}},
				Clock: rotation.NowFunc(func() time.Time { return now })})
			if err != nil {
				t.Fatal(err)
			}
			cmd := tc.cmd()
			if err := a.Revoke(context.Background(), cmd); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if tc.revoked {
				if len(r.revoked) != 1 || r.revoked[0].PATID != cmd.PATID || len(b.revocations) != 0 {
					t.Errorf("revoked %+v, deferred %+v; want it carried out now", r.revoked, b.revocations)
				}
				return
			}
			if len(r.revoked) != 0 {
				t.Fatalf("revoked %+v before the grace end", r.revoked)
			}
			at := now.Add(tc.deferredTo + DeferSlack)
			if len(b.revocations) != 1 {
				t.Fatalf("deferred %+v, want one revocation", b.revocations)
			}
			d := b.revocations[0]
			if !d.at.Equal(at) || d.id != DeferredRevocationID(replaced, at) || d.id == RevocationOf(cmd).MessageID() ||
				d.cmd.PATID != replaced || d.cmd.Signature != nil {
				t.Errorf("deferred %+v (%s at %v), want the unsigned revocation at %v under a MessageId of its own", d.cmd, d.id, d.at, at)
			}
			if len(b.published) != 1 || b.published[0].Status != rotation.StatusSkipped || b.published[0].Reason != ReasonRevocationDeferred ||
				!b.published[0].NextCheck.Equal(at) || !strings.Contains(b.published[0].Message, "signature") {
				t.Errorf("published %+v, want one skipped %s outcome naming the signature and the time", b.published, ReasonRevocationDeferred)
			}
		})
	}
}

func TestGraceEnd(t *testing.T) {
	const (
		a = "aaaaaaaa-0000-0000-0000-000000000001"
		b = "bbbbbbbb-0000-0000-0000-000000000002"
		c = "cccccccc-0000-0000-0000-000000000003"
	)
	at := func(v rotation.Version, ago time.Duration) rotation.Version { v.Created = now.Add(-ago); return v }
	v1 := at(managedVersion("pat-a", rotation.TagPATID, a), 10*time.Hour)
	v2 := at(managedVersion("pat-a", rotation.TagPATID, b, rotation.TagPreviousPATID, a, rotation.TagGrace, "2h"), 8*time.Hour)
	manual := at(rotation.Version{Name: "pat-a", ID: "v-manual", Tags: map[string]string{}}, 5*time.Hour)
	v3 := at(managedVersion("pat-a", rotation.TagPATID, c), time.Hour)
	tests := map[string]struct {
		pat      string
		versions []rotation.Version
		want     time.Duration // the grace end, from now
		ok       bool
	}{
		"the version naming it previous, with that version's grace":                    {a, []rotation.Version{v1, v2}, -6 * time.Hour, true},
		"a version without patrol's tags replaced it: the next version, default grace": {b, []rotation.Version{v1, v2, manual, v3}, 19 * time.Hour, true},
		"the current PAT has no grace end":                                             {c, []rotation.Version{v1, v2, manual, v3}, 0, false},
		"a PAT no version names has none":                                              {"dddddddd-0000-0000-0000-000000000004", []rotation.Version{v1, v2}, 0, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			end, ok := GraceEnd(tc.pat, tc.versions, defaults)
			if ok != tc.ok || ok && !end.Equal(now.Add(tc.want)) {
				t.Errorf("GraceEnd = %v, %v; want %v, %v", end, ok, now.Add(tc.want), tc.ok)
			}
		})
	}
}
