package systemtest

import (
	"context"
	"testing"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/demo"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The seeded system: alice's PAT in pat-legacy (managed) and one she made for a release
// pipeline that no secret holds (unmanaged). GET /api/offboarding/{person} names both,
// through devhost and the real `patrol serve`.
func TestTheAccountOfAPersonIsAnsweredLiveOverHTTP(t *testing.T) {
	sys := start(t, options{seed: true})
	ctx := context.Background()
	acc, err := sys.Account(ctx, stack.Person)
	if err != nil {
		t.Fatal(err)
	}
	if len(acc.Organizations) != 1 || acc.Organizations[0].Problem != "" || acc.Organizations[0].ListedBy != stack.ServiceAccount {
		t.Fatalf("organizations %+v, want %s listed by %s", acc.Organizations, stack.Organization, stack.ServiceAccount)
	}
	v, err := sys.Ops.Store.Current(ctx, demo.SecretLegacy)
	if err != nil {
		t.Fatal(err)
	}
	classes := map[contract.PATClass][]contract.AccountPAT{}
	for _, p := range acc.Organizations[0].PATs {
		classes[p.Class] = append(classes[p.Class], p)
	}
	if m := classes[contract.PATManaged]; len(m) != 1 || m[0].PATID != v.Tags[rotation.TagPATID] || m[0].Secret != demo.SecretLegacy {
		t.Errorf("managed %+v, want pat-legacy's PAT %s", m, v.Tags[rotation.TagPATID])
	}
	if u := classes[contract.PATUnmanaged]; len(u) != 1 || u[0].DisplayName != demo.UnmanagedPATName || u[0].Expires.IsZero() {
		t.Errorf("unmanaged %+v, want %q with its expiry", u, demo.UnmanagedPATName)
	}
	if _, err := sys.Account(ctx, "alice"); err == nil {
		t.Error("a person named by neither UPN nor object id was answered")
	}
	settle(t, sys)
}
