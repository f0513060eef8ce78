package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

func newStatusCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every managed secret: organization, owner, expiry, days left, next action",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return UsageError(fmt.Errorf("--output %q: want table or json", output))
			}
			rows, now, err := statusRows(cmd)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeStatusJSON(cmd.OutOrStdout(), rows)
			}
			return writeStatusTable(cmd.OutOrStdout(), rows, now)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return OperatorCommand(cmd)
}

func newPlanCmd() *cobra.Command {
	return OperatorCommand(&cobra.Command{
		Use:   "plan",
		Short: "Show what the next sweep would do, changing nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, now, err := statusRows(cmd)
			if err != nil {
				return err
			}
			return writePlan(cmd.OutOrStdout(), rows, now)
		},
	})
}

// statusRows gathers the managed secrets (one list, no values) and evaluates them as
// the sweep would, at the core's clock, in the status shape the SecretStatus function
// answers with too.
func statusRows(cmd *cobra.Command) ([]contract.SecretStatus, time.Time, error) {
	s, err := services(cmd, readsKeyVault)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer closeServices(cmd, s)
	versions, err := s.Store.ListManaged(cmd.Context())
	if err != nil {
		return nil, time.Time{}, err
	}
	warnIdentityVault(cmd, s)
	now := s.Clock.Now().UTC()
	return statuses(rotation.Plan(versions, s.Defaults, now)), now, nil
}

// statuses reports plan rows, in their order.
func statuses(rows []rotation.PlanRow) []contract.SecretStatus {
	out := make([]contract.SecretStatus, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.Status())
	}
	return out
}

// nextAction says in a few words what patrol will do about a secret.
func nextAction(r contract.SecretStatus, now time.Time) string {
	switch rotation.Action(r.Action) {
	case rotation.ActionRotate:
		return "rotate now (" + r.Reason + ")"
	case rotation.ActionWait:
		return "rotate in " + humanDuration(r.RenewAt.Sub(now)) + " (" + r.RenewAt.UTC().Format("2006-01-02") + ")"
	case rotation.ActionAttention:
		if rotation.Reason(r.Reason) == rotation.ReasonOutsideBounds {
			// The message names the bound and the value: "outside bounds (scope
			// vso.tokens not allowed by PATROL_ALLOWED_SCOPES)".
			return "needs attention: " + r.Message
		}
		return "needs attention (" + r.Reason + ")"
	default:
		return "none (" + r.Reason + ")"
	}
}

func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0m"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
}

func writeStatusTable(w io.Writer, rows []contract.SecretStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECRET\tORG\tOWNER\tEXPIRES\tDAYS LEFT\tNEXT ACTION")
	for _, r := range rows {
		left := "-"
		if r.DaysLeft != nil {
			left = fmt.Sprint(*r.DaysLeft)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Secret, dash(r.Org), dash(r.Owner), day(r.Expires), left, nextAction(r, now))
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no managed secrets: adopt one with `patrol adopt SECRET --org ORG --scopes ...`)")
	}
	return tw.Flush()
}

// writeStatusJSON writes `patrol status --output json`: the SecretStatus function's
// answer shape, so a script reads either.
func writeStatusJSON(w io.Writer, rows []contract.SecretStatus) error {
	if rows == nil {
		rows = []contract.SecretStatus{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(contract.StatusResult{Secrets: rows})
}

func writePlan(w io.Writer, rows []contract.SecretStatus, now time.Time) error {
	due := 0
	for _, r := range rows {
		if rotation.Action(r.Action) == rotation.ActionRotate {
			due++
		}
	}
	fmt.Fprintf(w, "A sweep at %s would enqueue %d rotation(s) of %d managed secret(s).\n", now.Format(time.RFC3339), due, len(rows))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tSECRET\tREASON\tWHEN\tDETAIL")
	for _, r := range rows {
		when := "-"
		if !r.RenewAt.IsZero() {
			when = r.RenewAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Action, r.Secret, r.Reason, when, dash(r.Message))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
