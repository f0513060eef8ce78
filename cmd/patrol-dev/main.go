// Command patrol-dev is patrol's local tooling: `local` runs the whole system on this
// machine (emulators of Entra ID, Key Vault, Azure DevOps and Service Bus, a local
// Functions host, and the real `patrol serve` built from ./cmd/patrol), `emulate` starts
// the emulators alone, and `package` builds the deployment zip. None of it ships: the
// deployed binary is cmd/patrol, which links no emulator. See README.md.
package main

import (
	"os"

	"github.com/patrol-dev/patrol/internal/cli"
	"github.com/patrol-dev/patrol/internal/local/devcli"
)

func main() { os.Exit(cli.Main(devcli.NewRoot(), "patrol-dev")) }
