package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	sigNow  = time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	sigKey  = NewCommandKey("0123456789abcdef0123456789abcdef", []byte(strings.Repeat("k", CommandKeySize)))
	sigKey2 = NewCommandKey("fedcba9876543210fedcba9876543210", []byte(strings.Repeat("q", CommandKeySize)))
)

func signedManual(t testing.TB) RotationCommand {
	c := RotationCommand{Secret: "pat-a", OperationID: "op-1", Trigger: TriggerManual, RevokeNow: true,
		RequestedBy: "entra:alice", Reason: "leak", RequestedAt: sigNow}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Sign(sigKey); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignedCommandsVerifyAndAlteredOnesDoNot(t *testing.T) {
	if err := signedManual(t).Verify(sigKey, sigNow.Add(time.Minute)); err != nil {
		t.Fatalf("a freshly signed command: %v", err)
	}
	alter := map[string]func(c *RotationCommand){
		"another secret":           func(c *RotationCommand) { c.Secret = "pat-b" },
		"another operation":        func(c *RotationCommand) { c.OperationID = "op-2" },
		"revokeNow dropped":        func(c *RotationCommand) { c.RevokeNow = false },
		"another requester":        func(c *RotationCommand) { c.RequestedBy = "mallory" },
		"another reason":           func(c *RotationCommand) { c.Reason = "" },
		"a later requestedAt":      func(c *RotationCommand) { c.RequestedAt = c.RequestedAt.Add(time.Second) },
		"a version added":          func(c *RotationCommand) { c.Version = "0123456789abcdef0123456789abcdef" },
		"a person added":           func(c *RotationCommand) { c.Person = &Person{UPN: "a@b.c"} },
		"no signature":             func(c *RotationCommand) { c.Signature = nil },
		"a MAC that is not base64": func(c *RotationCommand) { c.Signature.MAC = "!!" },
		"another key's version":    func(c *RotationCommand) { c.Signature.KeyVersion = sigKey2.Version },
	}
	for name, f := range alter {
		t.Run(name, func(t *testing.T) {
			c := signedManual(t)
			sig := *c.Signature
			c.Signature = &sig
			f(&c)
			err := c.Verify(sigKey, sigNow)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("verified: %v", err)
			}
		})
	}
	t.Run("another key", func(t *testing.T) {
		c := signedManual(t)
		if err := c.Verify(sigKey2, sigNow); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("verified with another key: %v", err)
		}
	})
	t.Run("too old", func(t *testing.T) {
		if err := signedManual(t).Verify(sigKey, sigNow.Add(MaxCommandAge+time.Second)); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("a stale command verified: %v", err)
		}
	})
	t.Run("from the future", func(t *testing.T) {
		if err := signedManual(t).Verify(sigKey, sigNow.Add(-time.Hour)); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("a command from the future verified: %v", err)
		}
	})
}

func TestCommandKeyNeverPrintsItsBytes(t *testing.T) {
	for _, s := range []string{fmt.Sprint(sigKey), fmt.Sprintf("%+v %#v %s %q %x", sigKey, sigKey, sigKey, sigKey, sigKey), fmt.Sprint(struct{ K CommandKey }{sigKey})} {
		if strings.Contains(s, "kkkk") || strings.Contains(s, "6b6b") {
			t.Errorf("the key's bytes appear in %q", s)
		}
	}
	b, _ := sigKey.MarshalJSON()
	if strings.Contains(string(b), "kkkk") {
		t.Errorf("JSON %s", b)
	}
}

// Any command the decoder accepts, once signed, survives the JSON round trip the
// queue puts it through and still verifies; its canonical form changes with it.
func FuzzSignedCommandRoundTrip(f *testing.F) {
	seedBodies(f, "Rotate")
	f.Add([]byte(`{"secret":"a","operationId":"o","trigger":"manual","reason":"x","requestedBy":"y","requestedAt":"2026-11-27T20:00:00.5Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeRotationCommand(body)
		if err != nil {
			return
		}
		c.Signature = nil
		if err := c.Sign(sigKey); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeRotationCommand(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if err := again.Verify(sigKey, again.RequestedAt); again.RequestedAt.IsZero() != (err != nil) {
			t.Errorf("verify after the round trip: %v (requestedAt %v)", err, again.RequestedAt)
		}
	})
}

func signedRevocation(t testing.TB) RevocationCommand {
	c := RevocationCommand{Secret: "pat-a", Org: "contoso", PATID: "3E1F7C2A-5B4D-4E6F-8A9B-0C1D2E3F4A5B",
		Owner: "svc@contoso.example", Account: "svc@contoso.example", OperationID: "op-1", RequestedAt: sigNow}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Sign(sigKey); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignedRevocationsVerifyAndAlteredOnesDoNot(t *testing.T) {
	if err := signedRevocation(t).Verify(sigKey, sigNow.Add(time.Minute)); err != nil {
		t.Fatalf("a freshly signed revocation: %v", err)
	}
	alter := map[string]func(c *RevocationCommand){
		"another PAT":          func(c *RevocationCommand) { c.PATID = "4e1f7c2a-5b4d-4e6f-8a9b-0c1d2e3f4a5b" },
		"another secret":       func(c *RevocationCommand) { c.Secret = "pat-b" },
		"another organization": func(c *RevocationCommand) { c.Org = "fabrikam" },
		"another owner":        func(c *RevocationCommand) { c.Owner = "ada@contoso.example" },
		"another account":      func(c *RevocationCommand) { c.Account = "admin@contoso.example" },
		"another operation":    func(c *RevocationCommand) { c.OperationID = "op-2" },
		"a later requestedAt":  func(c *RevocationCommand) { c.RequestedAt = c.RequestedAt.Add(time.Second) },
		"no signature":         func(c *RevocationCommand) { c.Signature = nil },
		"another key's version": func(c *RevocationCommand) {
			c.Signature.KeyVersion = sigKey2.Version
		},
	}
	for name, f := range alter {
		t.Run(name, func(t *testing.T) {
			c := signedRevocation(t)
			sig := *c.Signature
			c.Signature = &sig
			f(&c)
			if err := c.Verify(sigKey, sigNow); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("verified: %v", err)
			}
		})
	}
	t.Run("too old", func(t *testing.T) {
		if err := signedRevocation(t).Verify(sigKey, sigNow.Add(MaxCommandAge+time.Second)); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("a stale revocation verified: %v", err)
		}
	})
	t.Run("a rotation command's MAC does not verify as a revocation", func(t *testing.T) {
		c := signedRevocation(t)
		rot := RotationCommand{SchemaVersion: SchemaVersion, Secret: c.Secret, OperationID: c.OperationID, Trigger: TriggerManual, RequestedAt: c.RequestedAt}
		if err := rot.Sign(sigKey); err != nil {
			t.Fatal(err)
		}
		c.Signature = rot.Signature
		if err := c.Verify(sigKey, sigNow); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("verified: %v", err)
		}
	})
	t.Run("the refusal names the revocation", func(t *testing.T) {
		c := signedRevocation(t)
		c.Signature = nil
		if err := c.Verify(sigKey, sigNow); err == nil || !strings.HasPrefix(err.Error(), "revocation command: signature: missing") {
			t.Errorf("error %v", err)
		}
	})
}

// Any revocation the decoder accepts, once signed, survives the JSON round trip and
// still verifies.
func FuzzSignedRevocationRoundTrip(f *testing.F) {
	seedBodies(f, "Revoke")
	f.Add([]byte(`{"secret":"a","org":"contoso","patId":"3E1F7C2A-5B4D-4E6F-8A9B-0C1D2E3F4A5B","account":"svc@contoso.example","operationId":"o","requestedAt":"2026-11-27T20:00:00.5+01:00"}`))
	// An offset once carried the year out of what encoding/json can write.
	f.Add([]byte(`{"secret":"0","org":"0","patId":"00000000-0000-0000-0000-000000000000","account":"0@0.0","op":"0","requestedAt":"0000-01-01T00:00:00+01:00"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeRevocationCommand(body)
		if err != nil {
			return
		}
		c.Signature = nil
		if err := c.Sign(sigKey); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeRevocationCommand(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if err := again.Verify(sigKey, again.RequestedAt); again.RequestedAt.IsZero() != (err != nil) {
			t.Errorf("verify after the round trip: %v (requestedAt %v)", err, again.RequestedAt)
		}
		again.OperationID += "x"
		if err := again.Verify(sigKey, again.RequestedAt); err == nil {
			t.Error("an altered revocation verified")
		}
	})
}
