package rotation

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The core's outcome has no JSON of its own: it travels as contract.Outcome, and reads
// back unchanged.
func TestOutcomeTravelsAsTheContractSays(t *testing.T) {
	o := Outcome{Status: StatusRotated, Secret: "pat-a", Op: "op-1", Trigger: TriggerManual, Reason: ReasonManual,
		Step: StepStore, Org: "contoso", Owner: "svc@contoso.com", PATID: "p1", PreviousPATID: "p0", Version: "v2",
		Expires: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), NextCheck: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Retryable: true, Time: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	got, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(o.Contract())
	if string(got) != string(want) {
		t.Errorf("core outcome marshals as\n%s\nthe contract's as\n%s", got, want)
	}
	var back Outcome
	if err := json.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(back, o) {
		t.Errorf("read back %+v, %v; want %+v", back, err, o)
	}
}
