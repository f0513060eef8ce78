package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/rules"
	"github.com/patrol-dev/patrol/internal/wiring"
)

func newRotateCmd() *cobra.Command {
	var revokeNow bool
	var op string
	cmd := &cobra.Command{
		Use:   "rotate SECRET",
		Short: "Rotate a managed secret's PAT now (issue, verify, store, retire the old one)",
		Long: "Runs the rotation protocol for SECRET in this process. --op makes a retry of the same\n" +
			"request safe: a second run with the same operation id finds the work done.\n" +
			"--revoke-now revokes the replaced PAT at once instead of after the grace period (after a leak).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if op == "" {
				op = rotation.NewOpID()
			} else if err := rotation.ValidateOpID(op); err != nil {
				return UsageError(fmt.Errorf("--op: %w", err))
			}
			s, err := services(cmd, sends)
			if err != nil {
				return err
			}
			defer closeServices(cmd, s)
			o, err := s.Rotator.Run(cmd.Context(), args[0], rotation.Trigger{Kind: rotation.TriggerManual, Op: op, RevokeNow: revokeNow})
			printOutcome(cmd.OutOrStdout(), o)
			if err == nil && o.Status == rotation.StatusSkipped && o.Reason != rotation.ReasonAlreadyDone {
				// The operator asked for a rotation and none happened (no such secret,
				// not managed, disabled): that is a failure of the command.
				return fmt.Errorf("rotate %s: not rotated (%s): %s", args[0], o.Reason, o.Message)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&revokeNow, "revoke-now", false, "revoke the replaced PAT immediately")
	cmd.Flags().StringVar(&op, "op", "", "operation id (a-z, 0-9, '-'; default: a new one)")
	return OperatorCommand(cmd)
}

func newAdoptCmd() *cobra.Command {
	var org, scopes, account, lifetime, grace, op string
	var allowFull bool
	var readers []string
	cmd := &cobra.Command{
		Use:   "adopt SECRET --org ORG --scopes \"vso.code vso.packaging\"",
		Short: "Start managing a secret: tag it with its policy and issue its first PAT",
		Long: "Tags SECRET with patrol's policy tags and issues its first PAT under the service account\n" +
			"(--service-account, else PATROL_DEFAULT_SERVICE_ACCOUNT), which must have signed in with\n" +
			"`patrol login`. A secret that does not exist yet is created.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked here rather than with MarkFlagRequired so a missing flag is a usage
			// error (exit 2) like every other.
			switch {
			case org == "":
				return UsageError(errors.New("--org is required: the Azure DevOps organization the PAT is for"))
			case strings.TrimSpace(scopes) == "":
				return UsageError(errors.New("--scopes is required: space-separated vso.* scopes such as \"vso.code vso.packaging\""))
			}
			p := rotation.Policy{Org: org, Scopes: strings.Fields(scopes), ServiceAccount: account, AllowFullScope: allowFull}
			for _, d := range []struct {
				flag string
				raw  string
				dst  *time.Duration
			}{{"--lifetime", lifetime, &p.Lifetime}, {"--grace", grace, &p.Grace}} {
				if d.raw == "" {
					continue
				}
				v, err := rules.ParseDuration(d.raw)
				if err != nil {
					return UsageError(fmt.Errorf("%s %q: %w", d.flag, d.raw, err))
				}
				*d.dst = v
			}
			if err := checkReaders(readers); err != nil {
				return UsageError(err)
			}
			if op == "" {
				op = rotation.NewOpID()
			} else if err := rotation.ValidateOpID(op); err != nil {
				return UsageError(fmt.Errorf("--op: %w", err))
			}
			cfg, err := loadSettings(cmd, sends)
			if err != nil {
				return err
			}
			// patrol's own secrets (token caches, passwords, the command key) never hold
			// a PAT, even one that does not exist yet.
			if rotation.IsInternalSecret(args[0], nil) {
				return UsageError(fmt.Errorf("%s is a name patrol keeps for its own secrets (patrol-msal-*, patrol-password-*, patrol-command-key); choose another", args[0]))
			}
			// Check the policy before anything connects, naming the flag.
			tags := p.Tags()
			defaults := wiring.PolicyDefaults(cfg)
			pol, err := rotation.ParsePolicy(tags, defaults)
			if err != nil {
				return UsageError(flagError(err))
			}
			// The core refuses it too, before minting; saying so here saves a sign-in.
			if err := defaults.Bounds.Check(pol); err != nil {
				return fmt.Errorf("adopt %s: %w", args[0], err)
			}
			s, err := services(cmd, sends)
			if err != nil {
				return err
			}
			defer closeServices(cmd, s)
			o, err := s.Rotator.Run(cmd.Context(), args[0], rotation.Trigger{Kind: rotation.TriggerAdopt, Op: op, Policy: tags})
			printOutcome(cmd.OutOrStdout(), o)
			if err == nil {
				printReaderGrants(cmd.OutOrStdout(), VaultName(cfg.KeyVaultURL), args[0], readers)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&readers, "reader", nil, "object id of a principal that will read this secret (a pipeline's identity): prints the role assignment that grants it this one secret (repeatable)")
	f.StringVar(&org, "org", "", "Azure DevOps organization (required)")
	f.StringVar(&scopes, "scopes", "", "space-separated vso.* scopes (required)")
	f.StringVar(&account, "service-account", "", "UPN of the service account that owns the PATs")
	f.StringVar(&lifetime, "lifetime", "", "PAT lifetime, e.g. 30d or 720h (default PATROL_LIFETIME)")
	f.StringVar(&grace, "grace", "", "how long a replaced PAT stays valid (default PATROL_GRACE)")
	f.BoolVar(&allowFull, "allow-full-scope", false, "allow a full-access (app_token) PAT")
	f.StringVar(&op, "op", "", "operation id (default: a new one)")
	return OperatorCommand(cmd)
}

// flagError names the adopt flag behind a policy tag.
func flagError(err error) error {
	if errors.Is(err, rotation.ErrFullScopeRefused) {
		return fmt.Errorf("--scopes: %w (pass --allow-full-scope; full access also needs app_token in "+config.SettingAllowedScopes+")", err)
	}
	var te *rotation.TagError
	if !errors.As(err, &te) {
		return err
	}
	flag := map[string]string{
		rotation.TagOrg: "--org", rotation.TagScopes: "--scopes", rotation.TagServiceAccount: "--service-account",
		rotation.TagLifetime: "--lifetime", rotation.TagGrace: "--grace", rotation.TagAllowFullScope: "--allow-full-scope",
	}[te.Tag]
	if flag == "" {
		return err
	}
	return fmt.Errorf("%s: %w", flag, err)
}

// printOutcome tells an operator what happened, in one or two lines; never a value.
func printOutcome(w io.Writer, o rotation.Outcome) {
	switch o.Status {
	case rotation.StatusRotated:
		fmt.Fprintf(w, "%s: rotated (%s): PAT %s, version %s, expires %s\n", o.Secret, o.Reason, o.PATID, o.Version, day(o.Expires))
		if o.PreviousPATID != "" {
			fmt.Fprintf(w, "  previous PAT %s is scheduled for revocation\n", o.PreviousPATID)
		}
	case rotation.StatusSkipped:
		fmt.Fprintf(w, "%s: nothing to do (%s)", o.Secret, o.Reason)
		if o.Message != "" {
			fmt.Fprintf(w, ": %s", o.Message)
		}
		fmt.Fprintln(w)
	case "":
		return
	default:
		fmt.Fprintf(w, "%s: %s at step %q\n", o.Secret, o.Status, o.Step)
	}
	if !o.NextCheck.IsZero() {
		fmt.Fprintf(w, "  next check %s\n", o.NextCheck.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "  operation %s\n", o.Op)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}
