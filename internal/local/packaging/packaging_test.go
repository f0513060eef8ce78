package packaging

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const hostJSON = `{
  "version": "2.0",
  "customHandler": {"description": {"defaultExecutablePath": "patrol", "arguments": ["serve"]}},
  "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
}`

// repo writes a minimal app tree (host.json + function folders) under a temp dir.
func repo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func validRepo() map[string]string {
	return map[string]string{
		"host.json":                              hostJSON,
		"functions/Rotate/function.json":         `{"bindings":[]}`,
		"functions/KeyVaultEvents/function.json": `{"bindings":[]}`,
		"functions/Sweep/function.json":          `{"bindings":[]}`,
		"functions/Sweep/README.md":              "kept beside function.json",
		"functions/README.md":                    "not a function folder: not shipped",
		"local.settings.json":                    `{"Values":{}}`,
	}
}

// fakeCompiler stands in for `go build`: it records the request and writes a stub.
type fakeCompiler struct {
	reqs []CompileRequest
	err  error
}

func (f *fakeCompiler) compile(_ context.Context, req CompileRequest) error {
	f.reqs = append(f.reqs, req)
	if f.err != nil {
		return f.err
	}
	return os.WriteFile(req.Output, []byte("\x7fELF stub handler"), 0o600)
}

func readZip(t *testing.T, path string) *zip.ReadCloser {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { zr.Close() })
	return zr
}

func TestBuildLaysOutThePackageTheFunctionsHostExpects(t *testing.T) {
	root := repo(t, validRepo())
	out := filepath.Join(t.TempDir(), "pkg")
	fc := &fakeCompiler{}

	zipPath, err := Build(context.Background(), Options{RepoRoot: root, OutDir: out, Compile: fc.compile})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if want := filepath.Join(out, ZipName); zipPath != want {
		t.Errorf("zip path = %s, want %s", zipPath, want)
	}

	if len(fc.reqs) != 1 {
		t.Fatalf("compiled %d times, want once", len(fc.reqs))
	}
	req := fc.reqs[0]
	if req.GOOS != "linux" || req.GOARCH != "amd64" || req.Package != "./cmd/patrol" || req.RepoRoot != root {
		t.Errorf("compile request = %+v, want linux/amd64 ./cmd/patrol in %s", req, root)
	}

	zr := readZip(t, zipPath)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if !f.Modified.Equal(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: modified %v, want the fixed 1980-01-01", f.Name, f.Modified)
		}
		if f.CreatorVersion>>8 != 3 {
			t.Errorf("%s: creator OS %d, want 3 (Unix) so the host honours the mode", f.Name, f.CreatorVersion>>8)
		}
		wantExec := f.Name == BinaryName
		if gotExec := (f.ExternalAttrs>>16)&0o111 != 0; gotExec != wantExec {
			t.Errorf("%s: exec bit in external attributes = %v, want %v (mode %v)", f.Name, gotExec, wantExec, f.Mode())
		}
	}
	want := []string{
		"KeyVaultEvents/function.json",
		"Rotate/function.json",
		"Sweep/README.md",
		"Sweep/function.json",
		"host.json",
		"patrol",
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("zip entries:\n%s\nwant (sorted, functions flattened beside host.json):\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}

	// The staged folder (azd's dist) holds the same files, the binary executable.
	for _, name := range want {
		info, err := os.Stat(filepath.Join(out, StageDir, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("stage: %v", err)
			continue
		}
		if name == BinaryName && info.Mode().Perm()&0o111 == 0 {
			t.Errorf("stage: %s mode %v, want executable", name, info.Mode())
		}
	}
	if _, err := os.Stat(filepath.Join(out, StageDir, "local.settings.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stage: local.settings.json must not be shipped (err = %v)", err)
	}
}

func TestBuildIsDeterministicAndRebuildsInPlace(t *testing.T) {
	root := repo(t, validRepo())
	fc := &fakeCompiler{}
	outA := filepath.Join(t.TempDir(), "a")
	outB := filepath.Join(t.TempDir(), "b")

	zipA, err := Build(context.Background(), Options{RepoRoot: root, OutDir: outA, Compile: fc.compile})
	if err != nil {
		t.Fatal(err)
	}
	// Rebuilding into the same folder replaces the stage Build made before.
	if _, err := Build(context.Background(), Options{RepoRoot: root, OutDir: outA, Compile: fc.compile}); err != nil {
		t.Fatalf("rebuild in place: %v", err)
	}
	zipB, err := Build(context.Background(), Options{RepoRoot: root, OutDir: outB, Compile: fc.compile})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(zipA)
	b, _ := os.ReadFile(zipB)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("two builds of the same tree differ (%d vs %d bytes)", len(a), len(b))
	}
}

func TestBuildRejectsTreesTheHostWouldRejectAfterDeployment(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(files map[string]string)
		compile error
		prepare func(t *testing.T, out string)
		wantErr string
	}{
		{
			name:    "host.json is missing",
			edit:    func(f map[string]string) { delete(f, "host.json") },
			wantErr: "host.json",
		},
		{
			name:    "host.json is not JSON",
			edit:    func(f map[string]string) { f["host.json"] = "{" },
			wantErr: "not valid JSON",
		},
		{
			name:    "host.json names another executable",
			edit:    func(f map[string]string) { f["host.json"] = strings.Replace(hostJSON, `"patrol"`, `"handler"`, 1) },
			wantErr: `defaultExecutablePath is "handler"`,
		},
		{
			name:    "host.json has no customHandler section",
			edit:    func(f map[string]string) { f["host.json"] = `{"version":"2.0"}` },
			wantErr: "no customHandler.description",
		},
		{
			name:    "a function folder has no function.json",
			edit:    func(f map[string]string) { f["functions/Revoke/notes.txt"] = "x" },
			wantErr: "Revoke has no function.json",
		},
		{
			name:    "a function folder name starts with a digit",
			edit:    func(f map[string]string) { f["functions/1Rotate/function.json"] = "{}" },
			wantErr: `"1Rotate" is not a function name`,
		},
		{
			name:    "a function folder would collide with the binary",
			edit:    func(f map[string]string) { f["functions/patrol/function.json"] = "{}" },
			wantErr: "collide with the handler binary",
		},
		{
			name: "there are no function folders",
			edit: func(f map[string]string) {
				for k := range f {
					if strings.HasPrefix(k, "functions/") && strings.Count(k, "/") == 2 {
						delete(f, k)
					}
				}
			},
			wantErr: "holds no function folders",
		},
		{
			name:    "the compiler fails",
			compile: errors.New("exit status 1: undefined: foo"),
			wantErr: "undefined: foo",
		},
		{
			name: "the stage folder exists and was not made by Build",
			prepare: func(t *testing.T, out string) {
				if err := os.MkdirAll(filepath.Join(out, StageDir), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(out, StageDir, "precious.txt"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "was not made by patrol-dev package",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := validRepo()
			if tt.edit != nil {
				tt.edit(files)
			}
			root := repo(t, files)
			out := filepath.Join(t.TempDir(), "pkg")
			if tt.prepare != nil {
				tt.prepare(t, out)
			}
			fc := &fakeCompiler{err: tt.compile}
			_, err := Build(context.Background(), Options{RepoRoot: root, OutDir: out, Compile: fc.compile})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Build error = %v, want one containing %q", err, tt.wantErr)
			}
			if _, statErr := os.Stat(filepath.Join(out, ZipName)); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("a failed build left %s behind (stat err = %v)", ZipName, statErr)
			}
		})
	}
}

func TestBuildRequiresRepoRootAndOutDir(t *testing.T) {
	if _, err := Build(context.Background(), Options{OutDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "RepoRoot") {
		t.Errorf("missing RepoRoot: err = %v", err)
	}
	if _, err := Build(context.Background(), Options{RepoRoot: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "OutDir") {
		t.Errorf("missing OutDir: err = %v", err)
	}
}

// TestGoBuildProducesAStaticLinuxBinary runs the real compiler on a tiny module so the
// `go build` invocation itself (env, flags, output path) is covered. Offline: the
// fixture has no dependencies and GOPROXY=off makes any download attempt fail loudly.
func TestGoBuildProducesAStaticLinuxBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go binary; skipped with -short")
	}
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOTOOLCHAIN", "local")
	t.Setenv("GOFLAGS", "-mod=mod")
	files := validRepo()
	files["go.mod"] = "module example.com/fixture\n\ngo 1.22\n"
	files["cmd/patrol/main.go"] = "package main\n\nfunc main() { println(\"patrol fixture\") }\n"
	root := repo(t, files)
	out := filepath.Join(t.TempDir(), "pkg")

	zipPath, err := Build(context.Background(), Options{RepoRoot: root, OutDir: out})
	if err != nil {
		t.Fatalf("Build with go build: %v", err)
	}
	zr := readZip(t, zipPath)
	for _, f := range zr.File {
		if f.Name != BinaryName {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 20)
		_, err = rc.Read(head)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		// ELF magic, 64-bit class, and e_machine 0x3E (x86-64) at offset 18.
		if !bytes.HasPrefix(head, []byte("\x7fELF\x02")) || head[18] != 0x3e {
			t.Errorf("binary header % x is not a linux/amd64 ELF", head)
		}
		return
	}
	t.Fatalf("%s has no %s entry", zipPath, BinaryName)
}

func FuzzHostExecutable(f *testing.F) {
	f.Add([]byte(hostJSON))
	f.Add([]byte(`{"customHandler":{"description":{"defaultExecutablePath":"  ./patrol "}}}`))
	f.Add([]byte(`{"customHandler":{"description":null}}`))
	f.Add([]byte(`{"customHandler":[]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		exe, err := HostExecutable(data)
		if err != nil {
			if exe != "" {
				t.Errorf("error %v with a non-empty result %q", err, exe)
			}
			return
		}
		if exe == "" || strings.TrimSpace(exe) != exe {
			t.Errorf("accepted executable %q is empty or untrimmed", exe)
		}
	})
}

func TestBuildPassesTheReleaseVersionAndRefusesOneTheLinkerWouldSplit(t *testing.T) {
	for name, tc := range map[string]struct {
		version string
		wantErr bool
	}{
		"a release tag reaches the compiler":   {version: "v1.2.0"},
		"a pre-release tag reaches it too":     {version: "v1.2.0-rc.1+build.7"},
		"no version leaves the binary's devel": {version: ""},
		"a space would split -ldflags":         {version: "v1 -X main.evil=1", wantErr: true},
		"a quote is refused":                   {version: `v1"`, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			fc := &fakeCompiler{}
			_, err := Build(context.Background(), Options{RepoRoot: repo(t, validRepo()), OutDir: t.TempDir(), Compile: fc.compile, Version: tc.version})
			if tc.wantErr {
				if err == nil || len(fc.reqs) != 0 {
					t.Fatalf("Build with version %q: err %v after %d compiles, want a refusal before compiling", tc.version, err, len(fc.reqs))
				}
				return
			}
			if err != nil || len(fc.reqs) != 1 || fc.reqs[0].Version != tc.version {
				t.Fatalf("Build: %v, requests %+v, want one with version %q", err, fc.reqs, tc.version)
			}
		})
	}
}

// TestGoBuildStampsTheVersion builds a fixture module that has patrol's module path and
// the variable VersionSymbol names, runs the binary and reads the version it prints.
func TestGoBuildStampsTheVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go binary; skipped with -short")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("runs the linux/amd64 binary it builds")
	}
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOTOOLCHAIN", "local")
	t.Setenv("GOFLAGS", "-mod=mod")
	dot := strings.LastIndex(VersionSymbol, ".")
	pkg, name := strings.TrimPrefix(VersionSymbol[:dot], "github.com/patrol-dev/patrol/"), VersionSymbol[dot+1:]
	files := validRepo()
	files["go.mod"] = "module github.com/patrol-dev/patrol\n\ngo 1.22\n"
	files[pkg+"/version.go"] = "package cli\n\nvar " + name + " string\n\nfunc Version() string { return " + name + " }\n"
	files["cmd/patrol/main.go"] = "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/patrol-dev/patrol/" + pkg + "\"\n)\n\nfunc main() { fmt.Print(cli.Version()) }\n"
	out := t.TempDir()
	if _, err := Build(context.Background(), Options{RepoRoot: repo(t, files), OutDir: out, Version: "v1.2.3"}); err != nil {
		t.Fatalf("Build: %v", err)
	}
	got, err := exec.Command(filepath.Join(out, StageDir, BinaryName)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "v1.2.3" {
		t.Errorf("the built binary reports %q, want v1.2.3", got)
	}
}

// VersionSymbol must name the variable patrol's CLI prints: the linker ignores -X for a
// symbol that does not exist, so a rename would silently ship "devel".
func TestVersionSymbolNamesTheCLIsVariable(t *testing.T) {
	dot := strings.LastIndex(VersionSymbol, ".")
	rel := strings.TrimPrefix(VersionSymbol[:dot], "github.com/patrol-dev/patrol/")
	src, err := os.ReadFile(filepath.Join("..", "..", "..", filepath.FromSlash(rel), "version.go"))
	if err != nil {
		t.Fatalf("read the package VersionSymbol names: %v", err)
	}
	if !strings.Contains(string(src), "\nvar "+VersionSymbol[dot+1:]+" string\n") {
		t.Errorf("%s/version.go declares no `var %s string`", rel, VersionSymbol[dot+1:])
	}
}
