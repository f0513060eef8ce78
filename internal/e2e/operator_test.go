package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

// The operator's commands with exactly the Service Bus rights infra/ grants the
// operator (stack.OperatorRights, which internal/settings holds in agreement with
// servicebus.bicep): the emulator refuses anything more, as Azure would.
func TestOperatorCommandsWorkWithOnlyTheOperatorsRoles(t *testing.T) {
	e := newEnv(t, envOptions{noSignIn: true})
	isolateSDKVariables(t, e.envFile)
	e.envFile = filepath.Join(filepath.Dir(e.envFile), stack.OperatorEnvFile)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	e.approveDeviceSignIns(ctx)

	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"login", "--service-account", stack.ServiceAccount, "--device-code"}, "Signed in"},
		{[]string{"adopt", "feed", "--org", stack.Organization, "--scopes", "vso.packaging"}, "feed: rotated (adopt)"},
		{[]string{"rotate", "feed"}, "previous PAT"},
		{[]string{"rotate", "feed", "--revoke-now"}, "feed: rotated (manual)"},
		{[]string{"status"}, "feed"},
		{[]string{"plan"}, "of 1 managed secret(s)"},
		{[]string{"offboard", "--upn", stack.Person}, contract.QueueOffboarding},
	} {
		out, errOut, code := e.patrol(step.args...)
		if code != 0 || !strings.Contains(out, step.want) {
			t.Fatalf("patrol %s: exit %d, want 0 and %q:\n%s\n%s", strings.Join(step.args, " "), code, step.want, out, errOut)
		}
	}
	// The first rotate scheduled the replaced PAT's revocation on pat-revocations.
	if len(e.messages(contract.QueueRevocations)) == 0 {
		t.Error("rotate scheduled no revocation on pat-revocations")
	}

	env := e.st.OperatorEnv("")
	client, err := azservicebus.NewClientFromConnectionString(env["ServiceBusConnection"], &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	call, stop := context.WithTimeout(e.ctx, 20*time.Second)
	defer stop()

	// Following outcomes is the operator's too: the adopt's and the rotations' outcomes.
	events, err := client.NewReceiverForSubscription(contract.TopicEvents, "all", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := events.PeekMessages(call, 10, nil); err != nil || len(got) < 3 {
		t.Errorf("peek pat-events/all as the operator: %d messages, %v; want the 3 outcomes", len(got), err)
	}

	// And no more: the app's queues are not the operator's to drain.
	rotations, err := client.NewReceiverForQueue(contract.QueueRevocations, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rotations.ReceiveMessages(call, 1, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeUnauthorizedAccess {
		t.Errorf("receive from pat-revocations as the operator: %v, want CodeUnauthorizedAccess", err)
	}
}
