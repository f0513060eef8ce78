package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/servicebus"
)

// Mistakes in calling a day-2 command are usage errors (exit 2), found before any
// setting is read or anything connects.
func TestDayTwoUsageErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"a queue patrol does not dead-letter": {
			[]string{"deadletters", "list", "--queue", "pat-replies"}, "--queue"},
		"no queue": {
			[]string{"deadletters", "list"}, "--queue"},
		"resubmit without a message id": {
			[]string{"deadletters", "resubmit", "--queue", contract.QueueOffboarding}, "--message-id"},
		"discard without a message id": {
			[]string{"deadletters", "discard", "--queue", contract.QueueRotations}, "--message-id"},
		"a status outcomes never have": {
			[]string{"events", "follow", "--status", "failed,broken"}, "broken"},
		"cancel without a secret": {
			[]string{"revocations", "cancel"}, "--secret"},
		"status of two secrets": {
			[]string{"status", "a", "b"}, "accepts at most 1 arg"},
	} {
		t.Run(name, func(t *testing.T) {
			root := NewRoot()
			root.SetArgs(tc.args)
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			err := root.Execute()
			if err == nil || ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("patrol %s: %v (exit %d), want a usage error naming %q", strings.Join(tc.args, " "), err, ExitCode(err), tc.want)
			}
		})
	}
}

func TestResubmittingAnOldSignedRotationWarnsItWillBeRefused(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	body := func(signed bool, at time.Time) []byte {
		c := contract.RotationCommand{Secret: "pat-a", OperationID: "op-1", Trigger: contract.TriggerManual, RequestedAt: at}
		if signed {
			c.Signature = &contract.CommandSignature{KeyVersion: "v1", MAC: "x"}
		}
		b, _ := json.Marshal(c)
		return b
	}
	for name, tc := range map[string]struct {
		queue string
		body  []byte
		warn  bool
	}{
		"a signed command older than MaxCommandAge":  {contract.QueueRotations, body(true, now.Add(-2*time.Hour)), true},
		"a signed command inside MaxCommandAge":      {contract.QueueRotations, body(true, now.Add(-time.Minute)), false},
		"an unsigned command (a sweep's, a wake-up)": {contract.QueueRotations, body(false, now.Add(-48*time.Hour)), false},
		"an HR message": {contract.QueueOffboarding, []byte(`{"schemaVersion":"1"}`), false},
	} {
		t.Run(name, func(t *testing.T) {
			got := resubmitCaveat(tc.queue, servicebus.Message{Body: tc.body}, now)
			if (got != "") != tc.warn || (tc.warn && !strings.Contains(got, "patrol rotate pat-a")) {
				t.Errorf("caveat %q, want one: %v", got, tc.warn)
			}
		})
	}
}

// What the day-2 commands print passes through the scrubbing errors get: a token
// someone put in a message body is not shown.
func TestDeadLetterOutputIsScrubbed(t *testing.T) {
	pat := strings.Repeat("a", 52)
	var b bytes.Buffer
	if err := writeDeadLetter(&b, servicebus.Message{MessageID: "m-1", Body: []byte(`{"token":"` + pat + `"}`),
		Properties: map[string]any{"auth": "Bearer " + pat}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), pat) {
		t.Errorf("the output shows the token:\n%s", b.String())
	}
}
