package contract

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestOutcomeOnPatEvents(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	rotated := Outcome{Status: StatusRotated, Secret: "pat-a", OperationID: "op-1", Trigger: TriggerSweep, Reason: "renew-window", Time: at}
	failure := Failure{Function: "Rotate", Queue: QueueRotations, MessageID: "m1", Secret: "pat-a", OperationID: "op-2",
		Reason: DeadLetterMalformed, Description: "rotation command: secret: missing"}.Outcome(at)
	tests := map[string]func() string{
		"the subject is the status": func() string {
			if rotated.Subject() != "rotated" {
				return rotated.Subject()
			}
			return ""
		},
		"the properties carry secret, status, trigger, reason and operation id": func() string {
			p := rotated.Properties()
			if p["secret"] != "pat-a" || p["status"] != "rotated" || p["trigger"] != "sweep" || p["reason"] != "renew-window" || p["operationId"] != "op-1" {
				return "properties " + mustJSON(p)
			}
			return ""
		},
		"every property is present even when empty, so filters never meet a missing one": func() string {
			p := Outcome{Status: StatusFailed}.Properties()
			for _, k := range []string{PropSecret, PropStatus, PropTrigger, PropReason, PropOperationID} {
				if _, ok := p[k]; !ok {
					return "no property " + k
				}
			}
			return ""
		},
		"a message given up on is a failed outcome naming the reason and the message": func() string {
			if failure.Status != StatusFailed || failure.Reason != DeadLetterMalformed || failure.OperationID != "op-2" ||
				!strings.Contains(failure.Message, "message m1 on pat-rotations") || !failure.Time.Equal(at) {
				return "outcome " + mustJSON(failure)
			}
			return ""
		},
		"the body uses the pat-events field names": func() string {
			if got := mustJSON(rotated); got != `{"status":"rotated","secret":"pat-a","operationId":"op-1","trigger":"sweep","reason":"renew-window","time":"2026-11-27T12:00:00Z"}` {
				return got
			}
			return ""
		},
	}
	for name, check := range tests {
		t.Run(name, func(t *testing.T) {
			if problem := check(); problem != "" {
				t.Error(problem)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
