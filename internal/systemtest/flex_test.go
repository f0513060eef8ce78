package systemtest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/demo"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
)

// On Flex Consumption RotateNow and SecretStatus run on other instances than Rotate;
// devhost runs them in other processes. An emergency rotation's outcome still reaches
// the caller, from state both read: a failure (Azure DevOps refuses the new PAT) is
// reported failed to ?wait= and to ?operation=, and a success completed.
func TestEmergencyRotationOutcomeReachesTheHTTPFunctionsOnOtherInstances(t *testing.T) {
	sys := start(t, options{seed: true})
	settle(t, sys)
	groups := sys.Host.Groups()
	if len(groups["http"]) == 0 || len(groups["function:Rotate"]) != 1 {
		t.Fatalf("scale groups %v: want RotateNow and Rotate in separate handler processes", groups)
	}
	ctx := context.Background()
	faults := sys.Stack.DevOps.Faults()
	faults.Set(devopsemu.OpCreatePat, fault.Fault{Status: http.StatusBadRequest})

	res, err := sys.RotateNow(ctx, demo.SecretBuild, `{"reason":"leaked"}`, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK || res.Body.Status != "failed" || res.Outcome == nil || res.Outcome.Status != contract.StatusFailed {
		t.Fatalf("RotateNow ?wait= answered HTTP %d, status %q, outcome %+v; want 200, failed, a failed outcome", res.Status, res.Body.Status, res.Outcome)
	}
	if op := operationStatus(t, sys, res.Body.OperationID); op.Status != contract.StatusFailed || op.Message != res.Outcome.Message {
		t.Errorf("SecretStatus ?operation= reports %+v, want the same failure", op)
	}

	faults.Clear(devopsemu.OpCreatePat)
	res, err = sys.RotateNow(ctx, demo.SecretBuild, `{"reason":"leaked, again"}`, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK || res.Body.Status != "completed" || res.Outcome == nil || res.Outcome.Status != contract.StatusRotated {
		t.Fatalf("RotateNow ?wait= answered HTTP %d, status %q, outcome %+v; want 200, completed, rotated", res.Status, res.Body.Status, res.Outcome)
	}
	if op := operationStatus(t, sys, res.Body.OperationID); op.Status != contract.StatusRotated || op.Version != res.Outcome.Version {
		t.Errorf("SecretStatus ?operation= reports %+v, want rotated to %s", op, res.Outcome.Version)
	}
	settle(t, sys)
	requireInvariants(t, sys)
}

// operationStatus asks SecretStatus about one operation of the build secret.
func operationStatus(t *testing.T, sys *demo.System, op string) contract.Outcome {
	t.Helper()
	code, _, body := call(t, sys, http.MethodGet, "SecretStatus", map[string]string{"secret": demo.SecretBuild}, "operation="+op, "")
	if code != http.StatusOK {
		t.Fatalf("SecretStatus: HTTP %d %s", code, body)
	}
	var res contract.StatusResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if res.Operation == nil {
		t.Fatalf("SecretStatus named no operation: %s", body)
	}
	return *res.Operation
}
