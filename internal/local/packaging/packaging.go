// Package packaging builds the deployment package of the patrol function app: the
// linux/amd64 handler binary, host.json, and every functions/<Name>/ folder flattened
// beside host.json, which is the layout the Azure Functions host expects at the app
// root. The zip is deterministic (sorted entries, fixed timestamps, explicit modes) so
// that the same tree always yields the same bytes, and it carries the binary's exec bit
// in the entry's Unix mode because the Linux host runs the file straight from the
// package: a zip made on Windows, or by a tool that drops modes, fails at start-up with
// "permission denied".
//
// Build also leaves the staged folder (<OutDir>/app) next to the zip: azd zips a folder
// itself (azure.yaml "dist"), while `az functionapp deployment source config-zip`
// takes the zip.
package packaging

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Layout names shared with host.json, azure.yaml and docs/deploy.md.
const (
	// BinaryName is the handler executable at the package root; host.json's
	// customHandler.description.defaultExecutablePath must name it.
	BinaryName = "patrol"
	// ZipName is the package Build writes into OutDir.
	ZipName = "patrol.zip"
	// StageDir is the folder under OutDir that holds the unzipped package (azd's dist).
	StageDir = "app"
	// MainPackage is the Go package that builds the binary.
	MainPackage = "./cmd/patrol"
	// VersionSymbol is the variable `go build -ldflags -X` sets to Options.Version;
	// `patrol --version` prints it (internal/cli.Version).
	VersionSymbol = "github.com/patrol-dev/patrol/internal/cli.version"

	stageMarker = ".patrol-package" // suffix of the file beside a stage folder Build may replace
)

// modTime is the timestamp of every zip entry: the earliest an MS-DOS date can hold,
// so the zip does not change with the time it was built.
var modTime = time.Date(1980, time.January, 1, 0, 0, 0, 0, time.UTC)

// functionName is what the Functions host accepts as a function (folder) name.
var functionName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,127}$`)

// releaseVersion is what Options.Version may be: a tag such as v1.2.0 or v1.2.0-rc.1,
// nothing the linker flag or a shell would split or interpret.
var releaseVersion = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// Options says what to package and where.
type Options struct {
	// RepoRoot holds go.mod, host.json, functions/ and MainPackage.
	RepoRoot string
	// OutDir receives ZipName and StageDir; it is created if missing.
	OutDir string
	// GOOS and GOARCH of the binary; empty means linux and amd64 (what Azure runs).
	GOOS   string
	GOARCH string
	// Compile builds the binary; nil means GoBuild. Tests inject a fake to stay fast.
	Compile CompileFunc
	// Version is the release the binary reports (`patrol --version`), e.g. the tag
	// v1.2.0; empty leaves the binary's own answer ("devel" and its commit).
	Version string
}

// CompileRequest is one build of the handler binary.
type CompileRequest struct {
	RepoRoot string // working directory of the build
	Package  string // Go package path, e.g. ./cmd/patrol
	Output   string // file to write
	GOOS     string
	GOARCH   string
	Version  string // set as VersionSymbol when not empty
}

// CompileFunc builds the handler binary described by req.
type CompileFunc func(ctx context.Context, req CompileRequest) error

// GoBuild runs `go build` for req with CGO disabled (the Functions image has no
// matching libc guarantees, so the binary must be static) and -trimpath (no local
// paths in the binary, and the same tree builds the same bytes).
func GoBuild(ctx context.Context, req CompileRequest) error {
	ldflags := "-s -w"
	if req.Version != "" {
		ldflags += " -X " + VersionSymbol + "=" + req.Version
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags="+ldflags, "-o", req.Output, req.Package)
	cmd.Dir = req.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+req.GOOS, "GOARCH="+req.GOARCH)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (%s/%s): %w\n%s", req.Package, req.GOOS, req.GOARCH, err, tail(out.String(), 4000))
	}
	return nil
}

// entry is one file of the package: where it goes in the zip and where it comes from.
type entry struct {
	name string // slash-separated path inside the package
	src  string // file on disk
	mode fs.FileMode
}

// Build compiles the binary and writes <OutDir>/patrol.zip and <OutDir>/app/. It
// returns the zip's path.
func Build(ctx context.Context, opts Options) (zipPath string, err error) {
	opts, err = withDefaults(opts)
	if err != nil {
		return "", err
	}
	entries, err := collect(opts.RepoRoot)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("packaging: create %s: %w", opts.OutDir, err)
	}
	stage := filepath.Join(opts.OutDir, StageDir)
	if err := resetStage(stage); err != nil {
		return "", err
	}

	binary := filepath.Join(stage, BinaryName)
	req := CompileRequest{RepoRoot: opts.RepoRoot, Package: MainPackage, Output: binary, GOOS: opts.GOOS, GOARCH: opts.GOARCH, Version: opts.Version}
	if err := opts.Compile(ctx, req); err != nil {
		return "", fmt.Errorf("packaging: %w", err)
	}
	if info, err := os.Stat(binary); err != nil {
		return "", fmt.Errorf("packaging: the build wrote no binary at %s: %w", binary, err)
	} else if !info.Mode().IsRegular() || info.Size() == 0 {
		return "", fmt.Errorf("packaging: the build wrote an empty or irregular binary at %s", binary)
	}
	// The exec bit on disk matters for azd, which zips the staged folder itself.
	if err := os.Chmod(binary, 0o755); err != nil {
		return "", fmt.Errorf("packaging: chmod %s: %w", binary, err)
	}
	entries = append(entries, entry{name: BinaryName, src: binary, mode: 0o755})
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	for _, e := range entries {
		if e.name == BinaryName {
			continue
		}
		if err := copyFile(e.src, filepath.Join(stage, filepath.FromSlash(e.name))); err != nil {
			return "", err
		}
	}

	zipPath = filepath.Join(opts.OutDir, ZipName)
	if err := writeZip(zipPath, entries); err != nil {
		return "", err
	}
	return zipPath, nil
}

func withDefaults(opts Options) (Options, error) {
	if opts.RepoRoot == "" {
		return opts, errors.New("packaging: Options.RepoRoot is empty")
	}
	if opts.OutDir == "" {
		return opts, errors.New("packaging: Options.OutDir is empty")
	}
	if opts.Version != "" && !releaseVersion.MatchString(opts.Version) {
		return opts, fmt.Errorf("packaging: version %q: want a tag such as v1.2.0 (letters, digits, '.', '+', '-')", opts.Version)
	}
	if opts.GOOS == "" {
		opts.GOOS = "linux"
	}
	if opts.GOARCH == "" {
		opts.GOARCH = "amd64"
	}
	if opts.Compile == nil {
		opts.Compile = GoBuild
	}
	root, err := filepath.Abs(opts.RepoRoot)
	if err != nil {
		return opts, fmt.Errorf("packaging: repo root %s: %w", opts.RepoRoot, err)
	}
	opts.RepoRoot = root
	out, err := filepath.Abs(opts.OutDir)
	if err != nil {
		return opts, fmt.Errorf("packaging: out dir %s: %w", opts.OutDir, err)
	}
	opts.OutDir = out
	return opts, nil
}

// collect lists host.json and every file of every function folder, checking what the
// Functions host would otherwise only reject after deployment.
func collect(root string) ([]entry, error) {
	hostPath := filepath.Join(root, "host.json")
	host, err := os.ReadFile(hostPath)
	if err != nil {
		return nil, fmt.Errorf("packaging: read %s: %w", hostPath, err)
	}
	exe, err := HostExecutable(host)
	if err != nil {
		return nil, fmt.Errorf("packaging: %s: %w", hostPath, err)
	}
	if strings.TrimPrefix(exe, "./") != BinaryName {
		return nil, fmt.Errorf("packaging: %s: customHandler.description.defaultExecutablePath is %q; the package ships the binary as %q", hostPath, exe, BinaryName)
	}
	entries := []entry{{name: "host.json", src: hostPath, mode: 0o644}}

	fnRoot := filepath.Join(root, "functions")
	dirs, err := os.ReadDir(fnRoot)
	if err != nil {
		return nil, fmt.Errorf("packaging: read %s: %w", fnRoot, err)
	}
	found := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		name := d.Name()
		dir := filepath.Join(fnRoot, name)
		if !functionName.MatchString(name) {
			return nil, fmt.Errorf("packaging: %s: %q is not a function name the host accepts (a letter, then letters, digits, _ or -)", dir, name)
		}
		if strings.EqualFold(name, BinaryName) {
			return nil, fmt.Errorf("packaging: %s: a function named %q would collide with the handler binary", dir, name)
		}
		if _, err := os.Stat(filepath.Join(dir, "function.json")); err != nil {
			return nil, fmt.Errorf("packaging: %s has no function.json: %w", dir, err)
		}
		err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !de.Type().IsRegular() {
				return nil // folders are implied by file paths; links are not shipped
			}
			rel, err := filepath.Rel(fnRoot, p)
			if err != nil {
				return err
			}
			entries = append(entries, entry{name: filepath.ToSlash(rel), src: p, mode: 0o644})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("packaging: read %s: %w", dir, err)
		}
		found++
	}
	if found == 0 {
		return nil, fmt.Errorf("packaging: %s holds no function folders", fnRoot)
	}
	return entries, nil
}

// HostExecutable returns customHandler.description.defaultExecutablePath from the
// contents of a host.json file.
func HostExecutable(hostJSON []byte) (string, error) {
	var host struct {
		CustomHandler *struct {
			Description *struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(hostJSON, &host); err != nil {
		return "", fmt.Errorf("not valid JSON: %w", err)
	}
	if host.CustomHandler == nil || host.CustomHandler.Description == nil {
		return "", errors.New("no customHandler.description section (a custom handler app needs one)")
	}
	exe := strings.TrimSpace(host.CustomHandler.Description.DefaultExecutablePath)
	if exe == "" {
		return "", errors.New("customHandler.description.defaultExecutablePath is empty")
	}
	return exe, nil
}

// resetStage empties the stage folder, refusing to delete a folder Build did not make.
// The marker that says "Build made it" sits beside the stage, not in it, so it is never
// deployed with the stage's contents.
func resetStage(stage string) error {
	marker := stage + stageMarker
	if _, err := os.Stat(stage); err == nil {
		if _, err := os.Stat(marker); err != nil {
			empty, emptyErr := isEmptyDir(stage)
			if emptyErr != nil || !empty {
				return fmt.Errorf("packaging: %s exists and was not made by patrol-dev package; remove it or choose another output folder", stage)
			}
		}
		if err := os.RemoveAll(stage); err != nil {
			return fmt.Errorf("packaging: clear %s: %w", stage, err)
		}
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return fmt.Errorf("packaging: create %s: %w", stage, err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return fmt.Errorf("packaging: mark %s: %w", stage, err)
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("packaging: read %s: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("packaging: create %s: %w", filepath.Dir(dst), err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return fmt.Errorf("packaging: write %s: %w", dst, err)
	}
	return nil
}

// writeZip writes entries (already sorted) to path through a temporary file, so a
// failed build never leaves a half-written package where a deploy would pick it up.
func writeZip(path string, entries []entry) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".patrol-*.zip")
	if err != nil {
		return fmt.Errorf("packaging: create zip: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename

	zw := zip.NewWriter(tmp)
	for _, e := range entries {
		if err := addFile(zw, e); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return fmt.Errorf("packaging: finish %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("packaging: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("packaging: move zip to %s: %w", path, err)
	}
	return nil
}

func addFile(zw *zip.Writer, e entry) error {
	data, err := os.ReadFile(e.src)
	if err != nil {
		return fmt.Errorf("packaging: read %s: %w", e.src, err)
	}
	h := &zip.FileHeader{Name: path.Clean(e.name), Method: zip.Deflate, Modified: modTime}
	h.SetMode(e.mode) // also marks the entry as made on Unix, so the mode is honoured
	w, err := zw.CreateHeader(h)
	if err != nil {
		return fmt.Errorf("packaging: add %s: %w", e.name, err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("packaging: add %s: %w", e.name, err)
	}
	return nil
}

// tail keeps the end of s, where the compiler puts the error that matters.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
