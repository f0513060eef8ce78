package devcli

import (
	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/local/packaging"
)

func newPackageCmd() *cobra.Command {
	var out, version string
	cmd := &cobra.Command{
		Use:   "package",
		Short: "Build the Linux amd64 deployment zip (host.json, the binary, every function folder)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			zip, err := packaging.Build(cmd.Context(), packaging.Options{RepoRoot: ".", OutDir: out, GOOS: "linux", GOARCH: "amd64", Version: version})
			if err != nil {
				return err
			}
			cmd.Println(zip)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "dist", "output folder")
	cmd.Flags().StringVar(&version, "release-version", "", "version the binary reports with `patrol --version`, e.g. the release tag v1.2.0 (default: devel and the commit)")
	return cmd
}
