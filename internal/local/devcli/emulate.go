package devcli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

func newEmulateCmd() *cobra.Command {
	var dir, sbConfig, adminAddr string
	var verbose, freePorts bool
	cmd := &cobra.Command{
		Use:   "emulate",
		Short: "Start the local Entra ID, Key Vault, Azure DevOps and Service Bus emulators only",
		Long: `Start the emulators patrol is tested against and write a dotenv file listing every
endpoint, the CA file and test credentials (standard AZURE_* names where they exist), so
other tools in any language can be pointed at them. Runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logOut := io.Discard
			if verbose {
				logOut = cmd.ErrOrStderr()
			}
			opts := stack.Options{Logger: slog.New(slog.NewTextHandler(logOut, nil))}
			if !freePorts {
				opts.Addrs = stack.LocalAddrs
				if adminAddr == "" {
					adminAddr = stack.LocalAddrs["admin"]
				}
			}
			if adminAddr == "" {
				adminAddr = "127.0.0.1:0"
			}
			if sbConfig != "" {
				cfg, err := store.LoadConfigFile(sbConfig)
				if err != nil {
					return err
				}
				opts.ServiceBusConfig = &cfg
			}
			s, err := stack.Start(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer s.Close()
			caFile, envFile, err := s.WriteFiles(dir)
			if err != nil {
				return err
			}
			admin, err := s.ServeAdmin(adminAddr)
			if err != nil {
				return err
			}
			printEndpoints(cmd.OutOrStdout(), s, caFile, envFile, admin)
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".patrol", "folder for ca.pem and patrol.env")
	cmd.Flags().StringVar(&sbConfig, "servicebus-config", "", "Service Bus emulator Config.json whose entities are added beside patrol's")
	cmd.Flags().StringVar(&adminAddr, "admin", "", "address of the inspection and control API (default 127.0.0.1:8440)")
	cmd.Flags().BoolVar(&freePorts, "free-ports", false, "listen on any free ports instead of the fixed 8440-8444 and 5672")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every emulator request to stderr")
	return cmd
}

// printEndpoints tells a person what runs where and how to point tools at it.
func printEndpoints(w io.Writer, s *stack.Stack, caFile, envFile, admin string) {
	env := s.Env(caFile)
	operatorFile := filepath.Join(filepath.Dir(envFile), stack.OperatorEnvFile)
	fmt.Fprintf(w, `Emulators running (Ctrl-C stops them):
  Entra ID      %s  (tenant %s)
  Key Vault     %s  (challenge resource %s)
                %s  (identity vault: token caches)
  Azure DevOps  %s/%s
  Service Bus   %s
  Managed identity endpoint  %s
  Device sign-in page        %s
  Inspection/control API     %s   (send Authorization: Bearer $PATROL_LOCAL_ADMIN_TOKEN)
CA certificate  %s
Settings        %s   (load with: set -a; . %s; set +a)
Operator        %s   (patrol --env-file %s adopt …: Service Bus with only the operator's roles)
`, env["AZURE_AUTHORITY_HOST"], stack.TenantID, s.VaultURL, env["PATROL_LOCAL_KEYVAULT_RESOURCE"], s.IdentityVaultURL,
		s.DevOpsURL, stack.Organization, "sb://"+s.SB.Addr().String()+"  (connection string: ServiceBusConnection in the settings file)", s.MSI.Endpoint, env["PATROL_LOCAL_DEVICE_LOGIN_URL"],
		admin, caFile, envFile, envFile, operatorFile, operatorFile)
	if _, err := os.Stat(envFile); err != nil {
		fmt.Fprintln(w, "warning: the settings file is missing:", err)
	}
}
