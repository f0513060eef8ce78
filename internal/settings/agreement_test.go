package settings

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/local/packaging"
)

// The names fixed by docs/architecture.md "Names". The settings come from the doc's
// table (parsed below); functions and entities are written out here because they sit in
// prose, and TestContractMatchesArchitectureDoc checks each appears in the doc.
var (
	wantFunctions = map[string]trigger{
		"KeyVaultEvents":    {kind: "eventGridTrigger"},
		"Offboarding":       {kind: "serviceBusTrigger", queue: "hr-offboarding"},
		"Rotate":            {kind: "serviceBusTrigger", queue: "pat-rotations", sessions: true},
		"Revoke":            {kind: "serviceBusTrigger", queue: "pat-revocations"},
		"RotateNow":         {kind: "httpTrigger", method: "post", route: "rotate/{secret}"},
		"SecretStatus":      {kind: "httpTrigger", method: "get", route: "status/{secret?}"},
		"Sweep":             {kind: "timerTrigger", schedule: "%PATROL_SWEEP_SCHEDULE%"},
		"OffboardingReport": {kind: "httpTrigger", method: "get", route: "offboarding/{person}"},
	}
	wantQueues = map[string]queue{
		"hr-offboarding":  {},
		"pat-rotations":   {sessions: true, dedupe: true},
		"pat-revocations": {dedupe: true},
		"pat-replies":     {sessions: true, dedupe: true},
	}
	wantTopics = []string{"pat-events"}
	// The Event Grid subscription delivers exactly these, to the eventGridTrigger function.
	wantEventTypes = []string{"Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"}
)

type trigger struct {
	kind, queue, method, route, schedule string
	sessions                             bool
}

type queue struct{ sessions, dedupe bool }

// docSetting is one row of the architecture doc's settings table.
type docSetting struct {
	name      string
	localOnly bool   // "(local)" or "(local stack only)": never set in Azure
	literal   string // the default when the doc gives one in backticks
	hasLit    bool
}

// repoRoot is the folder holding go.mod, found upwards from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// readSource reads a source file, skipping the calling test when it does not exist
// yet (other engineers write it). Every skip names the file; remove the skip once the
// file has landed so that deleting it later fails the test.
func readSource(t *testing.T, root, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if os.IsNotExist(err) {
		t.Skipf("%s does not exist yet; nothing to compare", rel)
	}
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return data
}

var settingRow = regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|([^|]*)\\|([^|]*)\\|\\s*$")

// docSettings parses the "## Settings" table of docs/architecture.md.
func docSettings(t *testing.T, root string) map[string]docSetting {
	t.Helper()
	const rel = "docs/architecture.md"
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("read %s (the contract every other file is checked against): %v", rel, err)
	}
	out := map[string]docSetting{}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimSpace(line) == "## Settings"
		case in:
			m := settingRow.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			meaning, def := strings.TrimSpace(m[2]), strings.TrimSpace(m[3])
			s := docSetting{
				name:      m[1],
				localOnly: strings.Contains(meaning, "(local)") || strings.Contains(meaning, "local stack only"),
			}
			if len(def) >= 2 && strings.HasPrefix(def, "`") && strings.HasSuffix(def, "`") && strings.Count(def, "`") == 2 {
				s.literal, s.hasLit = strings.Trim(def, "`"), true
			}
			out[s.name] = s
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rows like | `NAME` | meaning | default | under \"## Settings\"", rel)
	}
	return out
}

// isDocSetting reports whether name, or the connection it is a property of
// (Name__property, the Functions identity-connection convention), is a doc setting.
func isDocSetting(doc map[string]docSetting, name string) bool {
	if _, ok := doc[name]; ok {
		return true
	}
	base, _, found := strings.Cut(name, "__")
	_, ok := doc[base]
	return found && ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestContractMatchesArchitectureDoc(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs/architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := append(sortedKeys(wantFunctions), sortedKeys(wantQueues)...)
	names = append(names, wantTopics...)
	for _, name := range names {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/architecture.md does not name `%s`, which this test holds the other files to", name)
		}
	}
	docSettings(t, root) // parses, or fails naming the table
}

// configSettings reads the values of the Setting* string constants in internal/config.
func configSettings(t *testing.T, root string) map[string]string {
	t.Helper()
	dir := filepath.Join(root, "internal", "config")
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		t.Skip("internal/config does not exist yet; nothing to compare")
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{} // value -> file:line
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Setting") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						continue
					}
					pos := fset.Position(lit.Pos())
					rel, _ := filepath.Rel(root, pos.Filename)
					out[v] = fmt.Sprintf("%s:%d (%s)", filepath.ToSlash(rel), pos.Line, id.Name)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("internal/config: no Setting* string constants found")
	}
	return out
}

func TestConfigConstantsMatchTheDoc(t *testing.T) {
	root := repoRoot(t)
	doc := docSettings(t, root)
	code := configSettings(t, root)
	for _, name := range sortedKeys(doc) {
		if _, ok := code[name]; !ok {
			t.Errorf("internal/config: no Setting* constant for %s, which docs/architecture.md lists", name)
		}
	}
	for _, name := range sortedKeys(code) {
		if _, ok := doc[name]; !ok {
			t.Errorf("%s: setting %s is not in the docs/architecture.md settings table", code[name], name)
		}
	}
}

// hostKeys are app settings the Functions host (not patrol) reads.
func isHostKey(key string) bool {
	for _, p := range []string{"FUNCTIONS_", "AzureWebJobs", "APPLICATIONINSIGHTS_", "WEBSITE_"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func TestLocalSettingsExampleMatchesTheDoc(t *testing.T) {
	root := repoRoot(t)
	doc := docSettings(t, root)
	const rel = "local.settings.json.example"
	var file struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal(readSource(t, root, rel), &file); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	if file.Values == nil {
		t.Fatalf("%s: no \"Values\" object", rel)
	}
	if rt := file.Values["FUNCTIONS_WORKER_RUNTIME"]; !strings.EqualFold(rt, "custom") {
		t.Errorf("%s: FUNCTIONS_WORKER_RUNTIME is %q, want Custom (a Go custom handler)", rel, rt)
	}
	for _, name := range sortedKeys(doc) {
		if _, ok := file.Values[name]; !ok {
			t.Errorf("%s: setting %s (docs/architecture.md) is missing; list every setting, empty if unused", rel, name)
		}
	}
	for _, key := range sortedKeys(file.Values) {
		if !isHostKey(key) && !isDocSetting(doc, key) {
			t.Errorf("%s: %s is not a setting docs/architecture.md knows", rel, key)
		}
	}
	for _, name := range sortedKeys(doc) {
		s := doc[name]
		if v := file.Values[name]; s.hasLit && v != "" && v != s.literal {
			t.Errorf("%s: %s is %q but the documented default is %q", rel, name, v, s.literal)
		}
	}
}

var docsRow = regexp.MustCompile("(?m)^\\|\\s*`([^`]+)`\\s*\\|")

// docs/settings.md explains every key of local.settings.json.example; its rows must
// name exactly the contract's settings plus the host's own keys.
func TestSettingsPageMatchesTheDoc(t *testing.T) {
	root := repoRoot(t)
	doc := docSettings(t, root)
	const rel = "docs/settings.md"
	page := string(readSource(t, root, rel))
	rows := map[string]bool{}
	for _, m := range docsRow.FindAllStringSubmatch(page, -1) {
		rows[m[1]] = true
	}
	for _, name := range sortedKeys(doc) {
		if !rows[name] {
			t.Errorf("%s: no table row for setting %s (docs/architecture.md)", rel, name)
		}
	}
	for _, name := range sortedKeys(rows) {
		looksLikeSetting := strings.HasPrefix(name, "PATROL_") || strings.HasPrefix(name, "ServiceBusConnection") || strings.HasPrefix(name, "AZURE_")
		if looksLikeSetting && !isDocSetting(doc, name) {
			t.Errorf("%s: row for %s, which docs/architecture.md does not list", rel, name)
		}
	}
}

// functionJSON is what the test reads from a function.json.
type functionJSON struct {
	Bindings []map[string]any `json:"bindings"`
}

// functions reads every functions/<Name>/function.json.
func functions(t *testing.T, root string) (map[string]functionJSON, map[string][]byte) {
	t.Helper()
	dir := filepath.Join(root, "functions")
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		t.Skip("functions/ does not exist yet; nothing to compare")
	}
	if err != nil {
		t.Fatal(err)
	}
	parsed := map[string]functionJSON{}
	raw := map[string][]byte{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		rel := "functions/" + e.Name() + "/function.json"
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		var fj functionJSON
		if err := json.Unmarshal(data, &fj); err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		parsed[e.Name()], raw[e.Name()] = fj, data
	}
	return parsed, raw
}

// triggerOf returns the function's single trigger binding.
func triggerOf(fj functionJSON) (map[string]any, error) {
	var found []map[string]any
	for _, b := range fj.Bindings {
		if kind, _ := b["type"].(string); strings.HasSuffix(kind, "Trigger") {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("has %d trigger bindings, want exactly 1", len(found))
	}
	return found[0], nil
}

var settingRef = regexp.MustCompile(`%([^%\s"]+)%`)

func TestFunctionJSONMatchesTheContract(t *testing.T) {
	root := repoRoot(t)
	doc := docSettings(t, root)
	fns, raw := functions(t, root)
	for _, name := range sortedKeys(wantFunctions) {
		if _, ok := fns[name]; !ok {
			t.Errorf("functions/%s/function.json is missing (docs/architecture.md names function %s)", name, name)
		}
	}
	for _, name := range sortedKeys(fns) {
		rel := "functions/" + name + "/function.json"
		want, ok := wantFunctions[name]
		if !ok {
			t.Errorf("%s: function %s is not in docs/architecture.md", rel, name)
			continue
		}
		trig, err := triggerOf(fns[name])
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		str := func(k string) string { v, _ := trig[k].(string); return v }
		if got := str("type"); got != want.kind {
			t.Errorf("%s: trigger type %q, want %q", rel, got, want.kind)
		}
		if got := str("queueName"); got != want.queue {
			t.Errorf("%s: queueName %q, want %q", rel, got, want.queue)
		}
		if want.kind == "serviceBusTrigger" {
			sessions, _ := trig["isSessionsEnabled"].(bool)
			if sessions != want.sessions {
				t.Errorf("%s: isSessionsEnabled %v, want %v (queue %s)", rel, sessions, want.sessions, want.queue)
			}
		}
		if want.kind == "httpTrigger" {
			methods, _ := trig["methods"].([]any)
			if len(methods) != 1 || !strings.EqualFold(fmt.Sprint(methods[0]), want.method) {
				t.Errorf("%s: methods %v, want [%s]", rel, methods, want.method)
			}
			if got := str("route"); got != want.route {
				t.Errorf("%s: route %q, want %q", rel, got, want.route)
			}
		}
		if got := str("schedule"); got != want.schedule {
			t.Errorf("%s: schedule %q, want %q", rel, got, want.schedule)
		}
		for _, b := range fns[name].Bindings {
			if conn, ok := b["connection"].(string); ok && !isDocSetting(doc, conn) {
				t.Errorf("%s: connection %q is not a setting in docs/architecture.md", rel, conn)
			}
		}
		for _, m := range settingRef.FindAllStringSubmatch(string(raw[name]), -1) {
			if !isDocSetting(doc, m[1]) {
				t.Errorf("%s: %%%s%% is not a setting in docs/architecture.md", rel, m[1])
			}
		}
	}
}

func TestHostJSONMatchesTheContract(t *testing.T) {
	root := repoRoot(t)
	doc := docSettings(t, root)
	const rel = "host.json"
	data := readSource(t, root, rel)
	exe, err := packaging.HostExecutable(data)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	if strings.TrimPrefix(exe, "./") != packaging.BinaryName {
		t.Errorf("%s: defaultExecutablePath %q, but the package ships the binary as %q", rel, exe, packaging.BinaryName)
	}
	var host struct {
		Version         string `json:"version"`
		ExtensionBundle struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"extensionBundle"`
	}
	if err := json.Unmarshal(data, &host); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	if host.Version != "2.0" {
		t.Errorf("%s: version %q, want \"2.0\"", rel, host.Version)
	}
	// Flex Consumption requires bundle 4.x or later for non-.NET apps.
	if host.ExtensionBundle.ID != "Microsoft.Azure.Functions.ExtensionBundle" || !strings.HasPrefix(host.ExtensionBundle.Version, "[4.") {
		t.Errorf("%s: extensionBundle %+v, want Microsoft.Azure.Functions.ExtensionBundle [4.*, 5.0.0)", rel, host.ExtensionBundle)
	}
	for _, m := range settingRef.FindAllStringSubmatch(string(data), -1) {
		if !isDocSetting(doc, m[1]) {
			t.Errorf("%s: %%%s%% is not a setting in docs/architecture.md", rel, m[1])
		}
	}
}

// bicepFiles reads every infra/**/*.bicep.
func bicepFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(filepath.Join(root, "infra"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".bicep") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatalf("read infra/: %v", err)
	}
	if len(out) == 0 {
		t.Fatal("infra/ holds no .bicep files")
	}
	return out
}

func allResources(files map[string]string, typ string) []bicepResource {
	var out []bicepResource
	for _, file := range sortedKeys(files) {
		for _, r := range bicepResources(file, files[file]) {
			if strings.EqualFold(r.typ, typ) {
				out = append(out, r)
			}
		}
	}
	return out
}

// appSettings returns the Bicep app settings: key -> value expression, and the file.
func appSettings(t *testing.T, files map[string]string) (map[string]string, string) {
	t.Helper()
	var blocks []bicepResource
	for _, r := range allResources(files, "Microsoft.Web/sites/config") {
		if name, _ := prop(bicepProps(r.body), "name"); name == "'appsettings'" {
			blocks = append(blocks, r)
		}
	}
	if len(blocks) != 1 {
		t.Fatalf("infra/: found %d Microsoft.Web/sites/config 'appsettings' resources, want exactly 1 (keep the settings in one literal object)", len(blocks))
	}
	body, ok := prop(bicepProps(blocks[0].body), "properties")
	if !ok || strings.HasPrefix(strings.TrimSpace(body), "union(") {
		t.Fatalf("%s: the appsettings properties must be one literal object", blocks[0].file)
	}
	out := map[string]string{}
	for _, p := range bicepProps(body) {
		out[p.key] = p.value
	}
	return out, blocks[0].file
}

// forbiddenAppSettings must never be set: keys or connection strings, or settings Flex
// Consumption rejects because functionAppConfig replaces them.
var forbiddenAppSettings = map[string]string{
	"AzureWebJobsStorage":         "a connection string with the account key; use AzureWebJobsStorage__accountName with the identity",
	"ServiceBusConnection":        "a connection string with a SAS key; use ServiceBusConnection__fullyQualifiedNamespace",
	"FUNCTIONS_WORKER_RUNTIME":    "Flex Consumption rejects it (400 BadRequest); functionAppConfig.runtime.name says custom",
	"FUNCTIONS_EXTENSION_VERSION": "deprecated on Flex Consumption: the platform sets it",
	"WEBSITE_RUN_FROM_PACKAGE":    "Flex Consumption deploys from functionAppConfig.deployment.storage",
	"AzureWebJobsDashboard":       "retired; a connection string",
}

func TestBicepAppSettingsMatchTheContract(t *testing.T) {
	root := repoRoot(t)
	doc := docSettings(t, root)
	files := bicepFiles(t, root)
	settings, file := appSettings(t, files)

	for _, name := range sortedKeys(doc) {
		_, set := settings[name]
		switch s := doc[name]; {
		case s.localOnly && set:
			t.Errorf("%s: app setting %s is for the local stack only (docs/architecture.md) and must not be set in Azure", file, name)
		case !s.localOnly && !set:
			t.Errorf("%s: app setting %s (docs/architecture.md) is missing", file, name)
		}
	}
	for _, key := range sortedKeys(settings) {
		if why, bad := forbiddenAppSettings[key]; bad {
			t.Errorf("%s: app setting %s must not be set: %s", file, key, why)
			continue
		}
		if strings.HasSuffix(strings.ToLower(key), "connectionstring") && key != "APPLICATIONINSIGHTS_CONNECTION_STRING" {
			t.Errorf("%s: app setting %s looks like a connection string; use an identity-based connection", file, key)
		}
		if !isHostKey(key) && !isDocSetting(doc, key) {
			t.Errorf("%s: app setting %s is not a setting docs/architecture.md knows", file, key)
		}
	}

	// Identity-based connections: every connection a function.json uses, and the host's
	// storage, needs its namespace/account, the managed-identity credential and the
	// user-assigned identity's client id.
	conns := map[string]bool{"AzureWebJobsStorage": true}
	if fns, _ := functionsIfPresent(root); fns != nil {
		for _, fj := range fns {
			for _, b := range fj.Bindings {
				if c, ok := b["connection"].(string); ok {
					conns[c] = true
				}
			}
		}
	} else {
		conns["ServiceBusConnection"] = true // what the doc's settings table implies
	}
	for _, c := range sortedKeys(conns) {
		target := c + "__fullyQualifiedNamespace"
		if c == "AzureWebJobsStorage" {
			target = c + "__accountName"
			if _, ok := settings[c+"__blobServiceUri"]; ok {
				target = c + "__blobServiceUri"
			}
		}
		for _, k := range []string{target, c + "__credential", c + "__clientId"} {
			if _, ok := settings[k]; !ok {
				t.Errorf("%s: app setting %s is missing (identity-based connection %s)", file, k, c)
			}
		}
		if v := settings[c+"__credential"]; v != "" && v != "'managedidentity'" {
			t.Errorf("%s: %s__credential is %s, want 'managedidentity'", file, c, v)
		}
	}

	// Documented defaults agree with the Bicep parameter defaults that feed them.
	defaults := paramDefaults(files)
	for _, name := range sortedKeys(doc) {
		s := doc[name]
		expr, ok := settings[name]
		if !s.hasLit || !ok {
			continue
		}
		param := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(expr), "? 'true' : 'false'"))
		def, found := defaults[param]
		if !found {
			continue // fed by a resource, not a parameter
		}
		if def != s.literal {
			t.Errorf("infra/main.bicep: parameter %s (app setting %s) defaults to %q but docs/architecture.md says %q", param, name, def, s.literal)
		}
	}
}

// functionsIfPresent is functions() without skipping when the folder is missing.
func functionsIfPresent(root string) (map[string]functionJSON, error) {
	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		return nil, err
	}
	out := map[string]functionJSON{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(root, "functions", e.Name(), "function.json"))
		if err != nil {
			continue
		}
		var fj functionJSON
		if json.Unmarshal(data, &fj) == nil {
			out[e.Name()] = fj
		}
	}
	return out, nil
}

var paramDecl = regexp.MustCompile(`(?m)^param\s+(\w+)\s+(\w+)\s*=\s*(.+?)\s*$`)

// paramDefaults maps a functionapp module parameter to the default of the main.bicep
// parameter passed to it (grace: grace -> param grace string = '72h').
func paramDefaults(files map[string]string) map[string]string {
	main := files["infra/main.bicep"]
	mainDefaults := map[string]string{}
	for _, m := range paramDecl.FindAllStringSubmatch(main, -1) {
		v := m[3]
		if s, ok := unquote(v); ok {
			v = s
		}
		mainDefaults[m[1]] = v
	}
	out := map[string]string{}
	moduleDecl := regexp.MustCompile(`(?m)^module\s+\w+\s+'modules/functionapp\.bicep'\s*=`)
	loc := moduleDecl.FindStringIndex(main)
	if loc == nil {
		return out
	}
	body, ok := bicepBlock(main, loc[1])
	if !ok {
		return out
	}
	params, _ := prop(bicepProps(body), "params")
	for _, p := range bicepProps(params) {
		if def, ok := mainDefaults[strings.TrimSpace(p.value)]; ok {
			out[p.key] = def
		}
	}
	return out
}

func TestBicepServiceBusEntitiesMatchTheContract(t *testing.T) {
	root := repoRoot(t)
	files := bicepFiles(t, root)
	queues := map[string]bicepResource{}
	for _, r := range allResources(files, "Microsoft.ServiceBus/namespaces/queues") {
		name, _ := prop(bicepProps(r.body), "name")
		n, ok := unquote(name)
		if !ok {
			t.Errorf("%s: queue %s has a computed name (%s); write the contract name literally", r.file, r.symbol, name)
			continue
		}
		queues[n] = r
	}
	for _, name := range sortedKeys(wantQueues) {
		r, ok := queues[name]
		if !ok {
			t.Errorf("infra/: queue %s (docs/architecture.md) is not declared", name)
			continue
		}
		props, _ := prop(bicepProps(r.body), "properties")
		pp := bicepProps(props)
		sessions, _ := prop(pp, "requiresSession")
		dedupe, _ := prop(pp, "requiresDuplicateDetection")
		want := wantQueues[name]
		if (sessions == "true") != want.sessions {
			t.Errorf("%s: queue %s requiresSession is %q, want %v", r.file, name, sessions, want.sessions)
		}
		if (dedupe == "true") != want.dedupe {
			t.Errorf("%s: queue %s requiresDuplicateDetection is %q, want %v", r.file, name, dedupe, want.dedupe)
		}
	}
	for _, name := range sortedKeys(queues) {
		if _, ok := wantQueues[name]; !ok {
			t.Errorf("%s: queue %s is not in docs/architecture.md", queues[name].file, name)
		}
	}
	topics := map[string]bool{}
	for _, r := range allResources(files, "Microsoft.ServiceBus/namespaces/topics") {
		name, _ := prop(bicepProps(r.body), "name")
		n, _ := unquote(name)
		topics[n] = true
		if !contains(wantTopics, n) {
			t.Errorf("%s: topic %q is not in docs/architecture.md", r.file, n)
		}
	}
	for _, name := range wantTopics {
		if !topics[name] {
			t.Errorf("infra/: topic %s (docs/architecture.md) is not declared", name)
		}
	}

	// Every queue a function is triggered by exists, with matching session mode.
	fns, err := functionsIfPresent(root)
	if err != nil {
		return // functions/ not written yet: TestFunctionJSONMatchesTheContract skips too
	}
	for _, fname := range sortedKeys(fns) {
		trig, err := triggerOf(fns[fname])
		if err != nil {
			continue // reported by TestFunctionJSONMatchesTheContract
		}
		qn, _ := trig["queueName"].(string)
		if qn == "" {
			continue
		}
		want, ok := wantQueues[qn]
		if _, declared := queues[qn]; !ok || !declared {
			t.Errorf("functions/%s/function.json: queue %s is not declared in infra/", fname, qn)
			continue
		}
		if s, _ := trig["isSessionsEnabled"].(bool); s != want.sessions {
			t.Errorf("functions/%s/function.json: isSessionsEnabled %v but queue %s requiresSession is %v", fname, s, qn, want.sessions)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var functionRef = regexp.MustCompile(`/functions/([A-Za-z0-9_-]+)'`)

func TestBicepEventGridSubscriptionMatchesTheContract(t *testing.T) {
	root := repoRoot(t)
	files := bicepFiles(t, root)
	subs := allResources(files, "Microsoft.EventGrid/systemTopics/eventSubscriptions")
	if len(subs) != 1 {
		t.Fatalf("infra/: found %d Event Grid system topic subscriptions, want 1", len(subs))
	}
	sub := subs[0]
	m := functionRef.FindStringSubmatch(sub.body)
	if m == nil {
		t.Fatalf("%s: the subscription's destination names no function (want resourceId '<site id>/functions/<Name>')", sub.file)
	}
	fn := m[1]
	if want := wantFunctions[fn]; want.kind != "eventGridTrigger" {
		t.Errorf("%s: Event Grid delivers to function %s, which docs/architecture.md does not list as the Event Grid function", sub.file, fn)
	}
	if !strings.Contains(sub.body, "endpointType: 'AzureFunction'") {
		t.Errorf("%s: the subscription's destination is not endpointType 'AzureFunction'", sub.file)
	}
	if fns, err := functionsIfPresent(root); err == nil {
		trig, terr := triggerOf(fns[fn])
		if _, ok := fns[fn]; !ok {
			t.Errorf("%s: Event Grid delivers to function %s, but functions/%s/function.json does not exist", sub.file, fn, fn)
		} else if terr != nil || trig["type"] != "eventGridTrigger" {
			t.Errorf("%s: Event Grid delivers to function %s, whose function.json has no eventGridTrigger", sub.file, fn)
		}
	}
	props, _ := prop(bicepProps(sub.body), "properties")
	filter, _ := prop(bicepProps(props), "filter")
	types, _ := prop(bicepProps(filter), "includedEventTypes")
	var got []string
	for _, line := range strings.Split(types, "\n") {
		if v, ok := unquote(stripLineComment(line)); ok {
			got = append(got, v)
		}
	}
	sort.Strings(got)
	want := append([]string(nil), wantEventTypes...)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: includedEventTypes %v, want exactly %v", sub.file, got, want)
	}
	for _, key := range []string{"retryPolicy", "deadLetterWithResourceIdentity"} {
		if _, ok := prop(bicepProps(props), key); !ok {
			t.Errorf("%s: the subscription has no %s", sub.file, key)
		}
	}
}

func TestBicepRunsTheCustomHandlerOnFlexConsumption(t *testing.T) {
	root := repoRoot(t)
	files := bicepFiles(t, root)
	sites := allResources(files, "Microsoft.Web/sites")
	if len(sites) != 1 {
		t.Fatalf("infra/: found %d Microsoft.Web/sites resources, want 1", len(sites))
	}
	props, _ := prop(bicepProps(sites[0].body), "properties")
	cfg, _ := prop(bicepProps(props), "functionAppConfig")
	runtime, _ := prop(bicepProps(cfg), "runtime")
	rp := bicepProps(runtime)
	name, _ := prop(rp, "name")
	version, _ := prop(rp, "version")
	if name != "'custom'" || version != "'1.0'" {
		t.Errorf("%s: functionAppConfig.runtime is {name: %s, version: %s}, want {name: 'custom', version: '1.0'}", sites[0].file, name, version)
	}
}

// entityLike is how a queue or topic name looks; a Go string literal that looks like
// one and is one or two edits away from a contract name is almost surely a typo of it.
var entityLike = regexp.MustCompile(`^(pat|hr)-[a-z]+(-[a-z]+)*$`)

func TestGoCodeSpellsEntityNamesAsTheContract(t *testing.T) {
	root := repoRoot(t)
	names := append(sortedKeys(wantQueues), wantTopics...)
	fset := token.NewFileSet()
	for _, dir := range []string{"cmd", "internal", "handlers"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return nil // mid-edit by someone else; the build catches it
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil || !entityLike.MatchString(v) || contains(names, v) {
					return true
				}
				for _, want := range names {
					if d := editDistance(v, want); d > 0 && d <= 2 {
						pos := fset.Position(lit.Pos())
						rel, _ := filepath.Rel(root, pos.Filename)
						t.Errorf("%s:%d: %q looks like a misspelling of the Service Bus entity %q", filepath.ToSlash(rel), pos.Line, v, want)
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func TestEditDistanceCountsSingleEdits(t *testing.T) {
	tests := map[string]struct {
		a, b string
		want int
	}{
		"identical names are zero edits apart":       {"pat-events", "pat-events", 0},
		"a dropped plural s is one edit":             {"pat-rotation", "pat-rotations", 1},
		"a swapped pair of letters is two edits":     {"pat-evnets", "pat-events", 2},
		"an unrelated secret name is far away":       {"pat-svc", "pat-revocations", 9},
		"an empty string is as far as the other one": {"", "hr-offboarding", 14},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := editDistance(tt.a, tt.b); got != tt.want {
				t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
