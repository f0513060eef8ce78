package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/keyvault"
	"github.com/patrol-dev/patrol/internal/rules"
)

func newLoginCmd() *cobra.Command {
	var account string
	var deviceCode bool
	cmd := &cobra.Command{
		Use:   "login --service-account UPN [--device-code]",
		Short: "Sign a service account in (browser, or --device-code) and keep its token cache in the identity vault",
		Long: "Signs the service account in and keeps its MSAL token cache in the identity vault\n" +
			"(PATROL_IDENTITY_KEYVAULT_URL) as secret patrol-msal-<account>; patrol refreshes it silently\n" +
			"from then on. Running it again replaces the stored sign-in; running instances take it up\n" +
			"without a restart.\n\n" +
			"By default the sign-in happens in your web browser (authorization code with PKCE): patrol\n" +
			"opens the Entra sign-in page and listens on http://localhost:<port> for the answer, so run it\n" +
			"on a machine with a browser. This works in tenants whose Conditional Access blocks the\n" +
			"device code flow. The app registration needs the redirect URI http://localhost\n" +
			"(platform \"Mobile and desktop applications\").\n\n" +
			"--device-code is for machines without a browser (SSH sessions, containers): patrol shows\n" +
			"a URL and a code; open the URL on any device, enter the code and sign in.\n\n" +
			"Either way, sign in as the service account itself: a sign-in as anyone else is refused and\n" +
			"nothing of it is kept.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !rules.IsUPN(account) {
				return UsageError(fmt.Errorf("--service-account %q: want a user principal name such as svc-build@contoso.com", account))
			}
			s, err := services(cmd, readsKeyVault)
			if err != nil {
				return err
			}
			defer closeServices(cmd, s)
			out := cmd.OutOrStdout()
			if deviceCode {
				err = s.Accounts.Login(cmd.Context(), account, func(dc identity.DeviceCode) {
					fmt.Fprintf(out, "To sign in %s, open %s and enter the code %s (valid until %s).\n",
						account, dc.VerificationURL, dc.UserCode, dc.ExpiresOn.UTC().Format(time.RFC3339))
					fmt.Fprintln(out, "Waiting for the sign-in to complete…")
				})
			} else {
				err = s.Accounts.LoginInBrowser(cmd.Context(), account, func(url string) error {
					fmt.Fprintf(out, "Opening your browser to sign in %s. If it does not open, visit this URL on this machine:\n%s\n", account, url)
					fmt.Fprintln(out, "Waiting for the sign-in to complete…")
					if err := browserOpener(cmd.Context())(url); err != nil {
						return fmt.Errorf("open a browser (on a machine without one, use --device-code): %w", err)
					}
					return nil
				})
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Signed in %s; its token cache is kept in the Key Vault secret %s of the identity vault %s.\n",
				account, keyvault.CacheSecretName(account), VaultName(identityVaultURL(s.Config)))
			return nil
		},
	}
	cmd.Flags().StringVar(&account, "service-account", "", "UPN of the service account (required)")
	cmd.Flags().BoolVar(&deviceCode, "device-code", false, "sign in with a code on another device instead of a browser on this machine")
	return OperatorCommand(cmd)
}

func newOffboardCmd() *cobra.Command {
	var upn, objectID, reason, output string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "offboard --upn UPN [--object-id ID] [--dry-run [-o table|json]]",
		Short: "Enqueue an HR-style offboarding message on hr-offboarding, or with --dry-run print the person's PATs and what patrol would do",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if upn == "" && objectID == "" {
				return UsageError(errors.New("--upn or --object-id is required: who is leaving"))
			}
			if upn != "" && !rules.IsUPN(upn) {
				return UsageError(fmt.Errorf("--upn %q: want a user principal name such as alice@contoso.com", upn))
			}
			if objectID != "" {
				if _, err := uuid.Parse(objectID); err != nil || len(objectID) != 36 {
					return UsageError(fmt.Errorf("--object-id %q: want the person's Entra object id (a GUID)", objectID))
				}
			}
			if output != "table" && output != "json" {
				return UsageError(fmt.Errorf("--output %q: want table or json", output))
			}
			s, err := services(cmd, sends)
			if err != nil {
				return err
			}
			defer closeServices(cmd, s)
			if dryRun {
				return printAccount(cmd, s, contract.Person{UPN: upn, ObjectID: strings.ToLower(objectID)}, output)
			}
			if s.Bus == nil {
				return errors.New("offboard: no Service Bus connection configured")
			}
			msg := contract.OffboardingMessage{SchemaVersion: contract.SchemaVersion, EventID: "patrol-cli-" + uuid.NewString(),
				Person: contract.Person{UPN: upn, ObjectID: objectID}, Reason: reason}
			if err := s.Bus.SendOffboarding(cmd.Context(), msg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Enqueued offboarding event %s on %s.\n", msg.EventID, contract.QueueOffboarding)
			return nil
		},
	}
	cmd.Flags().StringVar(&upn, "upn", "", "UPN of the person leaving")
	cmd.Flags().StringVar(&objectID, "object-id", "", "Entra object id of the person leaving")
	cmd.Flags().StringVar(&reason, "reason", "patrol offboard (test)", "free text carried in the message")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "send nothing: print every active PAT of the person in the allowed organizations and what patrol would do about each")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "with --dry-run: table or json")
	return OperatorCommand(cmd)
}
