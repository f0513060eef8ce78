package packaging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// The app folder for Azure Functions Core Tools (`func start`). Core Tools looks for
// host.json and one <Name>/function.json per function in the folder it starts in, the
// layout of the deployment package, not the repository's functions/<Name>/; and it
// runs the handler binary on the operator's own machine, so the binary is built for
// that platform rather than for linux/amd64.
const (
	// LocalSettingsName is the settings file Core Tools reads in the app folder.
	LocalSettingsName = "local.settings.json"
	// LocalSettingsExample is the repository's template of it.
	LocalSettingsExample = "local.settings.json.example"

	funcAppMarker = ".patrol-funcapp" // in a folder FuncApp made and may empty again
	caFileSetting = "PATROL_CA_FILE"
)

// FuncAppOptions say what app folder to build and for which platform.
type FuncAppOptions struct {
	// RepoRoot holds go.mod, host.json, functions/, MainPackage and
	// LocalSettingsExample.
	RepoRoot string
	// OutDir is the app folder; created if missing.
	OutDir string
	// GOOS and GOARCH of the binary; empty means this machine's (runtime.GOOS/GOARCH).
	GOOS   string
	GOARCH string
	// Compile builds the binary; nil means GoBuild.
	Compile CompileFunc
}

// FuncAppResult says what FuncApp wrote.
type FuncAppResult struct {
	Dir    string // the app folder, absolute
	Binary string // the handler's file name in it
	// SettingsKept is true when the folder already had a local.settings.json, which
	// FuncApp leaves alone: it may point at other resources than the local stack's.
	SettingsKept bool
}

// FuncApp builds an app folder that `func start` runs: host.json, every function
// folder flattened beside it, the handler binary for GOOS/GOARCH, and a
// local.settings.json made from the repository's example unless one is there.
func FuncApp(ctx context.Context, opts FuncAppOptions) (FuncAppResult, error) {
	opts, err := funcAppDefaults(opts)
	if err != nil {
		return FuncAppResult{}, err
	}
	entries, err := collect(opts.RepoRoot)
	if err != nil {
		return FuncAppResult{}, err
	}
	example, err := os.ReadFile(filepath.Join(opts.RepoRoot, LocalSettingsExample))
	if err != nil {
		return FuncAppResult{}, fmt.Errorf("packaging: read %s: %w", LocalSettingsExample, err)
	}
	settingsPath := filepath.Join(opts.OutDir, LocalSettingsName)
	kept := fileExists(settingsPath)
	if err := resetFuncApp(opts.OutDir); err != nil {
		return FuncAppResult{}, err
	}

	binary := ExecutableName(opts.GOOS)
	req := CompileRequest{RepoRoot: opts.RepoRoot, Package: MainPackage, Output: filepath.Join(opts.OutDir, binary), GOOS: opts.GOOS, GOARCH: opts.GOARCH}
	if err := opts.Compile(ctx, req); err != nil {
		return FuncAppResult{}, fmt.Errorf("packaging: %w", err)
	}
	if err := os.Chmod(req.Output, 0o755); err != nil {
		return FuncAppResult{}, fmt.Errorf("packaging: the build wrote no binary at %s: %w", req.Output, err)
	}
	for _, e := range entries {
		dst := filepath.Join(opts.OutDir, filepath.FromSlash(e.name))
		if e.name != "host.json" {
			if err := copyFile(e.src, dst); err != nil {
				return FuncAppResult{}, err
			}
			continue
		}
		host, err := os.ReadFile(e.src)
		if err != nil {
			return FuncAppResult{}, fmt.Errorf("packaging: read %s: %w", e.src, err)
		}
		if host, err = HostJSONFor(host, binary); err != nil {
			return FuncAppResult{}, fmt.Errorf("packaging: %s: %w", e.src, err)
		}
		if err := os.WriteFile(dst, host, 0o644); err != nil {
			return FuncAppResult{}, fmt.Errorf("packaging: write %s: %w", dst, err)
		}
	}
	if !kept {
		settings, err := LocalSettings(example, opts.RepoRoot)
		if err != nil {
			return FuncAppResult{}, fmt.Errorf("packaging: %s: %w", LocalSettingsExample, err)
		}
		if err := os.WriteFile(settingsPath, settings, 0o600); err != nil {
			return FuncAppResult{}, fmt.Errorf("packaging: write %s: %w", settingsPath, err)
		}
	}
	return FuncAppResult{Dir: opts.OutDir, Binary: binary, SettingsKept: kept}, nil
}

func funcAppDefaults(opts FuncAppOptions) (FuncAppOptions, error) {
	if opts.GOOS == "" {
		opts.GOOS = runtime.GOOS
	}
	if opts.GOARCH == "" {
		opts.GOARCH = runtime.GOARCH
	}
	// withDefaults checks the folders and makes them absolute: the binary's path is
	// handed to `go build`, which runs in RepoRoot.
	o, err := withDefaults(Options{RepoRoot: opts.RepoRoot, OutDir: opts.OutDir, GOOS: opts.GOOS, GOARCH: opts.GOARCH, Compile: opts.Compile})
	if err != nil {
		return opts, err
	}
	opts.RepoRoot, opts.OutDir, opts.Compile = o.RepoRoot, o.OutDir, o.Compile
	return opts, nil
}

// ExecutableName is the handler's file name for goos: Windows starts only files with
// an executable extension.
func ExecutableName(goos string) string {
	if goos == "windows" {
		return BinaryName + ".exe"
	}
	return BinaryName
}

// HostJSONFor returns host.json with customHandler.description.defaultExecutablePath
// naming binary; unchanged when it already does.
func HostJSONFor(hostJSON []byte, binary string) ([]byte, error) {
	exe, err := HostExecutable(hostJSON)
	if err != nil {
		return nil, err
	}
	if exe == binary {
		return hostJSON, nil
	}
	var host map[string]any
	if err := json.Unmarshal(hostJSON, &host); err != nil {
		return nil, err
	}
	// HostExecutable found both levels, so these are objects.
	desc := host["customHandler"].(map[string]any)["description"].(map[string]any)
	desc["defaultExecutablePath"] = binary
	return marshalIndent(host)
}

// LocalSettings makes local.settings.json from the repository's example: the same
// values, but PATROL_CA_FILE resolved against repoRoot, since Core Tools starts the
// handler in the app folder, where the example's relative path (the CA that
// `patrol-dev emulate` writes under the repository) does not lead.
func LocalSettings(example []byte, repoRoot string) ([]byte, error) {
	var file map[string]any
	if err := json.Unmarshal(example, &file); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	values, ok := file["Values"].(map[string]any)
	if !ok {
		return nil, errors.New(`no "Values" object`)
	}
	if ca, ok := values[caFileSetting].(string); ok && ca != "" && !filepath.IsAbs(ca) {
		values[caFileSetting] = filepath.Join(repoRoot, filepath.FromSlash(ca))
	}
	return marshalIndent(file)
}

func marshalIndent(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// resetFuncApp empties dir for a new build but for its local.settings.json, refusing
// a folder FuncApp did not make (unless it is empty or holds only that file).
func resetFuncApp(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("packaging: create %s: %w", dir, err)
		}
	case err != nil:
		return fmt.Errorf("packaging: read %s: %w", dir, err)
	default:
		ours := fileExists(filepath.Join(dir, funcAppMarker))
		for _, e := range entries {
			if e.Name() == LocalSettingsName {
				continue
			}
			if !ours {
				return fmt.Errorf("packaging: %s exists and was not made by patrol-dev funcapp; remove it or choose another folder", dir)
			}
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("packaging: clear %s: %w", dir, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, funcAppMarker), nil, 0o644); err != nil {
		return fmt.Errorf("packaging: mark %s: %w", dir, err)
	}
	return nil
}

func fileExists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}
