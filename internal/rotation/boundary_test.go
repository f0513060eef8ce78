package rotation

import (
	"strings"
	"testing"
)

func TestInternalSecretsAreNeverRotated(t *testing.T) {
	managedTags := map[string]string{TagManaged: "true", TagOrg: "contoso", TagScopes: "vso.code", TagServiceAccount: "svc@contoso.com"}
	with := func(name string, extra ...string) Input {
		tags := map[string]string{}
		for k, v := range managedTags {
			tags[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			tags[extra[i]] = extra[i+1]
		}
		return Input{Exists: true, Current: Version{Name: name, ID: "v1", Enabled: true, Tags: tags}, Defaults: Defaults{Lifetime: 90 * 24 * 3600e9}}
	}
	adopt := Trigger{Kind: TriggerAdopt, Op: "a1", Policy: managedTags}
	manual := Trigger{Kind: TriggerManual, Op: "m1"}
	for name, tc := range map[string]struct {
		in   Input
		trig Trigger
	}{
		"a token cache, even tagged managed, is not rotated by hand":   {with("patrol-msal-svc-contoso-com"), manual},
		"a password secret is not adopted":                             {with("patrol-password-svc-contoso-com"), adopt},
		"any secret tagged patrol-kind is not rotated":                 {with("innocent-name", TagKind, "msal-cache"), manual},
		"the command key is not adopted":                               {with("patrol-command-key"), adopt},
		"an upper-case spelling of an internal name is still internal": {with("PATROL-MSAL-X"), manual},
	} {
		t.Run(name, func(t *testing.T) {
			d := Decide(tc.in, tc.trig, tc.in.Current.Created)
			if d.Action != ActionSkip || d.Reason != ReasonInternalSecret {
				t.Errorf("decision %s/%s, want skip/%s", d.Action, d.Reason, ReasonInternalSecret)
			}
		})
	}
}

func TestPolicyInputCannotPlantState(t *testing.T) {
	planted := map[string]string{
		TagManaged: "true", TagOrg: "contoso", TagScopes: "vso.code",
		TagPreviousPATID: "7f1c2a4e-8d3b-4c55-9a10-2b7e4d9c0f13", TagKind: "msal-cache", TagRequestedBy: "someone",
	}
	tags, err := VersionTags(nil, planted, State{Owner: "svc@contoso.com", PATID: "11111111-1111-1111-1111-111111111111", Reason: ReasonAdopt, Op: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{TagPreviousPATID, TagKind, TagRequestedBy} {
		if v, ok := tags[k]; ok {
			t.Errorf("policy input planted %s=%q", k, v)
		}
	}
	if tags[TagOrg] != "contoso" || tags[TagScopes] != "vso.code" {
		t.Errorf("policy tags lost: %v", tags)
	}
}

func TestAuditTagsReplaceTheBaseVersionsAndFitTheLimit(t *testing.T) {
	base := map[string]string{TagRequestedBy: "old caller", TagRequestReason: "old reason"}
	got := AuditTags(base, Trigger{RequestedBy: "alice@contoso.com"})
	if got[TagRequestedBy] != "alice@contoso.com" {
		t.Errorf("requested-by %q", got[TagRequestedBy])
	}
	if _, ok := got[TagRequestReason]; ok {
		t.Error("the previous request's reason was carried forward")
	}
	full := map[string]string{}
	for i := range MaxTags - 1 {
		full[strings.Repeat("x", i+1)] = "v"
	}
	got = AuditTags(full, Trigger{RequestedBy: "alice", Reason: strings.Repeat("é", 300)})
	if len(got) > MaxTags || got[TagRequestedBy] != "alice" {
		t.Errorf("%d tags, requested-by %q: want the requester kept within %d tags", len(got), got[TagRequestedBy], MaxTags)
	}
	if v := AuditTags(nil, Trigger{Reason: strings.Repeat("é", 300)})[TagRequestReason]; len(v) > MaxTagLength {
		t.Errorf("reason tag is %d bytes", len(v))
	}
}
