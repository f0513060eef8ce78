package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/servicebus"
	"github.com/patrol-dev/patrol/internal/wiring"
)

// The operator's day-2 commands on Service Bus (docs/runbook.md). Each runs with the
// roles infra/ grants the operator and no more: Data Receiver on pat-events and on the
// three queues (their dead-letter queues, peeking scheduled revocations), Data Sender
// on the three queues (resubmitting, cancelling a scheduled message).

// usesServiceBus: the day-2 commands read and settle messages, nothing else.
var usesServiceBus = config.Needs{ServiceBus: true}

// busServices builds the services of a day-2 command, which must have a broker.
func busServices(cmd *cobra.Command) (*wiring.Services, error) {
	s, err := services(cmd, usesServiceBus)
	if err != nil {
		return nil, err
	}
	if s.Bus == nil {
		closeServices(cmd, s)
		return nil, errors.New("no Service Bus connection configured")
	}
	return s, nil
}

// withBus is the RunE of a day-2 command: check the flags (nil: nothing to check),
// connect, run, close.
func withBus(check func() error, run func(cmd *cobra.Command, s *wiring.Services) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if check != nil {
			if err := check(); err != nil {
				return err
			}
		}
		s, err := busServices(cmd)
		if err != nil {
			return err
		}
		defer closeServices(cmd, s)
		return run(cmd, s)
	}
}

// safe is how every message's text reaches the terminal: through the same scrubbing
// as the errors patrol logs. Commands never carry a token; should one ever be put in
// a message by someone else, it is not printed.
func safe(s string) string { return devops.ScrubText(s) }

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Read rotation outcomes from pat-events"}
	var statuses []string
	var subscription string
	var peek bool
	var idle time.Duration
	var max int
	var output string
	follow := &cobra.Command{
		Use:   "follow [--status failed,needs-attention]",
		Short: "Print outcomes (rotated, skipped, failed, needs-attention, revoked) as they arrive on pat-events",
		Long: "Reads the operators subscription of the topic pat-events and prints one line per outcome.\n" +
			"By default each outcome read is completed (removed from the subscription, as a feed for the\n" +
			"operator); --peek reads without removing anything, so other readers still see every outcome.\n" +
			"--status prints only those statuses (the others are still read). Ends with Ctrl-C, after\n" +
			"--max outcomes printed, or after --idle without one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return UsageError(fmt.Errorf("--output %q: want table or json", output))
			}
			want := map[string]bool{}
			for _, st := range statuses {
				for _, v := range strings.Split(st, ",") {
					if v = strings.TrimSpace(v); v != "" {
						if !slices.Contains(outcomeStatuses, v) {
							return UsageError(fmt.Errorf("--status %q: want one of %s", v, strings.Join(outcomeStatuses, ", ")))
						}
						want[v] = true
					}
				}
			}
			s, err := busServices(cmd)
			if err != nil {
				return err
			}
			defer closeServices(cmd, s)
			out := cmd.OutOrStdout()
			printed := 0
			return s.Bus.FollowSubscription(cmd.Context(), contract.TopicEvents, subscription, servicebus.FollowOptions{Peek: peek, Idle: idle},
				func(m servicebus.Message) bool {
					var o contract.Outcome
					if err := json.Unmarshal(m.Body, &o); err != nil {
						fmt.Fprintf(out, "(message %s is not an outcome: %s)\n", safe(m.MessageID), safe(clipText(string(m.Body), 200)))
						return false
					}
					if len(want) > 0 && !want[string(o.Status)] {
						return false
					}
					printOutcomeEvent(out, o, output)
					printed++
					return max > 0 && printed >= max
				})
		},
	}
	f := follow.Flags()
	f.StringSliceVar(&statuses, "status", nil, "print only these statuses (comma-separated): "+strings.Join(outcomeStatuses, ", "))
	f.StringVar(&subscription, "subscription", contract.SubscriptionOperators, "the pat-events subscription to read")
	f.BoolVar(&peek, "peek", false, "read without removing outcomes from the subscription")
	f.DurationVar(&idle, "idle", 0, "stop when no outcome arrives for this long (default: follow until Ctrl-C)")
	f.IntVar(&max, "max", 0, "stop after printing this many outcomes (default: no limit)")
	f.StringVarP(&output, "output", "o", "table", "table (one line per outcome) or json (one outcome per line)")
	cmd.AddCommand(OperatorCommand(follow))
	return OperatorCommand(cmd)
}

var outcomeStatuses = []string{
	string(contract.StatusRotated), string(contract.StatusSkipped), string(contract.StatusFailed),
	string(contract.StatusNeedsAttention), string(contract.StatusRevoked),
}

// printOutcomeEvent writes one outcome: a line, or its JSON on one line.
func printOutcomeEvent(w io.Writer, o contract.Outcome, output string) {
	if output == "json" {
		b, _ := json.Marshal(o)
		fmt.Fprintln(w, safe(string(b)))
		return
	}
	detail := o.Message
	switch {
	case o.Status == contract.StatusRotated:
		detail = "PAT " + o.PATID
		if o.PreviousPATID != "" {
			detail += ", replaced " + o.PreviousPATID
		}
	case o.Status == contract.StatusRevoked:
		detail = "PAT " + o.PATID
	case o.Step != "":
		detail = "step " + o.Step + ": " + o.Message
	}
	fmt.Fprintln(w, safe(fmt.Sprintf("%s  %-15s  %s  trigger=%s reason=%s op=%s  %s",
		o.Time.UTC().Format(time.RFC3339), o.Status, dash(o.Secret), dash(string(o.Trigger)), dash(o.Reason), dash(o.OperationID), detail)))
}

func newDeadLettersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deadletters",
		Short: "List, peek, resubmit or discard dead-lettered messages of hr-offboarding, pat-rotations, pat-revocations",
		Long: "A message patrol failed every delivery of (10) sits in its queue's dead-letter queue, and the\n" +
			"alert \"Service Bus dead letters\" fires until that queue is empty. Why it failed is on\n" +
			"pat-events (a failed outcome naming the message id) and in the log. Fix the cause, then\n" +
			"resubmit it, or discard it once `patrol status` shows the secret is fine (docs/runbook.md).",
	}
	var queue, id string
	queueFlag := func(c *cobra.Command) {
		c.Flags().StringVar(&queue, "queue", "", "the queue: "+strings.Join(servicebus.DeadLetterQueues, ", ")+" (required)")
	}
	idFlag := func(c *cobra.Command) {
		c.Flags().StringVar(&id, "message-id", "", "the dead-lettered message's MessageId, as list shows it (required)")
	}
	checkQueue := func() error {
		if !slices.Contains(servicebus.DeadLetterQueues, queue) {
			return UsageError(fmt.Errorf("--queue %q: want one of %s", queue, strings.Join(servicebus.DeadLetterQueues, ", ")))
		}
		return nil
	}
	checkID := func() error {
		if err := checkQueue(); err != nil {
			return err
		}
		if id == "" {
			return UsageError(errors.New("--message-id is required: the MessageId `patrol deadletters list` shows"))
		}
		return nil
	}

	list := &cobra.Command{
		Use:   "list --queue QUEUE",
		Short: "One line per dead-lettered message: sequence number, message id, session, reason, when",
		Args:  cobra.NoArgs,
		RunE: withBus(checkQueue, func(cmd *cobra.Command, s *wiring.Services) error {
			msgs, err := s.Bus.PeekDeadLetters(cmd.Context(), queue, 0)
			if err != nil {
				return err
			}
			return writeDeadLetterList(cmd.OutOrStdout(), queue, msgs)
		}),
	}
	queueFlag(list)

	peek := &cobra.Command{
		Use:   "peek --queue QUEUE --message-id ID",
		Short: "Show one dead-lettered message: reason, description, properties and body",
		Args:  cobra.NoArgs,
		RunE: withBus(checkID, func(cmd *cobra.Command, s *wiring.Services) error {
			msgs, err := s.Bus.PeekDeadLetters(cmd.Context(), queue, 0)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if m.MessageID == id {
					return writeDeadLetter(cmd.OutOrStdout(), m)
				}
			}
			return fmt.Errorf("deadletters peek: %s has no dead-lettered message %q (list them with `patrol deadletters list --queue %s`)", queue, id, queue)
		}),
	}
	queueFlag(peek)
	idFlag(peek)

	resubmit := &cobra.Command{
		Use:   "resubmit --queue QUEUE --message-id ID",
		Short: "Send a copy of a dead-lettered message back to its queue (new message id), then remove it from the dead-letter queue",
		Long: "Sends the body, application properties, subject and session id (pat-rotations) of the\n" +
			"dead-lettered message back to QUEUE under a new MessageId, so duplicate detection keeps it,\n" +
			"then completes the dead-lettered one. Fix what made it fail first: a message that cannot be\n" +
			"handled (a malformed HR message) fails again and comes back here; discard that one instead.",
		Args: cobra.NoArgs,
		RunE: withBus(checkID, func(cmd *cobra.Command, s *wiring.Services) error {
			m, newID, err := s.Bus.ResubmitDeadLetter(cmd.Context(), queue, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Resubmitted %s to %s as message %s (dead-lettered for %s); removed it from the dead-letter queue.\n",
				safe(id), queue, safe(newID), safe(dash(m.DeadLetterReason)))
			if warn := resubmitCaveat(queue, m, s.Clock.Now()); warn != "" {
				fmt.Fprintln(cmd.OutOrStdout(), warn)
			}
			return nil
		}),
	}
	queueFlag(resubmit)
	idFlag(resubmit)

	discard := &cobra.Command{
		Use:   "discard --queue QUEUE --message-id ID",
		Short: "Remove a dead-lettered message for good, printing what is dropped",
		Args:  cobra.NoArgs,
		RunE: withBus(checkID, func(cmd *cobra.Command, s *wiring.Services) error {
			m, err := s.Bus.DiscardDeadLetter(cmd.Context(), queue, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Discarded this dead-lettered message of %s:\n", queue)
			return writeDeadLetter(cmd.OutOrStdout(), m)
		}),
	}
	queueFlag(discard)
	idFlag(discard)

	for _, c := range []*cobra.Command{list, peek, resubmit, discard} {
		cmd.AddCommand(OperatorCommand(c))
	}
	return OperatorCommand(cmd)
}

// resubmitCaveat says when a resubmitted copy will be refused anyway: a signed rotation
// command older than MaxCommandAge (a replay, for patrol).
func resubmitCaveat(queue string, m servicebus.Message, now time.Time) string {
	if queue != contract.QueueRotations {
		return ""
	}
	var c contract.RotationCommand
	if json.Unmarshal(m.Body, &c) != nil || c.Signature == nil || c.RequestedAt.IsZero() {
		return ""
	}
	if now.Sub(c.RequestedAt) <= contract.MaxCommandAge {
		return ""
	}
	return fmt.Sprintf("Note: this %s command was signed at %s, more than %s ago: patrol refuses it as a replay "+
		"(a failed outcome, patrol.Unauthenticated). Ask again with `patrol rotate %s`.",
		c.Trigger, c.RequestedAt.UTC().Format(time.RFC3339), contract.MaxCommandAge, c.Secret)
}

func writeDeadLetterList(w io.Writer, queue string, msgs []servicebus.Message) error {
	if len(msgs) == 0 {
		_, err := fmt.Fprintf(w, "%s has no dead-lettered messages.\n", queue)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tMESSAGE ID\tSESSION\tSUBJECT\tENQUEUED\tDELIVERIES\tREASON")
	for _, m := range msgs {
		fmt.Fprintln(tw, safe(fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%d\t%s", m.SequenceNumber, m.MessageID, dash(m.SessionID), dash(m.Subject),
			stamp(m.EnqueuedAt), m.DeliveryCount, dash(m.DeadLetterReason))))
	}
	return tw.Flush()
}

// writeDeadLetter shows one message in full; its body is JSON without any token.
func writeDeadLetter(w io.Writer, m servicebus.Message) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, safe(v)) }
	line("message id", m.MessageID)
	line("sequence number", fmt.Sprint(m.SequenceNumber))
	line("session", dash(m.SessionID))
	line("subject", dash(m.Subject))
	line("enqueued", stamp(m.EnqueuedAt))
	line("deliveries", fmt.Sprint(m.DeliveryCount))
	line("dead-letter reason", dash(m.DeadLetterReason))
	line("description", dash(m.DeadLetterDescription))
	for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
		line("property "+k, fmt.Sprint(m.Properties[k]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "body:\n%s\n", safe(prettyJSON(m.Body)))
	return err
}

func prettyJSON(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return clipText(string(b), 4096)
	}
	out, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return clipText(string(b), 4096)
	}
	return "  " + string(out)
}

func newRevocationsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revocations",
		Short: "List or cancel the revocations of replaced PATs scheduled on pat-revocations",
	}
	var secretName, patID string
	list := &cobra.Command{
		Use:   "list [--secret SECRET]",
		Short: "One line per scheduled revocation: sequence number, secret, PAT id, when it runs",
		Args:  cobra.NoArgs,
		RunE: withBus(nil, func(cmd *cobra.Command, s *wiring.Services) error {
			revs, err := scheduledRevocations(cmd, s, secretName, "")
			if err != nil {
				return err
			}
			return writeRevocations(cmd.OutOrStdout(), revs, s.Clock.Now())
		}),
	}
	list.Flags().StringVar(&secretName, "secret", "", "only this secret's")

	cancel := &cobra.Command{
		Use:   "cancel --secret SECRET [--pat-id PAT]",
		Short: "Cancel a secret's scheduled revocations (or only PAT's): the replaced PAT stays active",
		Long: "Cancels, by sequence number, the revocations scheduled on pat-revocations for SECRET (only\n" +
			"the one of --pat-id when given) and prints each. The replaced PAT then stays active past its\n" +
			"grace period — until the Sweep finds it unreferenced: one hour after the grace period ends\n" +
			"it revokes it as an orphan unless the secret's current version holds it. Cancel to buy\n" +
			"time (a consumer that cannot take the new PAT yet), not to keep a PAT for good.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if secretName == "" {
				return UsageError(errors.New("--secret is required: whose scheduled revocation to cancel"))
			}
			s, err := busServices(cmd)
			if err != nil {
				return err
			}
			defer closeServices(cmd, s)
			revs, err := scheduledRevocations(cmd, s, secretName, patID)
			if err != nil {
				return err
			}
			if len(revs) == 0 {
				what := secretName
				if patID != "" {
					what += " (PAT " + patID + ")"
				}
				return fmt.Errorf("revocations cancel: no revocation of %s is scheduled on %s", what, contract.QueueRevocations)
			}
			seqs := make([]int64, 0, len(revs))
			for _, r := range revs {
				seqs = append(seqs, r.seq)
			}
			if err := s.Bus.CancelScheduled(cmd.Context(), contract.QueueRevocations, seqs...); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, r := range revs {
				fmt.Fprintln(out, safe(fmt.Sprintf("Cancelled revocation %d of %s: PAT %s stays active (it was due %s).",
					r.seq, r.cmd.Secret, r.cmd.PATID, stamp(r.at))))
			}
			fmt.Fprintf(out, "The Sweep still revokes a replaced PAT no version holds, %s after its grace period ends.\n", humanDuration(rotation.OrphanMinAge))
			return nil
		},
	}
	cancel.Flags().StringVar(&secretName, "secret", "", "the secret whose revocation to cancel (required)")
	cancel.Flags().StringVar(&patID, "pat-id", "", "only the revocation of this PAT")
	cmd.AddCommand(OperatorCommand(list), OperatorCommand(cancel))
	return OperatorCommand(cmd)
}

type scheduledRevocation struct {
	seq int64
	at  time.Time
	cmd contract.RevocationCommand
}

func scheduledRevocations(cmd *cobra.Command, s *wiring.Services, secretName, patID string) ([]scheduledRevocation, error) {
	msgs, err := s.Bus.PeekScheduled(cmd.Context(), contract.QueueRevocations)
	if err != nil {
		return nil, err
	}
	var out []scheduledRevocation
	for _, m := range msgs {
		var c contract.RevocationCommand
		if err := json.Unmarshal(m.Body, &c); err != nil {
			continue // not a revocation: Revoke fails it, and it reaches the dead letters
		}
		if (secretName != "" && c.Secret != secretName) || (patID != "" && c.PATID != patID) {
			continue
		}
		out = append(out, scheduledRevocation{seq: m.SequenceNumber, at: m.ScheduledAt, cmd: c})
	}
	return out, nil
}

func writeRevocations(w io.Writer, revs []scheduledRevocation, now time.Time) error {
	if len(revs) == 0 {
		_, err := fmt.Fprintf(w, "No revocation is scheduled on %s.\n", contract.QueueRevocations)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSECRET\tPAT ID\tOWNER\tDUE\tIN\tOPERATION\tSIGNED")
	for _, r := range revs {
		signed := "no"
		if r.cmd.Signature != nil {
			signed = "yes"
		}
		fmt.Fprintln(tw, safe(fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.seq, r.cmd.Secret, r.cmd.PATID, dash(r.cmd.Owner),
			stamp(r.at), humanDuration(r.at.Sub(now)), r.cmd.OperationID, signed)))
	}
	return tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
