package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/cli"
	"github.com/patrol-dev/patrol/internal/devops"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

func TestDiscoverFindsAPlantedPATAndSendsNothingElse(t *testing.T) {
	a := newAccountEnv(t)
	isolateSDKVariables(t, a.envFile)
	planted, err := a.alice().CreatePAT(a.ctx, org, devops.CreateRequest{DisplayName: "pasted by hand", Scope: "vso.code", ValidTo: a.st.Clock.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	exp := a.st.Clock.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	others := map[string]string{
		"db-password": "Server=db;Password=hunter2-" + strings.Repeat("x", 20),
		// The shape of a legacy PAT, but no organization knows it.
		"base32-lookalike": "ntpi2ch67ci2vjzcohglogyygwo5fuyl365n2zdowwxhsys6jnoa",
		// A real PAT with a trailing newline is not a PAT's exact shape: never sent.
		"pat-with-newline": planted.Token.Reveal() + "\n",
	}
	if _, err := a.st.KV.Put(stack.Vault, "release-pat", kvemu.NewSecret{Value: planted.Token.Reveal(), Expires: &exp}); err != nil {
		t.Fatal(err)
	}
	for name, v := range others {
		if _, err := a.st.KV.Put(stack.Vault, name, kvemu.NewSecret{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	// Azure DevOps throttles the first try: discover waits and tries again.
	a.st.DevOps.Faults().Set(devopsemu.OpConnectionData, fault.Fault{Status: 429, RetryAfter: 2 * time.Second, Times: 1})
	before := len(a.st.DevOps.Journal().Entries())

	out, errOut, code := a.patrol("discover", "-o", "json")
	if code != 0 {
		t.Fatalf("discover: exit %d\n%s\n%s", code, out, errOut)
	}
	var found []cli.Discovered
	if err := json.Unmarshal([]byte(out), &found); err != nil {
		t.Fatalf("discover -o json: %v\n%s", err, out)
	}
	if len(found) != 1 || found[0].Secret != "release-pat" || found[0].Format != "current" || len(found[0].Orgs) != 1 ||
		found[0].Orgs[0].User != stack.Person || !found[0].Expires.Equal(exp) || !strings.HasPrefix(found[0].Adopt, "patrol adopt release-pat --org "+org) {
		t.Fatalf("found %+v, want release-pat, alice's, in %s, expiring %s", found, org, exp)
	}
	for _, v := range append([]string{planted.Token.Reveal()}, others["db-password"], others["base32-lookalike"]) {
		if strings.Contains(out+errOut, v) {
			t.Fatal("discover printed a secret value")
		}
	}
	if !strings.Contains(errOut, "discover: ") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}
	// connectionData saw exactly the two PAT-shaped values (one throttled and retried),
	// in the one allowed organization: never the password nor the value with a newline.
	var calls []string
	for _, e := range a.st.DevOps.Journal().Entries()[before:] {
		if e.Operation == devopsemu.OpConnectionData {
			calls = append(calls, e.Path)
		}
	}
	if len(calls) != 3 {
		t.Errorf("connectionData called %d times (%v), want 3: the planted PAT twice (throttled once), the look-alike once", len(calls), calls)
	}

	out, _, code = a.patrol("discover")
	if code != 0 || !strings.Contains(out, "1 of ") || !strings.Contains(out, "release-pat") || !strings.Contains(out, "patrol adopt release-pat") {
		t.Errorf("discover table: exit %d\n%s", code, out)
	}
}
