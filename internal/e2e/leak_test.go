package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	sbemu "github.com/patrol-dev/patrol/internal/local/emulator/servicebus"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// TestNoTokenValueAppearsInAnyOutput runs everything an operator and the functions do
// — sign-in, adopt, rotate, status, a scheduled revocation, a failed rotation — with
// every log line (patrol's and the emulators', at debug level) and all CLI output
// captured, then searches that text for every credential that crossed the wire.
func TestNoTokenValueAppearsInAnyOutput(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	e.approveDeviceSignIns(ctx)

	var cliOut strings.Builder
	run := func(args ...string) {
		out, errOut, code := e.patrol(args...)
		cliOut.WriteString(out + errOut)
		if code != 0 {
			t.Fatalf("patrol %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	// Both sign-ins: the browser's (its authorization code is a credential too) and the
	// device code's.
	codes := &codeRecorder{next: e.st.HTTP.Transport}
	b := e.browserAs(stack.ServiceAccount)
	b.HTTP = &http.Client{Transport: codes}
	out, errOut, code := e.patrolWithBrowser(b.Open, "login", "--service-account", stack.ServiceAccount)
	cliOut.WriteString(out + errOut)
	if code != 0 || len(codes.values()) != 1 {
		t.Fatalf("patrol login (browser): exit %d, %d codes seen\n%s%s", code, len(codes.values()), out, errOut)
	}
	run("login", "--service-account", stack.ServiceAccount, "--device-code")
	run("adopt", "leaky", "--org", stack.Organization, "--scopes", "vso.code")
	run("rotate", "leaky")
	run("rotate", "leaky", "--revoke-now")
	run("status")
	run("status", "-o", "json")
	run("plan")

	// The Revoke function's work for the first replaced PAT, and a refused one.
	_, tags, _ := e.current("leaky")
	if _, err := e.svc.Rotator.Revoke(e.ctx, rotation.Revocation{Secret: "leaky", Org: org, PATID: tags[rotation.TagPreviousPATID], Account: account, Op: "leak-test"}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	e.allFaults()["devops"].Set("ConnectionData", faultStatus(401))
	if _, err := e.rotate("leaky", rotation.NewOpID()); err == nil {
		t.Fatal("a rotation whose verification is refused succeeded")
	}
	e.allFaults()["devops"].Reset()

	secrets := append(e.seen.values(), e.st.WorkloadSecret, e.st.ServiceAccountPassword, sbemu.DefaultKey)
	secrets = append(secrets, codes.values()...)
	pats := e.st.DevOps.Journal().Count("CreatePat")
	if len(secrets) < pats+3 || pats < 4 {
		t.Fatalf("only %d credentials were seen for %d PATs created: the recorder missed the traffic", len(secrets), pats)
	}
	text := e.logs.String() + cliOut.String()
	if !strings.Contains(text, "created PAT") {
		t.Fatal("the captured logs lack the rotation's own lines: nothing was captured")
	}
	leaks := 0
	for _, s := range secrets {
		if strings.Contains(text, s) {
			leaks++
		}
	}
	if leaks > 0 {
		// Never print the values themselves.
		t.Fatalf("%d of %d credential values appear in the captured output (%d bytes)", leaks, len(secrets), len(text))
	}
}
