package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/keyvault"
	"github.com/patrol-dev/patrol/internal/wiring"
)

func newMigrateIdentityCmd() *cobra.Command {
	return OperatorCommand(&cobra.Command{
		Use:   "migrate-identity",
		Short: "Move the service accounts' token caches and passwords (and the command key) from the secrets vault to the identity vault",
		Long: "Copies every patrol-msal-* (tagged patrol-kind=msal-cache) and patrol-password-* secret, and\n" +
			"patrol-command-key (tagged patrol-kind=command-key), from\n" +
			"PATROL_KEYVAULT_URL to PATROL_IDENTITY_KEYVAULT_URL, unless the identity vault holds that name\n" +
			"already (its copy is then the newer one), and deletes it from the secrets vault. Running it again\n" +
			"moves nothing more. Needs Key Vault Secrets Officer on both vaults (the operator has it).\n\n" +
			"The refresh tokens were readable by whoever could read the secrets vault: after moving them,\n" +
			"revoke the service accounts' sessions and run `patrol login` again (docs/deploy.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := services(cmd, readsKeyVault)
			if err != nil {
				return err
			}
			defer closeServices(cmd, s)
			if s.Config.IdentityKeyVaultURL == "" {
				return fmt.Errorf("migrate-identity: %s is not set: deploy the identity vault first (azd up) and set it to the vault's URL", config.SettingIdentityKeyVaultURL)
			}
			moved, err := keyvault.MoveIdentitySecrets(cmd.Context(), s.Store, s.IdentityStore)
			out := cmd.OutOrStdout()
			for _, m := range moved {
				if m.Why != "" {
					fmt.Fprintf(out, "%s: %s: %s\n", m.Name, m.Outcome, m.Why)
					continue
				}
				fmt.Fprintf(out, "%s: %s\n", m.Name, m.Outcome)
			}
			if err != nil {
				return err
			}
			if len(moved) == 0 {
				fmt.Fprintf(out, "Nothing to move: the secrets vault holds no token cache, password or command key.\n")
			}
			return nil
		},
	})
}

// warnIdentityVault tells the operator, on stderr (stdout stays the report), when the
// service accounts' refresh tokens are within reach of the PATs' readers: no identity
// vault is configured, or the secrets vault still holds caches or passwords.
func warnIdentityVault(cmd *cobra.Command, s *wiring.Services) {
	w := cmd.ErrOrStderr()
	if p := s.Config.IdentityVaultProblem(); p != "" {
		fmt.Fprintln(w, "needs attention: "+p)
		return
	}
	names, err := s.Store.IdentitySecretNames(cmd.Context())
	if err != nil || len(names) == 0 {
		return
	}
	fmt.Fprintf(w, "needs attention: the secrets vault still holds %s (token caches, passwords or the command key, within reach of whoever reads the PATs): run `patrol migrate-identity`\n", strings.Join(names, ", "))
}

// checkReaders validates --reader values: Entra object ids.
func checkReaders(readers []string) error {
	for _, r := range readers {
		if _, err := uuid.Parse(r); err != nil || len(r) != 36 {
			return fmt.Errorf("--reader %q: want the principal's Entra object id (a GUID)", r)
		}
	}
	return nil
}

// printReaderGrants prints, for each reader, the role assignment that lets it read this
// one secret.
//
// Decision: patrol prints the command instead of assigning the role itself, although
// armauthorization/v2 is a maintained SDK for it. Assigning roles needs
// Microsoft.Authorization/roleAssignments/write (Owner or User Access Administrator),
// which the operator's patrol role should not need and the app must never have; and the
// scope is the vault's resource id, which patrol's settings (the vault URL) do not hold,
// so it would also need the subscription and an ARM lookup. The person who holds those
// rights runs the command, and it shows in their activity log.
func printReaderGrants(w io.Writer, vault, secretName string, readers []string) {
	if len(readers) == 0 {
		return
	}
	fmt.Fprintf(w, "\nTo let each reader read %s and no other secret (run as someone who may assign roles):\n", secretName)
	for _, r := range readers {
		fmt.Fprintf(w, "  az role assignment create --role \"Key Vault Secrets User\" --assignee-object-id %s --assignee-principal-type ServicePrincipal \\\n"+
			"    --scope \"$(az keyvault show --name %s --query id -o tsv)/secrets/%s\"\n", r, vault, secretName)
	}
}

// identityVaultURL is the vault the token caches are kept in.
func identityVaultURL(c config.Config) string {
	if c.IdentityKeyVaultURL != "" {
		return c.IdentityKeyVaultURL
	}
	return c.KeyVaultURL
}
