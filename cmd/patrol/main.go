// Command patrol keeps Azure DevOps personal access tokens working without depending on
// any person's account. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/patrol-dev/patrol/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "patrol:", err)
		os.Exit(cli.ExitCode(err))
	}
}
