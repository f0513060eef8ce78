// Command patrol keeps Azure DevOps personal access tokens working without depending on
// any person's account: `patrol serve` is the Azure Functions custom handler, and the
// other commands are the operator's. This is the program that ships; the local tooling
// is cmd/patrol-dev. See README.md.
package main

import (
	"os"

	"github.com/patrol-dev/patrol/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewRoot(), "patrol")) }
