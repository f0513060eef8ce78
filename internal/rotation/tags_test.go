package rotation

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestVersionTags(t *testing.T) {
	policy := map[string]string{TagManaged: "true", TagOrg: "contoso", TagScopes: "vso.code", TagServiceAccount: "svc@contoso.com"}
	st := State{Owner: "svc@contoso.com", PATID: patID, PreviousPATID: prevID, Reason: ReasonManual, Op: "m1"}
	tests := map[string]struct {
		base, policy map[string]string
		state        State
		want         map[string]string
		wantErr      string
	}{
		"policy and foreign tags are carried forward and the state replaced": {
			base:  merge(policy, "team", "build", TagOp, "old-op", TagReason, "renew-window", TagPreviousPATID, "x"),
			state: State{Owner: "svc@contoso.com", PATID: patID, Reason: ReasonManual, Op: "m1"},
			want:  merge(policy, "team", "build", TagOwner, "svc@contoso.com", TagPATID, patID, TagReason, "manual", TagOp, "m1"),
		},
		"adopt overlays the policy on the existing tags": {
			base: map[string]string{"team": "build"}, policy: policy, state: st,
			want: merge(policy, "team", "build", TagOwner, "svc@contoso.com", TagPATID, patID, TagPreviousPATID, prevID, TagReason, "manual", TagOp, "m1"),
		},
		"more than 15 tags are refused with the names listed": {
			base:    merge(policy, "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6", "g", "7"),
			state:   st,
			wantErr: "16 tags exceed",
		},
		"a value longer than 256 characters is refused naming the tag": {
			base: merge(policy, "notes", strings.Repeat("n", 257)), state: st, wantErr: "tag notes=",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := VersionTags(tc.base, tc.policy, tc.state)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("VersionTags error = %v, want %q", err, tc.wantErr)
				}
				if !IsPermanent(err) {
					t.Errorf("a tag limit error should be permanent")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("VersionTags =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestPolicyTagsRoundTrip(t *testing.T) {
	p := Policy{Org: "contoso", Scopes: []string{"vso.code", "vso.build_execute"}, ServiceAccount: "svc@contoso.com", Lifetime: 30 * day, Grace: 36 * time.Hour}
	got, err := ParsePolicy(p.Tags(), defaults)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(p) {
		t.Errorf("ParsePolicy(p.Tags()) = %+v, want %+v", got, p)
	}
}

func TestParsePolicyDeduplicatesScopes(t *testing.T) {
	p, err := ParsePolicy(map[string]string{TagOrg: "o", TagScopes: " vso.code\tvso.code  vso.build ", TagServiceAccount: "s@x.io"}, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Scopes, " ") != "vso.code vso.build" {
		t.Errorf("scopes = %q", p.Scopes)
	}
}

func TestTagErrorsArePermanentAndNamed(t *testing.T) {
	_, err := ParsePolicy(map[string]string{TagOrg: "contoso", TagScopes: "app_token", TagServiceAccount: "s@x.io"}, defaults)
	var te *TagError
	if !errors.As(err, &te) || te.Tag != TagScopes || te.Value != "app_token" {
		t.Fatalf("error = %#v, want a *TagError for %s=app_token", err, TagScopes)
	}
	if !errors.Is(err, ErrFullScopeRefused) || !IsPermanent(err) {
		t.Errorf("full-scope refusal should wrap ErrFullScopeRefused and be permanent")
	}
}

func TestOperationIDs(t *testing.T) {
	a, b := NewOpID(), NewOpID()
	if a == b || ValidateOpID(a) != nil || len(a) != 16 {
		t.Errorf("NewOpID gave %q and %q", a, b)
	}
	d1, d2 := DeriveOpID("near-expiry", "s", "v1"), DeriveOpID("near-expiry", "s", "v1")
	if d1 != d2 || ValidateOpID(d1) != nil {
		t.Errorf("DeriveOpID is not deterministic: %q %q", d1, d2)
	}
	if DeriveOpID("ab", "c") == DeriveOpID("a", "bc") {
		t.Error("DeriveOpID confuses part boundaries")
	}
	name := DisplayName("pat-build", a)
	if s, op, ok := ParseDisplayName(name); !ok || s != "pat-build" || op != a {
		t.Errorf("ParseDisplayName(%q) = %q %q %v", name, s, op, ok)
	}
	if _, _, ok := ParseDisplayName("my laptop token"); ok {
		t.Error("ParseDisplayName accepted a PAT patrol did not name")
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add("contoso", "vso.code vso.build", "svc@contoso.com", "30d", "1h", "false")
	f.Add("c", "app_token", "", "", "", "true")
	f.Add("-bad-", "repo", "nobody", "1.5d", "-1h", "maybe")
	f.Fuzz(func(t *testing.T, org, scopes, sa, life, grace, full string) {
		tags := map[string]string{TagOrg: org, TagScopes: scopes, TagServiceAccount: sa, TagLifetime: life, TagGrace: grace, TagAllowFullScope: full}
		p, err := ParsePolicy(tags, defaults)
		if err != nil {
			var te *TagError
			if !errors.As(err, &te) || te.Tag == "" {
				t.Fatalf("error %v does not name a tag", err)
			}
			return
		}
		if p.Org == "" || len(p.Scopes) == 0 || p.ServiceAccount == "" || p.Lifetime <= 0 || p.Grace < 0 {
			t.Fatalf("accepted an incomplete policy %+v", p)
		}
		for _, s := range p.Scopes {
			if s == FullScope && !p.AllowFullScope {
				t.Fatal("accepted full scope without permission")
			}
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add("svc@contoso.com", patID, prevID, "manual", "abc")
	f.Add("", "x", "", "", "A B")
	f.Fuzz(func(t *testing.T, owner, id, prev, reason, op string) {
		_, err := ParseState(map[string]string{TagOwner: owner, TagPATID: id, TagPreviousPATID: prev, TagReason: reason, TagOp: op})
		if err != nil {
			var te *TagError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not a *TagError", err)
			}
		}
	})
}

func FuzzParseDisplayName(f *testing.F) {
	f.Add("patrol pat-build abcdefghijklmnop")
	f.Add("patrol  x")
	f.Fuzz(func(t *testing.T, name string) {
		s, op, ok := ParseDisplayName(name)
		if ok && DisplayName(s, op) != name {
			t.Fatalf("ParseDisplayName(%q) does not round-trip", name)
		}
	})
}

func TestIsScope(t *testing.T) {
	tests := map[string]struct {
		in   string
		want bool
	}{
		"a read scope is a scope":                         {"vso.build", true},
		"a scope with digits and underscores is a scope":  {"vso.code_write2", true},
		"the prefix alone is not a scope":                 {"vso.", false},
		"upper case is not a scope":                       {"vso.Build", false},
		"a dotted suffix is not a scope":                  {"vso.code.write", false},
		"full access is not a vso scope (checked apart)":  {"app_token", false},
		"a scope without its prefix is not a scope":       {"build", false},
		"a scope with trailing whitespace is not a scope": {"vso.build ", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := isScope(tc.in); got != tc.want {
				t.Errorf("isScope(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
