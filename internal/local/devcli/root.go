// Package devcli holds patrol-dev's cobra commands: the local tooling that never ships
// to Azure (the emulators, the local Functions host with its demo, and the deployment
// packager). cmd/patrol does not link this package; cmd/patrol-dev does.
package devcli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// NewRoot returns the patrol-dev command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "patrol-dev",
		Short:         "Run patrol on this machine against local emulators, and package it for Azure",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newLocalCmd(), newEmulateCmd(), newPackageCmd(), newReleaseNotesCmd())
	return root
}

// handlerBinary returns the `patrol` executable the local Functions host starts as the
// custom handler — the same program `patrol-dev package` ships, never this one. An explicit
// path wins; otherwise ./cmd/patrol is built from the app root into dir (the Go build
// cache makes a rebuild cheap), so the handler always matches the checkout.
func handlerBinary(ctx context.Context, explicit, appRoot, dir string) (string, error) {
	if explicit != "" {
		abs, err := filepath.Abs(explicit)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("--handler: %w", err)
		}
		return abs, nil
	}
	if _, err := os.Stat(filepath.Join(appRoot, "cmd", "patrol", "main.go")); err != nil {
		return "", errors.New("no ./cmd/patrol under the app root to build the handler from; pass --handler PATH to a built patrol binary")
	}
	out, err := filepath.Abs(filepath.Join(dir, "bin", "patrol"))
	if err != nil {
		return "", err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/patrol")
	build.Dir = appRoot
	if msg, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the handler (go build ./cmd/patrol): %w\n%s", err, msg)
	}
	return out, nil
}
