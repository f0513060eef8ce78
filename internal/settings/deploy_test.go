package settings

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/local/packaging"
)

// What azd and the Azure monitoring read must agree with the code: azure.yaml's dist
// with where the prepackage hooks stage the package, main.parameters.json with
// main.bicep, and the log messages the alert and workbook queries match with the ones
// patrol logs.

var (
	yamlDist    = regexp.MustCompile(`(?m)^\s+dist:\s*(\S+)\s*$`)
	yamlHookRun = regexp.MustCompile(`(?m)^\s+run:\s*(?:sh\s+)?(infra/hooks/\S+)`)
	outFlag     = regexp.MustCompile(`patrol-dev package --out (\S+)`)
)

func TestAzdDistIsWhereThePrepackageHooksStageThePackage(t *testing.T) {
	root := repoRoot(t)
	yml := string(readSource(t, root, "azure.yaml"))
	m := yamlDist.FindStringSubmatch(yml)
	if m == nil {
		t.Fatal("azure.yaml: no dist")
	}
	dist := m[1]
	hooks := yamlHookRun.FindAllStringSubmatch(yml, -1)
	if len(hooks) != 2 {
		t.Fatalf("azure.yaml: %d prepackage hook scripts under infra/hooks/, want 2 (posix and windows)", len(hooks))
	}
	for _, h := range hooks {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(h[1])))
		if err != nil {
			t.Errorf("azure.yaml: hook %s: %v", h[1], err)
			continue
		}
		script := string(data)
		out := outFlag.FindStringSubmatch(script)
		if out == nil {
			t.Errorf("%s: does not run `patrol-dev package --out <dir>`", h[1])
			continue
		}
		if want := out[1] + "/" + packaging.StageDir; dist != want {
			t.Errorf("azure.yaml: dist is %s but %s stages the package in %s", dist, h[1], want)
		}
	}
}

var (
	azdRef    = regexp.MustCompile(`^\$\{(\w+)(?:=(.*))?\}$`)
	paramLine = regexp.MustCompile(`(?m)^param\s+(\w+)\s+\w+(?:\s*=\s*(.+?))?\s*$`)
)

func TestParametersFileMatchesMainBicep(t *testing.T) {
	root := repoRoot(t)
	const rel = "infra/main.parameters.json"
	var file struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(readSource(t, root, rel), &file); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	declared := map[string]string{} // name -> default expression ("" without one)
	for _, m := range paramLine.FindAllStringSubmatch(string(readSource(t, root, "infra/main.bicep")), -1) {
		declared[m[1]] = m[2]
	}
	for _, name := range sortedKeys(file.Parameters) {
		def, ok := declared[name]
		if !ok {
			t.Errorf("%s: parameter %s is not declared in infra/main.bicep", rel, name)
			continue
		}
		v, isString := file.Parameters[name].Value.(string)
		if !isString {
			continue
		}
		ref := azdRef.FindStringSubmatch(v)
		if ref == nil {
			t.Errorf("%s: %s is %q, want an azd env reference ${NAME} or ${NAME=default}", rel, name, v)
			continue
		}
		if !strings.Contains(v, "=") || def == "" {
			continue // required, or fed by azd itself (AZURE_LOCATION, AZURE_PRINCIPAL_ID)
		}
		bicepDefault := def
		if s, ok := unquote(def); ok {
			bicepDefault = s
		} else if strings.HasPrefix(strings.TrimSpace(def), "'") {
			continue // an interpolated default: nothing literal to compare
		}
		if ref[2] != bicepDefault {
			t.Errorf("%s: %s defaults to %q through ${%s=…} but infra/main.bicep says %q", rel, name, ref[2], ref[1], bicepDefault)
		}
	}
}

// These find the log messages a query matches: msg == "…", msg startswith "…" and the
// strings of msg in (…).
var (
	kqlMsgCompare = regexp.MustCompile(`msg\s*(==|startswith)\s*"([^"]+)"`)
	kqlMsgIn      = regexp.MustCompile(`msg\s+in\s*\(([^)]*)\)`)
	kqlString     = regexp.MustCompile(`"([^"]+)"`)
)

func TestMonitoringQueriesMatchWhatPatrolLogs(t *testing.T) {
	root := repoRoot(t)
	queries, err := filepath.Glob(filepath.Join(root, "infra", "modules", "queries", "*.kql"))
	if err != nil || len(queries) == 0 {
		t.Fatalf("no infra/modules/queries/*.kql (%v)", err)
	}
	code := goSourceText(t, root, "internal", "handlers")
	for _, q := range queries {
		rel, _ := filepath.Rel(root, q)
		data, err := os.ReadFile(q)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		var literals []string // as the Go source must spell them, quotes included
		for _, m := range kqlMsgCompare.FindAllStringSubmatch(text, -1) {
			lit := `"` + m[2]
			if m[1] == "==" {
				lit += `"`
			}
			literals = append(literals, lit)
		}
		for _, m := range kqlMsgIn.FindAllStringSubmatch(text, -1) {
			for _, s := range kqlString.FindAllStringSubmatch(m[1], -1) {
				literals = append(literals, `"`+s[1]+`"`)
			}
		}
		if len(literals) == 0 {
			t.Errorf("%s: matches no log message (msg == \"…\")", rel)
		}
		for _, lit := range literals {
			if !strings.Contains(code, lit) {
				t.Errorf("%s: matches log message %s, which no Go source under internal/ or handlers/ logs", rel, lit)
			}
		}
	}
}

// goSourceText is every non-test Go file under dirs, concatenated.
func goSourceText(t *testing.T, root string, dirs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
			b.WriteByte('\n')
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
