package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The deployed binary must not carry the local tooling: an Entra emulator is a token
// minter, and none of internal/local ever runs in Azure. This is the test of the line
// the folders draw.
func TestTheDeployedBinaryLinksNoLocalTooling(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	var linked []string
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/patrol-dev/patrol/") {
			linked = append(linked, pkg)
		}
		if strings.HasPrefix(pkg, "github.com/patrol-dev/patrol/internal/local/") || pkg == "github.com/patrol-dev/patrol/cmd/patrol-dev" {
			t.Errorf("cmd/patrol links %s, which is local tooling", pkg)
		}
	}
	if len(linked) < 5 {
		t.Fatalf("go list named only %v: the check saw too little to mean anything", linked)
	}
}
