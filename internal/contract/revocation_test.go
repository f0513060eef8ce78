package contract

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const unmanagedBody = `{"schemaVersion":"1","kind":"offboarding-unmanaged","org":"contoso","patId":"11111111-2222-4333-8444-555555555555",
"owner":"alice@contoso.com","account":"svc-build@contoso.com","operationId":"op-1","eventId":"hr-42",
"person":{"upn":"alice@contoso.com"},"requestedAt":"2026-11-27T12:00:00Z"}`

func TestRevocationCommandsOfUnmanagedPATs(t *testing.T) {
	tests := map[string]struct {
		edit  func(string) string
		field string // the field the refusal names; empty: accepted
	}{
		"an unmanaged PAT's revocation names the person, the event and the account": {edit: func(s string) string { return s }},
		"it names no secret, since none holds the PAT": {
			edit: func(s string) string { return strings.Replace(s, `"org"`, `"secret":"pat-x","org"`, 1) }, field: "secret"},
		"it needs the person": {
			edit: func(s string) string { return strings.Replace(s, `"person":{"upn":"alice@contoso.com"},`, "", 1) }, field: "person"},
		"it needs the HR event": {
			edit: func(s string) string { return strings.Replace(s, `"eventId":"hr-42",`, "", 1) }, field: "eventId"},
		"it needs the account that revokes": {
			edit: func(s string) string { return strings.Replace(s, `"account":"svc-build@contoso.com",`, "", 1) }, field: "account"},
		"an unknown kind is refused": {
			edit: func(s string) string { return strings.Replace(s, "offboarding-unmanaged", "everything", 1) }, field: "kind"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeRevocationCommand([]byte(tc.edit(unmanagedBody)))
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("err = %v, want a refusal naming %s", err, tc.field)
			}
		})
	}
}

func TestSignedUnmanagedRevocationsVerifyAndAlteredOnesDoNot(t *testing.T) {
	c, err := DecodeRevocationCommand([]byte(unmanagedBody))
	if err != nil {
		t.Fatal(err)
	}
	at := c.RequestedAt
	if err := c.Verify(sigKey, at); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unsigned: %v, want ErrUnauthenticated", err)
	}
	if err := c.Sign(sigKey); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(sigKey, at.Add(time.Minute)); err != nil {
		t.Errorf("signed, run a minute after it was due: %v", err)
	}
	altered := c
	altered.PATID = "66666666-7777-4888-8999-aaaaaaaaaaaa"
	if err := altered.Verify(sigKey, at); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("another PAT under the same signature: %v, want ErrUnauthenticated", err)
	}
	if err := c.Verify(sigKey2, at); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("another key: %v, want ErrUnauthenticated", err)
	}
	if err := c.Verify(sigKey, at.Add(MaxCommandAge+time.Minute)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("replayed later: %v, want ErrUnauthenticated", err)
	}
	// A rotation command's MAC never verifies as a revocation's (domain labels).
	if string(c.Canonical()) == string(RotationCommand{}.Canonical()) {
		t.Error("the canonical forms share a domain")
	}
}
