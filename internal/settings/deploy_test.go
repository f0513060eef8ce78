package settings

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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
	paramLine = regexp.MustCompile(`(?m)^param\s+(\w+)\s+(\w+)(?:\s*=\s*(.+?))?\s*$`)
)

// azdCannotPass are main.bicep parameters left out of main.parameters.json on purpose,
// each with the reason. azd substitutes ${NAME} inside a JSON string and converts the
// result only to a bool or an integer (strconv.ParseBool/ParseInt in
// cli/azd/pkg/infra/provisioning/bicep/bicep_provider.go, armParameterFileValue), so an
// object or array parameter cannot come from an azd environment variable.
var azdCannotPass = map[string]string{
	"tags":                         "an object: set it in a parameters file of your own or with az deployment -p",
	"identityVaultAllowedIpRanges": "an array: set it in a parameters file of your own or with az deployment -p",
}

func TestParametersFileMatchesMainBicep(t *testing.T) {
	root := repoRoot(t)
	const rel = "infra/main.parameters.json"
	for _, problem := range parametersFileProblems(string(readSource(t, root, "infra/main.bicep")), readSource(t, root, rel)) {
		t.Errorf("%s: %s", rel, problem)
	}
}

// parametersFileProblems says where a parameters file for azd disagrees with the Bicep
// it feeds: every parameter azd can pass is mapped to its own azd environment variable
// with main.bicep's default, in a form azd turns into the parameter's type.
func parametersFileProblems(bicep string, parametersJSON []byte) []string {
	var file struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(parametersJSON, &file); err != nil {
		return []string{err.Error()}
	}
	type param struct{ typ, def string } // def is "" without a default
	declared := map[string]param{}
	for _, m := range paramLine.FindAllStringSubmatch(bicep, -1) {
		declared[m[1]] = param{typ: m[2], def: m[3]}
	}
	var problems []string
	for _, name := range sortedKeys(declared) {
		_, mapped := file.Parameters[name]
		why, exempt := azdCannotPass[name]
		switch {
		case exempt && mapped:
			problems = append(problems, fmt.Sprintf("%s is mapped although azdCannotPass exempts it (%s)", name, why))
		case exempt && declared[name].typ != "object" && declared[name].typ != "array":
			problems = append(problems, fmt.Sprintf("%s is a %s, which azd can pass: map it instead of exempting it", name, declared[name].typ))
		case !exempt && !mapped:
			problems = append(problems, fmt.Sprintf("parameter %s of infra/main.bicep is not mapped to an azd environment variable (add \"%s\": {\"value\": \"${NAME=default}\"})", name, name))
		}
	}
	variables := map[string]string{} // azd variable -> parameter
	for _, name := range sortedKeys(file.Parameters) {
		p, ok := declared[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("parameter %s is not declared in infra/main.bicep", name))
			continue
		}
		if _, exempt := azdCannotPass[name]; exempt {
			continue // reported above
		}
		v, isString := file.Parameters[name].Value.(string)
		ref := azdRef.FindStringSubmatch(v)
		if !isString || ref == nil {
			problems = append(problems, fmt.Sprintf("%s is %v, want an azd env reference \"${NAME}\" or \"${NAME=default}\"", name, file.Parameters[name].Value))
			continue
		}
		if other, dup := variables[ref[1]]; dup {
			problems = append(problems, fmt.Sprintf("%s and %s both read ${%s}", other, name, ref[1]))
		}
		variables[ref[1]] = name
		if !strings.Contains(v, "=") {
			if p.def != "" && !fedByAzd[ref[1]] {
				problems = append(problems, fmt.Sprintf("%s reads ${%s} without a default, but infra/main.bicep has one (%s): an unset variable would pass an empty value", name, ref[1], p.def))
			}
			continue // required, or fed by azd itself (AZURE_LOCATION, AZURE_PRINCIPAL_ID)
		}
		// azd turns the substituted string into a bool or an integer only when it
		// parses as one; anything else reaches ARM as a string and fails the type.
		switch p.typ {
		case "bool":
			if _, err := strconv.ParseBool(ref[2]); err != nil {
				problems = append(problems, fmt.Sprintf("%s is a bool but its default %q is not one azd converts", name, ref[2]))
				continue
			}
		case "int":
			if _, err := strconv.ParseInt(ref[2], 10, 64); err != nil {
				problems = append(problems, fmt.Sprintf("%s is an int but its default %q is not one azd converts", name, ref[2]))
				continue
			}
		}
		if p.def == "" {
			continue
		}
		bicepDefault := p.def
		if s, ok := unquote(p.def); ok {
			bicepDefault = s
		} else if strings.HasPrefix(strings.TrimSpace(p.def), "'") {
			continue // an interpolated default: nothing literal to compare
		}
		if ref[2] != bicepDefault {
			problems = append(problems, fmt.Sprintf("%s defaults to %q through ${%s=…} but infra/main.bicep says %s", name, ref[2], ref[1], p.def))
		}
	}
	return problems
}

// fedByAzd are variables azd sets in every environment before it provisions.
var fedByAzd = map[string]bool{"AZURE_ENV_NAME": true, "AZURE_LOCATION": true, "AZURE_PRINCIPAL_ID": true}

func TestParametersFileProblemsFindsEachDisagreement(t *testing.T) {
	const bicep = `
param environmentName string
param grace string = '72h'
param allowRopc bool = false
param maximumInstanceCount int = 40
param tags object = {}
param identityVaultAllowedIpRanges array = []
`
	file := func(params string) []byte {
		return []byte(`{"parameters": {"environmentName": {"value": "${AZURE_ENV_NAME}"}` + params + `}}`)
	}
	const all = `, "grace": {"value": "${PATROL_GRACE=72h}"}, "allowRopc": {"value": "${PATROL_ALLOW_ROPC=false}"}, "maximumInstanceCount": {"value": "${PATROL_MAXIMUM_INSTANCE_COUNT=40}"}`
	tests := []struct {
		name   string
		params string
		want   string // a fragment of the one problem expected; "" for none
	}{
		{"every parameter azd can pass is mapped with its default", all, ""},
		{"a parameter missing from the file is reported", `, "grace": {"value": "${PATROL_GRACE=72h}"}, "allowRopc": {"value": "${PATROL_ALLOW_ROPC=false}"}`, "maximumInstanceCount of infra/main.bicep is not mapped"},
		{"a default that differs from main.bicep's is reported", strings.Replace(all, "=72h", "=24h", 1), `grace defaults to "24h"`},
		{"a bool default azd would pass as a string is reported", strings.Replace(all, "=false", "=no", 1), "not one azd converts"},
		{"an int default azd would pass as a string is reported", strings.Replace(all, "=40}", "=forty}", 1), "not one azd converts"},
		{"a literal value azd cannot override is reported", strings.Replace(all, `"${PATROL_ALLOW_ROPC=false}"`, `false`, 1), "want an azd env reference"},
		{"two parameters reading one variable are reported", strings.Replace(all, "PATROL_MAXIMUM_INSTANCE_COUNT", "PATROL_GRACE", 1), "both read ${PATROL_GRACE}"},
		{"a parameter with a default read without one is reported", strings.Replace(all, "${PATROL_GRACE=72h}", "${PATROL_GRACE}", 1), "without a default"},
		{"an exempted array that is mapped anyway is reported", all + `, "identityVaultAllowedIpRanges": {"value": "${X=}"}`, "although azdCannotPass exempts it"},
		{"a mapped parameter main.bicep does not declare is reported", all + `, "gone": {"value": "${GONE=}"}`, "gone is not declared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parametersFileProblems(bicep, file(tt.params))
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("problems %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("problems %q, want exactly one containing %q", got, tt.want)
			}
		})
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

// azdHookNames are the project hooks azd runs (Azure/azure-dev
// cli/azd/pkg/ext/known_hooks.go); a hook under another name never runs.
var azdHookNames = map[string]bool{
	"prebuild": true, "postbuild": true, "predeploy": true, "postdeploy": true,
	"predown": true, "postdown": true, "prepackage": true, "postpackage": true,
	"preprovision": true, "postprovision": true, "prepublish": true, "postpublish": true,
	"prerestore": true, "postrestore": true, "preup": true, "postup": true,
}

// TestAzdDownThenUpStartsWithoutTheEventSubscription holds azure.yaml to the cycle in
// docs/deploy.md: postdeploy turns the Key Vault event subscription on once the code
// exists, and postdown turns it off again, since after azd down the next azd up
// provisions before the KeyVaultEvents function exists.
func TestAzdDownThenUpStartsWithoutTheEventSubscription(t *testing.T) {
	root := repoRoot(t)
	yml := string(readSource(t, root, "azure.yaml"))
	params := string(readSource(t, root, "infra/main.parameters.json"))
	const variable = "SUBSCRIBE_KEYVAULT_EVENTS"
	if !strings.Contains(params, "${"+variable+"=false}") {
		t.Fatalf("infra/main.parameters.json: subscribeKeyVaultEvents does not read ${%s=false}", variable)
	}
	hooks, ok := yamlBlock(yml, "hooks")
	if !ok {
		t.Fatal("azure.yaml: no project hooks")
	}
	for _, name := range yamlKeys(hooks) {
		if !azdHookNames[name] {
			t.Errorf("azure.yaml: hook %s is not one azd runs", name)
		}
	}
	for _, tc := range []struct{ hook, value string }{{"postdeploy", "true"}, {"postdown", "false"}} {
		for _, platform := range []struct{ name, shell, env string }{
			{"posix", "sh", `"$AZURE_ENV_NAME"`},
			{"windows", "pwsh", "$env:AZURE_ENV_NAME"},
		} {
			where := "azure.yaml: hooks." + tc.hook + "." + platform.name
			block, ok := yamlBlock(hooks, tc.hook, platform.name)
			if !ok {
				t.Errorf("%s: missing", where)
				continue
			}
			if shell, _ := yamlBlock(block, "shell"); strings.TrimSpace(shell) != platform.shell {
				t.Errorf("%s: shell is %q, want %s", where, strings.TrimSpace(shell), platform.shell)
			}
			run, _ := yamlBlock(block, "run")
			if want := "azd env set " + variable + " " + tc.value + " -e " + platform.env; !strings.Contains(run, want) {
				t.Errorf("%s: run does not contain %q (for the environment azd is working on)", where, want)
			}
		}
	}
}

// yamlBlock returns what follows key (nested keys in path order) in a YAML mapping
// written with spaces: the rest of the key's line and every more-indented line after
// it. Enough for azure.yaml; no flow style, anchors or quoted keys.
func yamlBlock(text string, path ...string) (string, bool) {
	for _, key := range path {
		lines := strings.Split(text, "\n")
		indent := -1 // of the mapping's keys: the first key line's
		found := false
		var b strings.Builder
		for _, line := range lines {
			trimmed := strings.TrimLeft(line, " ")
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				if found {
					b.WriteString(line + "\n")
				}
				continue
			}
			n := len(line) - len(trimmed)
			if indent < 0 {
				indent = n
			}
			if found {
				if n <= indent {
					break
				}
				b.WriteString(line + "\n")
				continue
			}
			if n == indent && strings.HasPrefix(trimmed, key+":") {
				found = true
				if rest := strings.TrimSpace(strings.TrimPrefix(trimmed, key+":")); rest != "" && rest != "|" {
					b.WriteString(rest + "\n")
				}
			}
		}
		if !found {
			return "", false
		}
		text = b.String()
	}
	return text, true
}

// yamlKeys lists the top-level keys of a block yamlBlock returned.
func yamlKeys(block string) []string {
	var keys []string
	indent := -1
	for _, line := range strings.Split(block, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		n := len(line) - len(trimmed)
		if indent < 0 {
			indent = n
		}
		if k, _, ok := strings.Cut(trimmed, ":"); ok && n == indent {
			keys = append(keys, k)
		}
	}
	return keys
}
