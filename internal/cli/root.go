// Package cli holds patrol's cobra commands. Commands gather settings once, build the
// adapters, and return errors; only cmd/patrol exits.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// NewRoot returns the patrol command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "patrol",
		Short:         "Keep Azure DevOps PATs working without depending on any person's account",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version(),
	}
	root.PersistentFlags().String("env-file", "", "read settings from this dotenv file before the environment")
	root.AddCommand(newServeCmd())
	root.AddCommand(newLoginCmd(), newAdoptCmd(), newRotateCmd(), newStatusCmd(), newPlanCmd(), newOffboardCmd(), newDiscoverCmd())
	root.AddCommand(newMigrateIdentityCmd())
	return root
}

// exitError carries a process exit code chosen by a command (for example a failed
// invariant in `patrol-dev local --demo`).
type exitError struct {
	code int
	err  error
}

// Exit returns err carrying the process exit code a command chose.
func Exit(code int, err error) error { return &exitError{code: code, err: err} }

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs a command tree the way both of patrol's programs do: interrupted by
// SIGINT or SIGTERM through its context, an error printed after the program's name,
// and the process exit code for main to pass to os.Exit (0 on success).
func Main(root *cobra.Command, program string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, program+":", err)
		return ExitCode(err)
	}
	return 0
}

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
