package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/functionapp"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// Finding a departing person's secrets among many reads the tags from the vault's
// list pages, one request per 25 secrets, not one GET per secret (issue 12: 10,000
// secrets would cost 10,000 GETs).
func TestOffboardingReadsTagsFromListPages(t *testing.T) {
	e := newEnv(t, envOptions{})
	const total, mine = 300, 30
	for i := range total {
		tags := rotation.Policy{Org: org, Scopes: strings.Fields(scopes), ServiceAccount: account}.Tags()
		tags[rotation.TagOwner], tags[rotation.TagPATID] = account, fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		if i < mine {
			tags[rotation.TagOwner] = campaignPerson
		}
		if _, err := e.st.KV.Put(stack.Vault, fmt.Sprintf("many-%03d", i), kvemu.NewSecret{Value: "placeholder-value", Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	a := e.app()
	j := e.st.KV.Journal()
	lists, gets := j.Count(kvemu.OpListSecrets), j.Count(kvemu.OpGetSecret)
	u, _ := e.st.Entra.User(campaignPerson)
	msg := contract.OffboardingMessage{SchemaVersion: contract.SchemaVersion, EventID: "hr-many", Person: contract.Person{UPN: campaignPerson, ObjectID: u.ObjectID}}
	if err := a.Offboard(e.ctx, msg); err != nil {
		t.Fatal(err)
	}
	lists, gets = j.Count(kvemu.OpListSecrets)-lists, j.Count(kvemu.OpGetSecret)-gets
	sent := 0
	for _, id := range e.messages(contract.QueueRotations) {
		for i := range mine {
			if id == functionapp.OffboardingOpID("hr-many", fmt.Sprintf("many-%03d", i)) {
				sent++
			}
		}
	}
	if sent != mine {
		t.Errorf("%d rotation commands for the person's %d secrets", sent, mine)
	}
	// The vault also holds patrol's own secrets (the service account's token cache, the
	// command key): a page or two more at most.
	pages := total/25 + 2
	perSecret := float64(lists+gets) / float64(total)
	t.Logf("offboarding over %d managed secrets: %d list pages, %d GETs: %.3f Key Vault requests per secret", total, lists, gets, perSecret)
	if gets != 0 || lists > pages {
		t.Errorf("%d list requests and %d GETs for %d secrets; want the list pages only", lists, gets, total)
	}
}
