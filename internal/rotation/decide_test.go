package rotation

import (
	"maps"
	"strings"
	"testing"
	"time"
)

var (
	now      = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	day      = 24 * time.Hour
	defaults = Defaults{ServiceAccount: "svc-default@contoso.com", Lifetime: 90 * day, Grace: 24 * time.Hour, RenewBefore: 14 * day}
)

const (
	patID  = "4ab5764f-4193-4f1d-b995-64144880b7d7"
	prevID = "3d3aca0c-9ad3-4b07-8334-08ec8b1ddc32"
)

// managed is a 90-day PAT issued by patrol 80 days ago (10 days left: inside the
// 14-day renew window) unless edited.
func managed(edit ...func(*Input)) Input {
	in := Input{
		Exists: true,
		Current: Version{
			Name: "pat-build", ID: "v1", Enabled: true,
			Created: now.Add(-80 * day), Expires: now.Add(10 * day),
			Tags: map[string]string{
				TagManaged: "true", TagOrg: "contoso", TagScopes: "vso.code vso.packaging",
				TagServiceAccount: "svc-build@contoso.com",
				TagOwner:          "svc-build@contoso.com", TagPATID: patID, TagOp: "op-earlier", TagReason: "renew-window",
			},
		},
		Defaults: defaults,
	}
	for _, e := range edit {
		e(&in)
	}
	return in
}

func tags(kv ...string) func(*Input) {
	return func(in *Input) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "<unset>" {
				delete(in.Current.Tags, kv[i])
				continue
			}
			in.Current.Tags[kv[i]] = kv[i+1]
		}
	}
}

func lifetime(issuedAgo, left time.Duration) func(*Input) {
	return func(in *Input) {
		in.Current.Created, in.Current.Expires = now.Add(-issuedAgo), now.Add(left)
	}
}

func TestDecide(t *testing.T) {
	adoptTags := Policy{Org: "contoso", Scopes: []string{"vso.code"}, ServiceAccount: "svc-build@contoso.com"}.Tags()
	tests := map[string]struct {
		in   Input
		trig Trigger
		// want
		action Action
		reason Reason
		at     time.Time // for ActionWait
		// errHas: substrings the attention error must contain (tag and value).
		errHas []string
	}{
		"a secret that does not exist is skipped": {
			in: Input{Defaults: defaults}, trig: Trigger{Kind: TriggerSweep},
			action: ActionSkip, reason: ReasonSecretMissing,
		},
		"an unmanaged secret is skipped": {
			in: managed(tags(TagManaged, "<unset>")), trig: Trigger{Kind: TriggerNearExpiry, Version: "v1", Op: "e1"},
			action: ActionSkip, reason: ReasonNotManaged,
		},
		"a secret tagged managed=false is skipped": {
			in: managed(tags(TagManaged, "false")), trig: Trigger{Kind: TriggerManual, Op: "m1"},
			action: ActionSkip, reason: ReasonNotManaged,
		},
		"a disabled secret is skipped even when expired": {
			in:   managed(func(in *Input) { in.Current.Enabled = false }, lifetime(91*day, -day)),
			trig: Trigger{Kind: TriggerExpired, Version: "v1", Op: "x1"}, action: ActionSkip, reason: ReasonDisabled,
		},
		"an event for a version that is no longer current is skipped": {
			in: managed(), trig: Trigger{Kind: TriggerNearExpiry, Version: "v0", Op: "e1"},
			action: ActionSkip, reason: ReasonStaleVersion,
		},
		"a wake-up for a version that has been replaced is skipped": {
			in: managed(), trig: Trigger{Kind: TriggerWakeup, Version: "v0", Op: "w1"},
			action: ActionSkip, reason: ReasonStaleVersion,
		},
		"a command whose operation wrote the current version is already done": {
			in: managed(), trig: Trigger{Kind: TriggerManual, Op: "op-earlier"},
			action: ActionSkip, reason: ReasonAlreadyDone,
		},
		"near-expiry outside the renew window waits until the window opens": {
			in: managed(lifetime(60*day, 30*day)), trig: Trigger{Kind: TriggerNearExpiry, Version: "v1", Op: "e1"},
			action: ActionWait, reason: ReasonNotDue, at: now.Add(16 * day),
		},
		"near-expiry inside the renew window rotates": {
			in: managed(), trig: Trigger{Kind: TriggerNearExpiry, Version: "v1", Op: "e1"},
			action: ActionRotate, reason: ReasonRenewWindow,
		},
		"a 7-day PAT's near-expiry event right after it was written waits instead of looping": {
			in: managed(lifetime(0, 7*day)), trig: Trigger{Kind: TriggerNearExpiry, Version: "v1", Op: "e1"},
			// window = 7d/3 = 56h, not the 14-day setting
			action: ActionWait, reason: ReasonNotDue, at: now.Add(7*day - 56*time.Hour),
		},
		"a 7-day PAT rotates once a third of its lifetime remains": {
			in: managed(lifetime(5*day, 2*day)), trig: Trigger{Kind: TriggerWakeup, Version: "v1", Op: "w1"},
			action: ActionRotate, reason: ReasonRenewWindow,
		},
		"a PAT shortened by organization policy uses its real lifetime for the window": {
			// asked 90d, got 9d: window 3d, so 4 days left is not due yet
			in: managed(lifetime(5*day, 4*day)), trig: Trigger{Kind: TriggerSweep},
			action: ActionWait, reason: ReasonNotDue, at: now.Add(day),
		},
		"an expired PAT rotates": {
			in: managed(lifetime(91*day, -day)), trig: Trigger{Kind: TriggerExpired, Version: "v1", Op: "x1"},
			action: ActionRotate, reason: ReasonExpired,
		},
		"a PAT expiring exactly now counts as expired": {
			in: managed(lifetime(90*day, 0)), trig: Trigger{Kind: TriggerSweep},
			action: ActionRotate, reason: ReasonExpired,
		},
		"offboarding of the owner rotates": {
			in:     managed(tags(TagOwner, "alice@contoso.com")),
			trig:   Trigger{Kind: TriggerOffboarding, Op: "o1", Person: Person{UPN: "Alice@Contoso.com"}},
			action: ActionRotate, reason: ReasonOwnerOffboarded,
		},
		"offboarding of the owner rotates even when the PAT is far from expiry": {
			in:     managed(tags(TagOwner, "alice@contoso.com"), lifetime(day, 89*day)),
			trig:   Trigger{Kind: TriggerOffboarding, Op: "o1", Person: Person{UPN: "alice@contoso.com"}},
			action: ActionRotate, reason: ReasonOwnerOffboarded,
		},
		"offboarding of someone who is not the owner is skipped": {
			in:     managed(),
			trig:   Trigger{Kind: TriggerOffboarding, Op: "o1", Person: Person{UPN: "bob@contoso.com", ObjectID: "b0b"}},
			action: ActionSkip, reason: ReasonNotOwner,
		},
		"offboarding of the secret's own service account needs attention": {
			in:     managed(),
			trig:   Trigger{Kind: TriggerOffboarding, Op: "o1", Person: Person{UPN: "svc-build@contoso.com"}},
			action: ActionAttention, reason: ReasonServiceAccountOffboarded, errHas: []string{"svc-build@contoso.com", TagServiceAccount},
		},
		"an owner the gatherer knows has left rotates on a sweep": {
			in:   managed(tags(TagOwner, "alice@contoso.com"), lifetime(day, 89*day), func(in *Input) { in.OwnerOffboarded = true }),
			trig: Trigger{Kind: TriggerSweep}, action: ActionRotate, reason: ReasonOwnerOffboarded,
		},
		"full scope without permission needs attention": {
			in: managed(tags(TagScopes, "app_token")), trig: Trigger{Kind: TriggerManual, Op: "m1"},
			action: ActionAttention, reason: ReasonFullScopeRefused, errHas: []string{TagScopes, `"app_token"`, TagAllowFullScope},
		},
		"full scope with explicit permission rotates": {
			in: managed(tags(TagScopes, "app_token", TagAllowFullScope, "true")), trig: Trigger{Kind: TriggerManual, Op: "m1"},
			action: ActionRotate, reason: ReasonManual,
		},
		"a scope that is not vso.* needs attention naming the tag and the value": {
			in: managed(tags(TagScopes, "vso.code repo:write")), trig: Trigger{Kind: TriggerSweep},
			action: ActionAttention, reason: ReasonBadPolicy, errHas: []string{TagScopes, `"vso.code repo:write"`, `"repo:write"`},
		},
		"a missing org needs attention naming the tag": {
			in: managed(tags(TagOrg, "<unset>")), trig: Trigger{Kind: TriggerSweep},
			action: ActionAttention, reason: ReasonBadPolicy, errHas: []string{TagOrg, "required"},
		},
		"an org that is a URL needs attention naming the value": {
			in: managed(tags(TagOrg, "https://dev.azure.com/contoso")), trig: Trigger{Kind: TriggerSweep},
			action: ActionAttention, reason: ReasonBadPolicy, errHas: []string{TagOrg, `"https://dev.azure.com/contoso"`},
		},
		"a lifetime in weeks needs attention naming the value": {
			in: managed(tags(TagLifetime, "6w")), trig: Trigger{Kind: TriggerSweep},
			action: ActionAttention, reason: ReasonBadPolicy, errHas: []string{TagLifetime, `"6w"`},
		},
		"a lifetime beyond a year needs attention": {
			in: managed(tags(TagLifetime, "400d")), trig: Trigger{Kind: TriggerSweep},
			action: ActionAttention, reason: ReasonBadPolicy, errHas: []string{TagLifetime, `"400d"`},
		},
		"a service account that is not a UPN needs attention": {
			in: managed(tags(TagServiceAccount, "svc-build")), trig: Trigger{Kind: TriggerSweep},
			action: ActionAttention, reason: ReasonBadPolicy, errHas: []string{TagServiceAccount, `"svc-build"`},
		},
		"no service account tag and no default needs attention": {
			in:   managed(tags(TagServiceAccount, "<unset>"), func(in *Input) { in.Defaults.ServiceAccount = "" }),
			trig: Trigger{Kind: TriggerSweep}, action: ActionAttention, reason: ReasonBadPolicy,
			errHas: []string{TagServiceAccount, "PATROL_DEFAULT_SERVICE_ACCOUNT"},
		},
		"a malformed PAT id in the state tags needs attention": {
			in: managed(tags(TagPATID, "not-a-guid")), trig: Trigger{Kind: TriggerSweep},
			action: ActionAttention, reason: ReasonBadState, errHas: []string{TagPATID, `"not-a-guid"`},
		},
		"a manual rotation always rotates, even of a fresh PAT": {
			in: managed(lifetime(time.Minute, 90*day)), trig: Trigger{Kind: TriggerManual, Op: "m1", RevokeNow: true},
			action: ActionRotate, reason: ReasonManual,
		},
		"a manual rotation of an unmanaged secret is skipped": {
			in: managed(tags(TagManaged, "<unset>")), trig: Trigger{Kind: TriggerManual, Op: "m1"},
			action: ActionSkip, reason: ReasonNotManaged,
		},
		"a sweep before the renew window waits": {
			in: managed(lifetime(30*day, 60*day)), trig: Trigger{Kind: TriggerSweep},
			action: ActionWait, reason: ReasonNotDue, at: now.Add(46 * day),
		},
		"a sweep inside the renew window rotates (a missed wake-up)": {
			in: managed(), trig: Trigger{Kind: TriggerSweep}, action: ActionRotate, reason: ReasonRenewWindow,
		},
		"a sweep of a hand-tagged secret without a PAT of patrol's rotates": {
			in:   managed(tags(TagPATID, "<unset>", TagOwner, "<unset>", TagOp, "<unset>", TagReason, "<unset>"), lifetime(0, 300*day)),
			trig: Trigger{Kind: TriggerSweep}, action: ActionRotate, reason: ReasonNotIssued,
		},
		"a PAT owned by someone other than the service account rotates on a sweep": {
			in:   managed(tags(TagOwner, "carol@contoso.com"), lifetime(day, 89*day)),
			trig: Trigger{Kind: TriggerSweep}, action: ActionRotate, reason: ReasonOwnerNotServiceAccount,
		},
		"a version without expiry rotates on a sweep": {
			in:   managed(func(in *Input) { in.Current.Expires = time.Time{} }),
			trig: Trigger{Kind: TriggerSweep}, action: ActionRotate, reason: ReasonNoExpiry,
		},
		"adopt of an unmanaged secret rotates": {
			in:   managed(func(in *Input) { in.Current.Tags = map[string]string{"team": "build"} }),
			trig: Trigger{Kind: TriggerAdopt, Op: "a1", Policy: adoptTags}, action: ActionRotate, reason: ReasonAdopt,
		},
		"adopt of a secret that does not exist yet rotates": {
			in: Input{Defaults: defaults}, trig: Trigger{Kind: TriggerAdopt, Op: "a1", Policy: adoptTags},
			action: ActionRotate, reason: ReasonAdopt,
		},
		"adopt of a managed secret is skipped": {
			in: managed(), trig: Trigger{Kind: TriggerAdopt, Op: "a1", Policy: adoptTags},
			action: ActionSkip, reason: ReasonAlreadyManaged,
		},
		"adopt rerun after it succeeded is already done": {
			in: managed(tags(TagOp, "a1")), trig: Trigger{Kind: TriggerAdopt, Op: "a1", Policy: adoptTags},
			action: ActionSkip, reason: ReasonAlreadyDone,
		},
		"adopt asking for full scope needs attention": {
			in: Input{Defaults: defaults}, trig: Trigger{Kind: TriggerAdopt, Op: "a1", Policy: merge(adoptTags, TagScopes, "app_token")},
			action: ActionAttention, reason: ReasonFullScopeRefused, errHas: []string{TagScopes},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Decide(tc.in, tc.trig, now)
			if got.Action != tc.action || got.Reason != tc.reason {
				t.Fatalf("Decide = %s/%s (%s), want %s/%s", got.Action, got.Reason, got.Message, tc.action, tc.reason)
			}
			if !got.At.Equal(tc.at) {
				t.Errorf("At = %v, want %v", got.At, tc.at)
			}
			if (got.Err != nil) != (tc.action == ActionAttention) {
				t.Errorf("Err = %v, want an error exactly for needs-attention", got.Err)
			}
			for _, s := range tc.errHas {
				if got.Err == nil || !strings.Contains(got.Err.Error(), s) {
					t.Errorf("Err = %v, want it to mention %s", got.Err, s)
				}
			}
			if got.Action == ActionRotate && (got.Policy.Org == "" || got.Policy.ServiceAccount == "" || len(got.Policy.Scopes) == 0) {
				t.Errorf("a rotate decision carries policy %+v, want it parsed", got.Policy)
			}
		})
	}
}

func merge(m map[string]string, kv ...string) map[string]string {
	out := maps.Clone(m)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestDecideShortPATDoesNotLoop replays what Key Vault does with a PAT shorter than
// the 30-day SecretNearExpiry lead: the event fires as soon as the version is written.
func TestDecideShortPATDoesNotLoop(t *testing.T) {
	for _, life := range []time.Duration{day, 7 * day, 29 * day} {
		in := managed(lifetime(0, life))
		d := Decide(in, Trigger{Kind: TriggerNearExpiry, Version: "v1", Op: "e1"}, now)
		if d.Action != ActionWait || !d.At.After(now) || !d.At.Before(in.Current.Expires) {
			t.Errorf("lifetime %v: near-expiry right after writing = %s at %v, want a wait strictly between now and expiry", life, d.Action, d.At)
		}
	}
}

func TestDecideDefaultServiceAccountFillsAMissingTag(t *testing.T) {
	d := Decide(managed(tags(TagServiceAccount, "<unset>", TagOwner, "svc-default@contoso.com")), Trigger{Kind: TriggerManual, Op: "m1"}, now)
	if d.Policy.ServiceAccount != "svc-default@contoso.com" {
		t.Errorf("service account = %q, want the default", d.Policy.ServiceAccount)
	}
}

// TestChainOrder guards the order of the checks: reordering them changes behaviour
// (e.g. AlreadyDone must precede StaleVersion and policy parsing).
func TestChainOrder(t *testing.T) {
	want := "Internal Adopt SecretMissing NotManaged Disabled BadState AlreadyDone StaleVersion BadPolicy Manual Offboarding OwnerOffboarded NotIssued Expired OwnerNotServiceAccount NoExpiry RenewWindow"
	if got := strings.Join(decision.Names(), " "); got != want {
		t.Errorf("chain = %s\nwant    %s", got, want)
	}
	wantAdmission := "Internal SecretMissing NotManaged Disabled BadState AlreadyDone StaleVersion"
	if got := strings.Join(Admission().Names(), " "); got != wantAdmission {
		t.Errorf("admission = %s\nwant        %s", got, wantAdmission)
	}
}

// TestChainOrderDecides pins the order by behaviour: each row satisfies two checks, and
// the earlier one must decide. A reordering that the names test above missed (a check
// renamed along with the move) fails here.
func TestChainOrderDecides(t *testing.T) {
	tests := map[string]struct {
		in   Input
		trig Trigger
		want Reason
	}{
		"missing before not managed": {
			in: Input{Defaults: defaults}, trig: Trigger{Kind: TriggerManual, Op: "m1"}, want: ReasonSecretMissing},
		"not managed before disabled": {
			in: managed(tags(TagManaged, "false"), func(in *Input) { in.Current.Enabled = false }), trig: Trigger{Kind: TriggerManual, Op: "m1"}, want: ReasonNotManaged},
		"disabled before bad state": {
			in: managed(tags(TagPATID, "not-a-guid"), func(in *Input) { in.Current.Enabled = false }), trig: Trigger{Kind: TriggerManual, Op: "m1"}, want: ReasonDisabled},
		"bad state before stale version": {
			in: managed(tags(TagPATID, "not-a-guid")), trig: Trigger{Kind: TriggerNearExpiry, Version: "v0", Op: "e1"}, want: ReasonBadState},
		"already done before stale version: a redelivered event after its own rotation": {
			in: managed(tags(TagOp, "e1")), trig: Trigger{Kind: TriggerNearExpiry, Version: "v0", Op: "e1"}, want: ReasonAlreadyDone},
		"stale version before bad policy": {
			in: managed(tags(TagOrg, "<unset>")), trig: Trigger{Kind: TriggerNearExpiry, Version: "v0", Op: "e1"}, want: ReasonStaleVersion},
		"bad policy before manual": {
			in: managed(tags(TagOrg, "contoso-")), trig: Trigger{Kind: TriggerManual, Op: "m1"}, want: ReasonBadPolicy},
		"manual before not issued": {
			in: managed(tags(TagPATID, "<unset>")), trig: Trigger{Kind: TriggerManual, Op: "m1"}, want: ReasonManual},
		"not issued before expired": {
			in: managed(tags(TagPATID, "<unset>"), lifetime(91*day, -day)), trig: Trigger{Kind: TriggerSweep}, want: ReasonNotIssued},
		"expired before owner not service account": {
			in: managed(tags(TagOwner, "someone@contoso.com"), lifetime(91*day, -day)), trig: Trigger{Kind: TriggerSweep}, want: ReasonExpired},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Decide(tc.in, tc.trig, now); got.Reason != tc.want {
				t.Errorf("Decide = %s (%s), want %s", got.Reason, got.Message, tc.want)
			}
		})
	}
}

// A decision carries only the tags the checks before it validated: an outcome for a
// skipped, disabled secret reports no owner or PAT id read from tags nobody checked.
func TestDecisionCarriesWhatTheChainValidated(t *testing.T) {
	disabled := Decide(managed(func(in *Input) { in.Current.Enabled = false }), Trigger{Kind: TriggerSweep}, now)
	if disabled.State != (State{}) || disabled.Policy.Org != "" {
		t.Errorf("a disabled skip carries state %+v and policy %+v, want neither", disabled.State, disabled.Policy)
	}
	stale := Decide(managed(), Trigger{Kind: TriggerNearExpiry, Version: "v0", Op: "e1"}, now)
	if stale.State.PATID != patID || stale.Policy.Org != "" {
		t.Errorf("a stale skip carries state %+v and policy %+v, want the state only", stale.State, stale.Policy)
	}
	due := Decide(managed(), Trigger{Kind: TriggerSweep}, now)
	if due.State.PATID != patID || due.Policy.Org != "contoso" {
		t.Errorf("a rotate decision carries state %+v and policy %+v, want both", due.State, due.Policy)
	}
}

func TestRenewWindow(t *testing.T) {
	tests := []struct {
		name        string
		lifetime    time.Duration
		renewBefore time.Duration
		want        time.Duration
	}{
		{name: "a long PAT uses the setting", lifetime: 90 * day, renewBefore: 14 * day, want: 14 * day},
		{name: "a PAT shorter than three settings uses a third of its lifetime", lifetime: 30 * day, renewBefore: 14 * day, want: 10 * day},
		{name: "an unknown lifetime uses the setting", lifetime: 0, renewBefore: 14 * day, want: 14 * day},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenewWindow(tc.lifetime, tc.renewBefore); got != tc.want {
				t.Errorf("RenewWindow(%v, %v) = %v, want %v", tc.lifetime, tc.renewBefore, got, tc.want)
			}
		})
	}
}

func TestTriggerValidate(t *testing.T) {
	tests := map[string]struct {
		trig    Trigger
		wantErr string
	}{
		"a manual trigger with an operation id is valid": {trig: Trigger{Kind: TriggerManual, Op: NewOpID()}},
		"an event without a version is refused":          {trig: Trigger{Kind: TriggerNearExpiry, Op: "e1"}, wantErr: "version"},
		"offboarding without a person is refused":        {trig: Trigger{Kind: TriggerOffboarding, Op: "o1"}, wantErr: "person"},
		"adopt without the managed tag is refused":       {trig: Trigger{Kind: TriggerAdopt, Op: "a1", Policy: map[string]string{TagOrg: "x"}}, wantErr: TagManaged},
		"an unknown kind is refused":                     {trig: Trigger{Kind: "rotate-all", Op: "x"}, wantErr: "unknown"},
		"the revoke label is not a trigger":              {trig: Trigger{Kind: TriggerRevoke, Op: "x"}, wantErr: "unknown"},
		"a missing operation id is refused":              {trig: Trigger{Kind: TriggerSweep}, wantErr: "operation id"},
		"an operation id with spaces is refused":         {trig: Trigger{Kind: TriggerSweep, Op: "a b"}, wantErr: "operation id"},
		"an upper-case uuid operation id is refused":     {trig: Trigger{Kind: TriggerSweep, Op: "ABC"}, wantErr: "operation id"},
		"a lower-case uuid is accepted as operation id":  {trig: Trigger{Kind: TriggerSweep, Op: "3d3aca0c-9ad3-4b07-8334-08ec8b1ddc32"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.trig.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}
