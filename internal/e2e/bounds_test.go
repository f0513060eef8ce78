package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The attack of issue 10: a principal that may write the vault's secrets (Key Vault
// Secrets Officer, here the stack's workload app through the real azsecrets SDK) tags
// a secret to ask for full access, token administration and security scopes for a
// year, then asks for a rotation; another retargets a managed secret at a service
// account the operator never allowed. Under the local stack's bounds (contoso,
// svc-build, the default scopes, 90 days) patrol answers needs-attention naming each
// bound, and the Azure DevOps emulator's PAT list shows nothing was ever created for
// them, while a secret within the bounds rotates as before.
func TestOperatorBoundsRefuseWhatTagsAsk(t *testing.T) {
	e := newEnv(t, envOptions{})
	isolateSDKVariables(t, e.envFile)

	// Within the bounds: adopt, then a manual rotation.
	e.mustAdopt("within")
	if o, err := e.rotate("within", rotation.NewOpID()); err != nil || o.Status != rotation.StatusRotated {
		t.Fatalf("rotate a secret within the bounds: %s %v", o.Status, err)
	}
	e.assertConverged("within")
	before := len(e.st.DevOps.PATs(org))
	creates := e.st.DevOps.Journal().Count("CreatePat")

	// The tag writer, with nothing but the Azure SDK and Key Vault rights.
	kv, err := azsecrets.NewClient(e.st.VaultURL, e.opts.Credential, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: e.opts.HTTPClient,
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.st.Entra.AuthorityHost(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	value := "placeholder"
	greedy := map[string]*string{
		rotation.TagManaged: to("true"), rotation.TagOrg: to(org), rotation.TagServiceAccount: to(account),
		rotation.TagScopes: to("app_token vso.tokens vso.security_manage"), rotation.TagAllowFullScope: to("true"), rotation.TagLifetime: to("365d"),
	}
	if _, err := kv.SetSecret(e.ctx, "greedy", azsecrets.SetSecretParameters{Value: &value, Tags: greedy}, nil); err != nil {
		t.Fatalf("the tag writer's SetSecret: %v", err)
	}
	const wantGreedy = "outside bounds (scopes app_token, vso.tokens, vso.security_manage not allowed by PATROL_ALLOWED_SCOPES; lifetime 365d exceeds PATROL_MAX_LIFETIME=90d)"

	// RotateNow's work (a manual command to the Rotate worker).
	o, err := e.rotate("greedy", rotation.NewOpID())
	if err == nil || o.Status != rotation.StatusNeedsAttention || o.Reason != rotation.ReasonOutsideBounds || o.Message != wantGreedy {
		t.Fatalf("manual rotation of the greedy secret: %s/%s %q (%v), want needs-attention/outside-bounds %q", o.Status, o.Reason, o.Message, err, wantGreedy)
	}
	// Adopt asking for the same, in the core and through the CLI: refused before minting.
	attack := rotation.Policy{Org: org, Scopes: []string{"app_token", "vso.tokens", "vso.security_manage"}, ServiceAccount: account, AllowFullScope: true, Lifetime: 365 * 24 * time.Hour}.Tags()
	o, err = e.svc.Rotator.Run(e.ctx, "db-password", rotation.Trigger{Kind: rotation.TriggerAdopt, Op: rotation.NewOpID(), Policy: attack})
	if err == nil || o.Status != rotation.StatusNeedsAttention || o.Reason != rotation.ReasonOutsideBounds {
		t.Fatalf("adopt asking for too much: %s/%s %q (%v)", o.Status, o.Reason, o.Message, err)
	}
	out, errOut, code := e.patrol("adopt", "db-password", "--org", org, "--scopes", "app_token vso.tokens", "--allow-full-scope", "--lifetime", "365d")
	if code == 0 || !strings.Contains(errOut, "outside bounds (scopes app_token, vso.tokens not allowed by PATROL_ALLOWED_SCOPES") {
		t.Fatalf("patrol adopt asking for too much: exit %d\n%s%s", code, out, errOut)
	}

	// Retargeting a managed secret at another account: the next sweep would have
	// rotated it under that account; now status says why it will not.
	props, err := kv.GetSecret(e.ctx, "within", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	props.Tags[rotation.TagServiceAccount] = to("admin@" + stack.Domain)
	if _, err := kv.UpdateSecretProperties(e.ctx, "within", props.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{Tags: props.Tags}, nil); err != nil {
		t.Fatalf("the tag writer's UpdateSecretProperties: %v", err)
	}

	out, errOut, code = e.patrol("status")
	if code != 0 || !strings.Contains(out, "needs attention: "+wantGreedy) ||
		!strings.Contains(out, "needs attention: outside bounds (service account admin@contoso.com not allowed by PATROL_ALLOWED_SERVICE_ACCOUNTS)") {
		t.Fatalf("status does not show the secrets outside the bounds: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = e.patrol("plan")
	if code != 0 || !strings.Contains(out, "would enqueue 0 rotation(s)") || strings.Count(out, string(rotation.ReasonOutsideBounds)) != 2 {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errOut)
	}

	// Nothing was minted for any of it.
	if n := e.st.DevOps.Journal().Count("CreatePat"); n != creates {
		t.Errorf("the Azure DevOps emulator saw %d PAT creations after the attack began, want none", n-creates)
	}
	pats := e.st.DevOps.PATs(org)
	if len(pats) != before {
		t.Errorf("the organization holds %d PATs, want the %d it held before the attack", len(pats), before)
	}
	for _, p := range pats {
		if s, _, _ := rotation.ParseDisplayName(p.DisplayName); s == "greedy" || s == "db-password" {
			t.Errorf("a PAT was created for %s: %+v", s, p)
		}
	}
	if _, tags, v := e.current("greedy"); v != value || tags[rotation.TagPATID] != "" {
		t.Errorf("the greedy secret was written to (PAT id %q)", tags[rotation.TagPATID])
	}
}

func to(s string) *string { return &s }
