package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

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
			rows, now, err := planRows(cmd)
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
			rows, now, err := planRows(cmd)
			if err != nil {
				return err
			}
			return writePlan(cmd.OutOrStdout(), rows, now)
		},
	})
}

// planRows gathers the managed secrets (one list, no values) and evaluates them as the
// sweep would, at the core's clock.
func planRows(cmd *cobra.Command) ([]rotation.PlanRow, time.Time, error) {
	s, err := services(cmd)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer closeServices(cmd, s)
	versions, err := s.Store.ListManaged(cmd.Context())
	if err != nil {
		return nil, time.Time{}, err
	}
	now := s.Clock.Now().UTC()
	return rotation.Plan(versions, s.Defaults, now), now, nil
}

// nextAction says in a few words what patrol will do about a row.
func nextAction(r rotation.PlanRow, now time.Time) string {
	switch r.Action {
	case rotation.ActionRotate:
		return "rotate now (" + string(r.Reason) + ")"
	case rotation.ActionWait:
		return "rotate in " + humanDuration(r.At.Sub(now)) + " (" + r.At.UTC().Format("2006-01-02") + ")"
	case rotation.ActionAttention:
		return "needs attention (" + string(r.Reason) + ")"
	default:
		return "none (" + string(r.Reason) + ")"
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

func writeStatusTable(w io.Writer, rows []rotation.PlanRow, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECRET\tORG\tOWNER\tEXPIRES\tDAYS LEFT\tNEXT ACTION")
	for _, r := range rows {
		left := "-"
		if !r.Expires.IsZero() {
			left = fmt.Sprint(r.DaysLeft)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Secret, dash(r.Org), dash(r.Owner), day(r.Expires), left, nextAction(r, now))
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no managed secrets: adopt one with `patrol adopt SECRET --org ORG --scopes ...`)")
	}
	return tw.Flush()
}

// statusJSON is the stable JSON shape of `patrol status --output json`.
type statusJSON struct {
	Secrets []rotation.PlanRow `json:"secrets"`
}

func writeStatusJSON(w io.Writer, rows []rotation.PlanRow) error {
	if rows == nil {
		rows = []rotation.PlanRow{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(statusJSON{Secrets: rows})
}

func writePlan(w io.Writer, rows []rotation.PlanRow, now time.Time) error {
	due := rotation.Due(rows)
	fmt.Fprintf(w, "A sweep at %s would enqueue %d rotation(s) of %d managed secret(s).\n", now.Format(time.RFC3339), len(due), len(rows))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tSECRET\tREASON\tWHEN\tDETAIL")
	for _, r := range rows {
		when := "-"
		if !r.At.IsZero() {
			when = r.At.UTC().Format(time.RFC3339)
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
