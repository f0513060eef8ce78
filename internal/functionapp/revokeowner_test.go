package functionapp

import (
	"testing"

	"github.com/patrol-dev/patrol/internal/rotation"
)

func TestOwnerOnRecord(t *testing.T) {
	const personal, ours = "11111111-1111-1111-1111-11111111abcd", "22222222-2222-2222-2222-222222222222"
	versions := []rotation.Version{
		{Tags: map[string]string{rotation.TagPATID: personal, rotation.TagOwner: "alice@contoso.com"}},
		{Tags: map[string]string{rotation.TagPATID: ours, rotation.TagPreviousPATID: personal, rotation.TagOwner: "svc-build@contoso.com"}},
	}
	for name, tc := range map[string]struct{ patID, want string }{
		"the owner of the version that held the PAT, not of the one that replaced it": {personal, "alice@contoso.com"},
		"ids compare without case":                {"11111111-1111-1111-1111-11111111ABCD", "alice@contoso.com"},
		"a PAT the vault's own version holds":     {ours, "svc-build@contoso.com"},
		"a PAT no version held has no owner here": {"33333333-3333-3333-3333-333333333333", ""},
	} {
		t.Run(name, func(t *testing.T) {
			if got := OwnerOnRecord(tc.patID, versions); got != tc.want {
				t.Errorf("OwnerOnRecord(%s) = %q, want %q", tc.patID, got, tc.want)
			}
		})
	}
}
