package devcli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/cli"
	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/local/demo"
	"github.com/patrol-dev/patrol/internal/local/devhost"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

func newLocalCmd() *cobra.Command {
	var dir, sbConfig, appRoot, adminAddr, handler string
	var portBase int
	var tour, verbose, oneProcess bool
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run the whole system on this machine against local emulators",
		Long: `Start the Entra ID, Key Vault, Azure DevOps and Service Bus emulators, a local
Functions host (devhost) running ` + "`patrol serve`" + ` (built from ./cmd/patrol, the program
that ships) as the custom handler, and
seed a demo vault: the service account svc-build@contoso.com signed in, pat-build adopted,
and pat-legacy holding a PAT alice@contoso.com created by hand. Prints what runs where.
Runs until interrupted.

With --demo it plays a scripted tour instead (near-expiry rotation by advancing the
emulated clock, alice's offboarding, an emergency rotation with immediate revocation),
prints a timeline, checks patrol's invariants and exits non-zero if any failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			root, err := demo.FindAppRoot(appRoot)
			if err != nil {
				return cli.UsageError(err)
			}
			exe, err := handlerBinary(ctx, handler, root, dir)
			if err != nil {
				return fmt.Errorf("local: %w", err)
			}
			logOut := io.Discard
			if verbose {
				logOut = cmd.ErrOrStderr()
			}
			opts := demo.Options{
				AppRoot: root, Dir: dir, Command: []string{exe, "serve"}, Seed: true, AdminAddr: adminAddr,
				Logger: slog.New(slog.NewTextHandler(logOut, nil)), OneProcess: oneProcess,
			}
			if verbose {
				opts.HandlerLog = cmd.ErrOrStderr()
			}
			if portBase > 0 {
				if portBase > 65535-7 {
					return cli.UsageError(fmt.Errorf("--port-base %d: want a port from 1 to %d (seven consecutive ports are used)", portBase, 65535-7))
				}
				opts.Addrs = map[string]string{}
				for i, name := range []string{"entra", "keyvault", "devops", "servicebus", "msi"} {
					opts.Addrs[name] = "127.0.0.1:" + strconv.Itoa(portBase+i)
				}
				opts.HTTPAddr = "127.0.0.1:" + strconv.Itoa(portBase+5)
				opts.AdminAddr = "127.0.0.1:" + strconv.Itoa(portBase+6)
			}
			if sbConfig != "" {
				cfg, err := store.LoadConfigFile(sbConfig)
				if err != nil {
					return cli.UsageError(err)
				}
				opts.ServiceBusConfig = &cfg
			}
			// The handler inherits this environment, as under the real host; AZURE_*
			// credentials left by a shell that sourced patrol.env would make
			// DefaultAzureCredential skip the managed identity the app must use.
			for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME", "AZURE_PASSWORD"} {
				_ = os.Unsetenv(k)
			}
			started := time.Now()
			fmt.Fprintln(out, "patrol-dev local: starting the emulators, the Functions host and the handler…")
			sys, err := demo.Start(ctx, opts)
			if err != nil {
				return err
			}
			defer sys.Close()
			if tour {
				report, err := demo.Tour(ctx, sys, out)
				if err != nil {
					return err
				}
				if !report.OK() {
					return cli.Exit(3, errors.New("local --demo: invariants failed (see above)"))
				}
				fmt.Fprintf(out, "\nAll invariants hold. The tour took %s.\n", time.Since(started).Round(100*time.Millisecond))
				return nil
			}
			if err := printLocal(out, sys, time.Since(started)); err != nil {
				return err
			}
			<-ctx.Done()
			fmt.Fprintln(out, "\npatrol-dev local: stopping")
			return nil
		},
	}
	cmd.Flags().BoolVar(&tour, "demo", false, "play the scripted tour, check the invariants and exit")
	cmd.Flags().StringVar(&dir, "dir", ".patrol", "folder for ca.pem, patrol.env and handler.log")
	cmd.Flags().StringVar(&sbConfig, "servicebus-config", "", "Service Bus emulator Config.json whose entities are added beside patrol's")
	cmd.Flags().StringVar(&appRoot, "app-root", ".", "folder holding host.json and functions/ (searched upwards)")
	cmd.Flags().StringVar(&adminAddr, "admin", "127.0.0.1:0", "address of the emulators' inspection and control API")
	cmd.Flags().IntVar(&portBase, "port-base", 0, "listen on fixed ports from this one up (Entra, Key Vault, Azure DevOps, Service Bus, managed identity, Functions host, admin API); 0 = free ports")
	cmd.Flags().StringVar(&handler, "handler", "", "patrol binary to run as the custom handler (default: build ./cmd/patrol into --dir)")
	cmd.Flags().BoolVar(&oneProcess, "one-process", false, "run every function in one patrol serve process (default: one per Flex Consumption scale group, as in Azure)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log emulator requests and the handler's output to stderr")
	return cli.OperatorCommand(cmd)
}

// printLocal tells a person what runs where and how to reach it.
func printLocal(w io.Writer, sys *demo.System, took time.Duration) error {
	h := sys.Host
	rotate, err := h.FunctionURL("RotateNow", map[string]string{"secret": demo.SecretBuild})
	if err != nil {
		return err
	}
	status, err := h.FunctionURL("SecretStatus", map[string]string{})
	if err != nil {
		return err
	}
	env := sys.Stack.Env(sys.CAFile)
	key := h.FunctionKey()
	fmt.Fprintf(w, `
patrol is running (started in %s; Ctrl-C stops everything).

Function app (devhost → patrol serve, pids %s)
  RotateNow     POST %s?code=%s
  SecretStatus  GET  %s?code=%s
  Event Grid    %s/runtime/webhooks/eventgrid  (Key Vault near-expiry/expired events are subscribed)
  Service Bus   hr-offboarding → Offboarding, pat-rotations (sessions) → Rotate, pat-revocations → Revoke
  Sweep         timer %s
  Handler log   %s

Emulators
  Entra ID      %s  (tenant %s)
  Key Vault     %s
  Azure DevOps  %s/%s
  Service Bus   %s
  Managed identity for the app: served by the devhost (IDENTITY_ENDPOINT)
  Device sign-in page        %s
  Inspection/control API     %s   (POST %s/clock/advance?by=1440h moves time 60 days
                             ahead: Key Vault raises SecretNearExpiry, patrol rotates;
                             send Authorization: Bearer $PATROL_LOCAL_ADMIN_TOKEN)

Seeded: %s signed in; %s adopted (90-day PATs, renewed 30 days before they expire);
        %s holds a PAT created by %s (send an offboarding message to see it re-issued).

CA certificate  %s
Settings        %s   (load with: set -a; . %s; set +a)

Try:
  curl -s '%s?code=%s'
  curl -s -X POST '%s?code=%s&wait=30s' -d '{"revokeNow":true,"reason":"leaked"}'
  curl -s -H "Authorization: Bearer $PATROL_LOCAL_ADMIN_TOKEN" -X POST '%s/clock/advance?by=1440h'
`, took.Round(100*time.Millisecond), groupPIDs(h),
		rotate, key, status, key, h.URL(), sys.Settings["PATROL_SWEEP_SCHEDULE"], sys.LogFile,
		env["AZURE_AUTHORITY_HOST"], stack.TenantID, sys.Stack.VaultURL, sys.Stack.DevOpsURL, stack.Organization,
		config.RedactConnectionString(env["ServiceBusConnection"])+"  (full connection string in the settings file)", env["PATROL_LOCAL_DEVICE_LOGIN_URL"], sys.Admin, sys.Admin,
		stack.ServiceAccount, demo.SecretBuild, demo.SecretLegacy, stack.Person,
		sys.CAFile, sys.EnvFile, sys.EnvFile,
		status, key, rotate, key, sys.Admin)
	return nil
}

// groupPIDs names each scale group's handler process, e.g. "http 4101, function:Rotate 4102".
func groupPIDs(h *devhost.Host) string {
	pids := h.HandlerPIDs()
	groups := make([]string, 0, len(pids))
	for g := range pids {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = fmt.Sprintf("%s %d", g, pids[g])
	}
	return strings.Join(parts, ", ")
}
