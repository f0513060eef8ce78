package functionapp

import (
	"testing"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

func TestMappings(t *testing.T) {
	cmd := contract.RotationCommand{Secret: "pat-a", OperationID: "op-1", Trigger: contract.TriggerOffboarding, RevokeNow: true,
		Person: &contract.Person{UPN: "alice@contoso.com"}}
	tr := TriggerOf(cmd)
	if tr.Kind != rotation.TriggerOffboarding || tr.Op != "op-1" || !tr.RevokeNow || tr.Person.UPN != "alice@contoso.com" {
		t.Errorf("trigger = %+v", tr)
	}
	if err := TriggerOf(contract.RotationCommand{Trigger: contract.TriggerWakeup, OperationID: "op", Version: ver1}).Validate(); err != nil {
		t.Errorf("a wake-up command maps to an invalid core trigger: %v", err)
	}
	rev := RevocationOf(contract.RevocationCommand{Secret: "pat-a", Org: "contoso", PATID: pat1, Owner: "svc-build@contoso.com", OperationID: "op"})
	if rev.Account != "svc-build@contoso.com" {
		t.Errorf("a revocation without an account is not performed by the owner: %+v", rev)
	}
	o := OutcomeOf(rotation.Outcome{Status: rotation.StatusRotated, Secret: "pat-a", Op: "op", Reason: rotation.ReasonManual, Version: ver1, Time: now})
	if o.Status != contract.StatusRotated || o.OperationID != "op" || o.Version != ver1 || o.Reason != "manual" {
		t.Errorf("outcome = %+v", o)
	}
}

func TestFinished(t *testing.T) {
	tests := map[string]struct {
		o         contract.Outcome
		retryable bool
		want      bool
	}{
		"a rotation is final":                   {o: contract.Outcome{Status: contract.StatusRotated}, want: true},
		"a permanent failure is final":          {o: contract.Outcome{Status: contract.StatusFailed}, want: true},
		"a failure that will be retried is not": {o: contract.Outcome{Status: contract.StatusFailed}, retryable: true},
		"needs-attention is final":              {o: contract.Outcome{Status: contract.StatusNeedsAttention}, want: true},
		"pending is not":                        {o: contract.Outcome{Status: contract.StatusPending}},
		"nothing is not":                        {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Finished(tc.o, tc.retryable); got != tc.want {
				t.Errorf("Finished = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	v := managed("pat-a", ver1, map[string]string{rotation.TagOp: "op-1", rotation.TagReason: "manual"})
	rows := rotation.Plan([]rotation.Version{v}, defaults, now)
	s := rotation.StatusOf(v, &rows[0])
	if !s.Managed || s.Org != "contoso" || s.Owner != "svc-build@contoso.com" || s.PATID != pat1 || s.LastOperation != "op-1" || s.ServiceAccount != "svc-build@contoso.com" {
		t.Errorf("status = %+v", s)
	}
	if s.RenewAt.IsZero() {
		t.Error("no renewal time for a secret inside its renew window")
	}
	bad := managed("pat-b", ver1, map[string]string{rotation.TagScopes: "app_token"})
	rows = rotation.Plan([]rotation.Version{bad}, defaults, now)
	if s := rotation.StatusOf(bad, &rows[0]); s.NeedsAttention == "" {
		t.Errorf("a full-scope secret does not say it needs attention: %+v", s)
	}
	if s := rotation.StatusOf(rotation.Version{Name: "x", Tags: map[string]string{}}, nil); s.Managed || s.Org != "" {
		t.Errorf("an unmanaged secret reports policy: %+v", s)
	}
	o, ok := OperationOf("pat-a", "op-1", rotation.Input{Exists: true, Current: v})
	if !ok || o.Status != contract.StatusRotated || o.Version != ver1 {
		t.Errorf("OperationOf = %+v, %v", o, ok)
	}
	if _, ok := OperationOf("pat-a", "op-2", rotation.Input{Exists: true, Current: v}); ok {
		t.Error("another operation's version is reported as this one's")
	}
}
