package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/wiring"
)

// wiringKey carries wiring.Options in a command's context: the seam through which the
// end-to-end tests hand the commands a credential or in-test effects without any
// package-level state.
type wiringKey struct{}

// WithWiringOptions returns ctx carrying o for the commands that build services.
func WithWiringOptions(ctx context.Context, o wiring.Options) context.Context {
	return context.WithValue(ctx, wiringKey{}, o)
}

func wiringOptions(ctx context.Context) wiring.Options {
	o, _ := ctx.Value(wiringKey{}).(wiring.Options)
	return o
}

// What a command needs beyond the vault and the sign-in settings: only the commands
// that send a message ask for a Service Bus setting, so `patrol status` runs on a
// laptop that knows only the vault.
var (
	// sends: adopt, rotate (their last steps publish the outcome and schedule the
	// revocation), offboard, serve.
	sends = config.Everything
	// readsKeyVault: status, plan, login, migrate-identity, discover.
	readsKeyVault = config.Needs{}
)

// loadSettings reads the settings once: the environment, with --env-file layered over
// it (the file wins, see config.WithEnvFile), validated by config.LoadFor so every bad
// setting the command needs is named before anything connects.
//
// The Azure SDK's credentials read their own variables (AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, IDENTITY_ENDPOINT…) from the process environment, so those
// names from the file are exported too; nothing else is.
func loadSettings(cmd *cobra.Command, needs config.Needs) (config.Config, error) {
	getenv := os.Getenv
	path, _ := cmd.Flags().GetString("env-file")
	if path != "" {
		file, err := config.ReadEnvFile(path)
		if err != nil {
			return config.Config{}, err
		}
		for k, v := range file {
			if sdkVariable(k) {
				if err := os.Setenv(k, v); err != nil {
					return config.Config{}, fmt.Errorf("--env-file: export %s: %w", k, err)
				}
			}
		}
		getenv = config.WithEnvFile(file, os.Getenv)
	}
	cfg, err := config.LoadFor(getenv, needs)
	if err != nil {
		return config.Config{}, fmt.Errorf("settings:\n%w", err)
	}
	return cfg, nil
}

func sdkVariable(name string) bool {
	for _, p := range []string{"AZURE_", "IDENTITY_", "MSI_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// services loads the settings the command needs and builds every component (no
// network call yet).
func services(cmd *cobra.Command, needs config.Needs) (*wiring.Services, error) {
	cfg, err := loadSettings(cmd, needs)
	if err != nil {
		return nil, err
	}
	o := wiringOptions(cmd.Context())
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	o.NoReplies = true // the command reports its own operations; see wiring.Options
	return wiring.Build(cmd.Context(), cfg, o)
}

func closeServices(cmd *cobra.Command, s *wiring.Services) {
	if err := s.Close(context.WithoutCancel(cmd.Context())); err != nil {
		s.Logger.Warn("closing connections", "error", err)
	}
}

// UsageError marks a mistake in how the command was called: exit code 2.
func UsageError(err error) error { return &exitError{code: 2, err: err} }

// OperatorCommand applies what every operator command shares: usage errors (bad
// arguments or flags) exit with 2.
func OperatorCommand(c *cobra.Command) *cobra.Command {
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError(err) })
	if c.Args != nil {
		args := c.Args
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return UsageError(err)
			}
			return nil
		}
	}
	return c
}
