package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/functionapp"
	"github.com/patrol-dev/patrol/internal/wiring"
)

// printAccount prints the account of a person (`patrol offboard --dry-run`): what
// GET /api/offboarding/{person} answers, built the same way, sending nothing.
func printAccount(cmd *cobra.Command, s *wiring.Services, person contract.Person, output string) error {
	acc, err := functionapp.BuildAccount(cmd.Context(), s.Store, wiring.People{PATs: s.PATs, Identities: s.Identities},
		person, "", s.Defaults, s.Clock.Now().UTC())
	if err != nil {
		return err
	}
	if output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(acc)
	}
	return writeAccountTable(cmd.OutOrStdout(), acc)
}

// writeAccountTable writes one row per PAT, and one per organization that could not be
// listed, so a refusal is never read as "she has none".
func writeAccountTable(w io.Writer, acc contract.PersonAccount) error {
	who := strings.Trim(acc.Person.UPN+" "+acc.Person.ObjectID, " ")
	fmt.Fprintf(w, "PATs of %s at %s (dry run: nothing sent)\n", who, acc.Time.Format("2006-01-02T15:04:05Z07:00"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ORG\tCLASS\tPAT\tNAME\tSCOPES\tEXPIRES\tSECRET\tACTION")
	rows := 0
	for _, o := range acc.Organizations {
		switch {
		case o.Problem != "":
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t%s\n", o.Org, o.Problem)
			rows++
			continue
		case o.NotMember:
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\tnot a user of this organization\n", o.Org)
			rows++
			continue
		}
		for _, p := range o.PATs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Org, p.Class, p.PATID, p.DisplayName, dash(strings.Join(p.Scopes, " ")),
				day(p.Expires), dash(p.Secret), p.Action)
			rows++
		}
	}
	if rows == 0 {
		fmt.Fprintln(tw, "(no active PATs in the allowed organizations; PATROL_ALLOWED_ORGS lists where patrol looks)")
	}
	return tw.Flush()
}
