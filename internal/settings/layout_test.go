package settings

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// docs/architecture.md's layout tables are how a newcomer finds a package: every Go
// package in the module must have a row, and every row must name a package (or a
// folder) that exists.
func TestTheArchitecturePageListsEveryPackage(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/patrol-dev/patrol/"
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 20 {
		t.Fatalf("go list named only %d packages: the check saw too little to mean anything", len(pkgs))
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p, module)
		if !strings.Contains(string(doc), "| `"+rel+"/` |") {
			t.Errorf("docs/architecture.md has no row for %s/", rel)
		}
	}
	for _, line := range strings.Split(string(doc), "\n") {
		rest, ok := strings.CutPrefix(line, "| `")
		if !ok {
			continue
		}
		path, _, ok := strings.Cut(rest, "` |")
		if !ok || !strings.HasSuffix(path, "/") || strings.ContainsAny(path, "<, ") {
			continue // setting rows, and rows such as `functions/<Name>/function.json`
		}
		if _, err := os.Stat(filepath.Join(root, path)); err != nil {
			t.Errorf("docs/architecture.md lists %s, which does not exist", path)
		}
	}
}
