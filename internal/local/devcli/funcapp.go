package devcli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/local/packaging"
)

func newFuncAppCmd() *cobra.Command {
	var out, goos, goarch string
	cmd := &cobra.Command{
		Use:   "funcapp [--out DIR] [--goos GOOS --goarch GOARCH]",
		Short: "Build an app folder that Azure Functions Core Tools runs with `func start`",
		Long: `Build an app folder for Azure Functions Core Tools: host.json, one <Name>/function.json
folder per function beside it (the layout of the deployment package; Core Tools finds no
function in the repository's functions/<Name>/), the patrol binary built for this machine
(or --goos/--goarch), and local.settings.json made from local.settings.json.example.
An existing local.settings.json in the folder is kept.

Then: cd DIR && func start. The example's settings point at the local stack
(patrol-dev emulate) and need Azurite for the Sweep timer. Pointed at real Azure
resources, a local host competes with the deployed app for its Service Bus messages:
read docs/deploy.md "Run under Azure Functions Core Tools" first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := packaging.FuncApp(cmd.Context(), packaging.FuncAppOptions{RepoRoot: ".", OutDir: out, GOOS: goos, GOARCH: goarch})
			if err != nil {
				return err
			}
			settings := "written from " + packaging.LocalSettingsExample
			if res.SettingsKept {
				settings = "kept"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n  handler %s, %s %s\n  run: cd %s && func start\n", res.Dir, res.Binary, packaging.LocalSettingsName, settings, res.Dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", ".patrol/funcapp", "app folder to write")
	cmd.Flags().StringVar(&goos, "goos", "", "GOOS of the binary (default: this machine's)")
	cmd.Flags().StringVar(&goarch, "goarch", "", "GOARCH of the binary (default: this machine's)")
	return cmd
}
