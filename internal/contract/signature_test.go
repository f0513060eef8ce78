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
