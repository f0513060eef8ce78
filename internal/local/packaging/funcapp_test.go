package packaging

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const settingsExample = `{
  "IsEncrypted": false,
  "Values": {
    "FUNCTIONS_WORKER_RUNTIME": "Custom",
    "PATROL_CA_FILE": ".patrol/ca.pem",
    "PATROL_SWEEP_SCHEDULE": "0 0 */6 * * *"
  }
}`

func funcAppRepo(t *testing.T) string {
	files := validRepo()
	files[LocalSettingsExample] = settingsExample
	return repo(t, files)
}

// tree lists every file under dir, slash-separated and sorted.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func readValues(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return file.Values
}

func TestFuncAppLaysOutTheFolderCoreToolsRuns(t *testing.T) {
	root := funcAppRepo(t)
	out := filepath.Join(t.TempDir(), "funcapp")
	fc := &fakeCompiler{}

	res, err := FuncApp(context.Background(), FuncAppOptions{RepoRoot: root, OutDir: out, GOOS: "linux", GOARCH: "arm64", Compile: fc.compile})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		funcAppMarker,
		"KeyVaultEvents/function.json",
		"Rotate/function.json",
		"Sweep/README.md",
		"Sweep/function.json",
		"host.json",
		LocalSettingsName,
		"patrol",
	}
	sort.Strings(want)
	if got := tree(t, out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("app folder holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(fc.reqs) != 1 || fc.reqs[0].GOOS != "linux" || fc.reqs[0].GOARCH != "arm64" || fc.reqs[0].Output != filepath.Join(out, "patrol") {
		t.Errorf("compiled %+v, want one linux/arm64 build into the folder", fc.reqs)
	}
	if res.Binary != "patrol" || res.SettingsKept || res.Dir != out {
		t.Errorf("result %+v", res)
	}
	if runtime.GOOS != "windows" {
		if info, err := os.Stat(filepath.Join(out, "patrol")); err != nil || info.Mode()&0o111 == 0 {
			t.Errorf("the binary is not executable: %v %v", info, err)
		}
	}
	host, err := os.ReadFile(filepath.Join(out, "host.json"))
	if err != nil || string(host) != hostJSON {
		t.Errorf("host.json changed for a binary host.json already names: %q (%v)", host, err)
	}
	values := readValues(t, filepath.Join(out, LocalSettingsName))
	if values["FUNCTIONS_WORKER_RUNTIME"] != "Custom" || values["PATROL_SWEEP_SCHEDULE"] != "0 0 */6 * * *" {
		t.Errorf("local.settings.json values %v, want the example's", values)
	}
	if want := filepath.Join(root, ".patrol", "ca.pem"); values["PATROL_CA_FILE"] != want {
		t.Errorf("PATROL_CA_FILE = %q, want %q (the handler starts in the app folder)", values["PATROL_CA_FILE"], want)
	}
}

func TestFuncAppBuildsAWindowsExecutableTheHostCanStart(t *testing.T) {
	root := funcAppRepo(t)
	out := filepath.Join(t.TempDir(), "funcapp")
	res, err := FuncApp(context.Background(), FuncAppOptions{RepoRoot: root, OutDir: out, GOOS: "windows", GOARCH: "amd64", Compile: (&fakeCompiler{}).compile})
	if err != nil {
		t.Fatal(err)
	}
	if res.Binary != "patrol.exe" {
		t.Errorf("binary %q, want patrol.exe", res.Binary)
	}
	host, err := os.ReadFile(filepath.Join(out, "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	if exe, err := HostExecutable(host); err != nil || exe != "patrol.exe" {
		t.Errorf("host.json starts %q (%v), want patrol.exe", exe, err)
	}
	if _, err := os.Stat(filepath.Join(out, "patrol.exe")); err != nil {
		t.Errorf("no patrol.exe: %v", err)
	}
}

func TestFuncAppRebuildsInPlaceAndKeepsTheOperatorsSettings(t *testing.T) {
	root := funcAppRepo(t)
	out := filepath.Join(t.TempDir(), "funcapp")
	opts := FuncAppOptions{RepoRoot: root, OutDir: out, GOOS: "linux", GOARCH: "amd64", Compile: (&fakeCompiler{}).compile}
	if _, err := FuncApp(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	mine := `{"IsEncrypted": false, "Values": {"PATROL_KEYVAULT_URL": "https://mine.vault.azure.net"}}`
	if err := os.WriteFile(filepath.Join(out, LocalSettingsName), []byte(mine), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "functions", "Rotate")); err != nil {
		t.Fatal(err)
	}

	res, err := FuncApp(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.SettingsKept {
		t.Error("SettingsKept is false for a folder that had local.settings.json")
	}
	if got, _ := os.ReadFile(filepath.Join(out, LocalSettingsName)); string(got) != mine {
		t.Errorf("local.settings.json replaced: %s", got)
	}
	if _, err := os.Stat(filepath.Join(out, "Rotate")); !os.IsNotExist(err) {
		t.Errorf("a function removed from the repository is still in the app folder (%v)", err)
	}
}

func TestFuncAppRefusesAFolderItDidNotMake(t *testing.T) {
	root := funcAppRepo(t)
	tests := []struct {
		name   string
		files  []string
		refuse bool
	}{
		{"a folder with someone else's files is refused", []string{"notes.txt"}, true},
		{"an empty folder is used", nil, false},
		{"a folder with only a local.settings.json is used and the file kept", []string{LocalSettingsName}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(out, f), []byte(`{"Values":{}}`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := FuncApp(context.Background(), FuncAppOptions{RepoRoot: root, OutDir: out, Compile: (&fakeCompiler{}).compile})
			if tt.refuse {
				if err == nil || !strings.Contains(err.Error(), "not made by patrol-dev funcapp") {
					t.Fatalf("err = %v, want a refusal", err)
				}
				if _, statErr := os.Stat(filepath.Join(out, "notes.txt")); statErr != nil {
					t.Errorf("the refused folder lost a file: %v", statErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFuncAppDefaultsToThisMachinesPlatform(t *testing.T) {
	fc := &fakeCompiler{}
	if _, err := FuncApp(context.Background(), FuncAppOptions{RepoRoot: funcAppRepo(t), OutDir: t.TempDir(), Compile: fc.compile}); err != nil {
		t.Fatal(err)
	}
	if len(fc.reqs) != 1 || fc.reqs[0].GOOS != runtime.GOOS || fc.reqs[0].GOARCH != runtime.GOARCH {
		t.Errorf("compiled %+v, want %s/%s", fc.reqs, runtime.GOOS, runtime.GOARCH)
	}
}

func TestLocalSettingsResolvesOnlyARelativeCAFile(t *testing.T) {
	tests := []struct {
		name, ca, want string
	}{
		{"a relative CA file is resolved against the repository", ".patrol/ca.pem", filepath.Join("/repo", ".patrol", "ca.pem")},
		{"an absolute CA file is kept", filepath.Join(os.TempDir(), "ca.pem"), filepath.Join(os.TempDir(), "ca.pem")},
		{"an empty CA file stays empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			example, _ := json.Marshal(map[string]any{"Values": map[string]string{caFileSetting: tt.ca}})
			got, err := LocalSettings(example, "/repo")
			if err != nil {
				t.Fatal(err)
			}
			var file struct{ Values map[string]string }
			if err := json.Unmarshal(got, &file); err != nil {
				t.Fatal(err)
			}
			if file.Values[caFileSetting] != tt.want {
				t.Errorf("PATROL_CA_FILE = %q, want %q", file.Values[caFileSetting], tt.want)
			}
		})
	}
	if _, err := LocalSettings([]byte(`{"IsEncrypted": false}`), "/repo"); err == nil {
		t.Error("an example without Values was accepted")
	}
}

// The repository's own tree: every functions/<Name>/function.json lands at
// <Name>/function.json beside host.json, which is where Core Tools looks.
func TestFuncAppOfThisRepositoryFlattensEveryFunction(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	fns, err := filepath.Glob(filepath.Join(root, "functions", "*", "function.json"))
	if err != nil || len(fns) == 0 {
		t.Fatalf("no functions/*/function.json under %s (%v)", root, err)
	}
	out := filepath.Join(t.TempDir(), "funcapp")
	if _, err := FuncApp(context.Background(), FuncAppOptions{RepoRoot: root, OutDir: out, Compile: (&fakeCompiler{}).compile}); err != nil {
		t.Fatal(err)
	}
	for _, fn := range fns {
		name := filepath.Base(filepath.Dir(fn))
		want, _ := os.ReadFile(fn)
		got, err := os.ReadFile(filepath.Join(out, name, "function.json"))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s/function.json: %v (or it differs from functions/%s/function.json)", name, err, name)
		}
	}
	values := readValues(t, filepath.Join(out, LocalSettingsName))
	if values["FUNCTIONS_WORKER_RUNTIME"] != "Custom" {
		t.Errorf("FUNCTIONS_WORKER_RUNTIME = %q, want Custom: Core Tools starts a custom handler only with it", values["FUNCTIONS_WORKER_RUNTIME"])
	}
}
