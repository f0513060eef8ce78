package cli

import (
	"github.com/spf13/cobra"
)

func newLocalCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "local",
		Short: "Run the whole system on this machine against local emulators",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.Println("patrol local: the local stack is being built; nothing to start yet")
			return nil
		},
	}
}
