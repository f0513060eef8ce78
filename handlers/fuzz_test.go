package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// seedRequests returns every golden request of fn.
func seedRequests(f *testing.F, fn string) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", fn, "*.request.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed requests for %s: %v", fn, err)
	}
	var out [][]byte
	for _, p := range files {
		out = append(out, mustRead(f, p))
	}
	return out
}

// seedBindings adds Data[binding] of every golden request of fn.
func seedBindings(f *testing.F, fn, binding string) {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", fn, "*.request.json"))
	for _, p := range files {
		inv, err := DecodeInvocation(mustRead(f, p))
		if err != nil {
			f.Fatal(err)
		}
		if raw, ok := inv.binding(binding); ok {
			f.Add([]byte(raw))
			if b, err := unwrapValue(raw); err == nil {
				f.Add(b)
			}
		}
	}
}

func FuzzDecodeKeyVaultEvent(f *testing.F) {
	seedBindings(f, "KeyVaultEvents", "event")
	f.Add([]byte(`[` + validEvent + `]`))
	f.Add([]byte(`{"specversion":"1.0","type":"Microsoft.KeyVault.SecretExpired","id":"x","data":"{\"ObjectName\":\"a\",\"Version\":\"` + "ee059b2bb5bc48398a53b168c6cdcb10" + `\",\"VaultName\":\"v\",\"EXP\":\"1e9\"}"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := DecodeKeyVaultEvent(raw)
		if err != nil {
			if !isFieldError(err) {
				t.Fatalf("error %v is not a contract.FieldError", err)
			}
			return
		}
		if ev.Type != EventSecretNearExpiry && ev.Type != EventSecretExpired {
			t.Errorf("accepted type %q", ev.Type)
		}
		if !contract.ValidSecretName(ev.Secret) || !contract.ValidVersion(ev.Version) || !vaultNameOracle.MatchString(ev.VaultName) || ev.ID == "" {
			t.Errorf("accepted an event that breaks its invariants: %+v", ev)
		}
	})
}

func FuzzDecodeHTTPRequest(f *testing.F) {
	seedBindings(f, "RotateNow", "req")
	seedBindings(f, "SecretStatus", "req")
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := DecodeHTTPRequest(raw)
		if err != nil {
			return
		}
		// Whatever was accepted must be safe to turn into a request.
		rn, err := decodeRotateNow(Invocation{}, r, "inv-1", DefaultMaxWait)
		if err == nil && (!contract.ValidSecretName(rn.Secret) || rn.Wait < 0 || rn.Wait > DefaultMaxWait || contract.ValidateOpID(rn.OperationID) != nil) {
			t.Errorf("accepted a rotate request that breaks its invariants: %+v", rn)
		}
	})
}

func FuzzDecodeSweepTick(f *testing.F) {
	seedBindings(f, "Sweep", "timer")
	f.Fuzz(func(t *testing.T, raw []byte) {
		tick, err := DecodeSweepTick(raw)
		if err != nil {
			return
		}
		for _, ts := range []time.Time{tick.Last, tick.Next, tick.LastUpdated} {
			if !ts.IsZero() && ts.Location() != time.UTC {
				t.Errorf("%v is not UTC", ts)
			}
		}
	})
}

// FuzzInvocation drives whole invocations of every function: whatever the host (or an
// attacker on loopback) sends, the handler answers a JSON body, never acknowledges a
// Service Bus message it neither handled nor settled, and never panics.
func FuzzInvocation(f *testing.F) {
	fns := Functions()
	for i, fn := range fns {
		for _, b := range seedRequests(f, fn.Name) {
			f.Add(uint8(i), b)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		fn := fns[int(which)%len(fns)]
		app := &fakeApp{}
		rep := &fakeReporter{}
		h := New(Options{Deps: func(context.Context) (Deps, error) { return Deps{App: app, Failures: rep}, nil }})
		w := invoke(h, fn.Name, body)
		var resp struct {
			Outputs map[string]json.RawMessage
			Logs    []string
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer %q is not JSON: %v", w.Body, err)
		}
		if fn.Trigger == BindingServiceBusTrigger && w.Code < 300 {
			if len(app.calls) != 1 || len(rep.calls) != 0 {
				t.Errorf("acknowledged with %d app calls and %d failures reported, want one call and no failure", len(app.calls), len(rep.calls))
			}
		}
		if fn.Trigger == BindingHTTPTrigger && w.Code == http.StatusOK {
			var res struct {
				StatusCode int
				Body       string
			}
			if err := json.Unmarshal(resp.Outputs[fn.Output], &res); err != nil || res.StatusCode == 0 || !json.Valid([]byte(res.Body)) {
				t.Errorf("HTTP output %s is not an object with a status and a JSON body", resp.Outputs[fn.Output])
			}
		}
		if bytes.Contains(w.Body.Bytes(), []byte("panic")) {
			t.Errorf("answer mentions a panic: %s", w.Body)
		}
	})
}

func isFieldError(err error) bool {
	var fe *contract.FieldError
	return errors.As(err, &fe)
}

func FuzzDecodeInvocation(f *testing.F) {
	for _, fn := range Functions() {
		for _, b := range seedRequests(f, fn.Name) {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"Data":null}`))
	f.Add([]byte(`{"data":{"msg":"\"x\""},"metadata":{"DeliveryCount":"\"2\""}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		inv, err := DecodeInvocation(body)
		if err != nil {
			if !isFieldError(err) {
				t.Fatalf("error %v is not a contract.FieldError", err)
			}
			return
		}
		if inv.Data == nil || inv.Metadata == nil {
			t.Fatal("accepted an envelope without Data or Metadata maps")
		}
		mi, err := DecodeMessageInfo(inv)
		if err != nil {
			if !isFieldError(err) {
				t.Fatalf("error %v is not a contract.FieldError", err)
			}
			return
		}
		if mi.DeliveryCount < 0 {
			t.Errorf("negative DeliveryCount %d", mi.DeliveryCount)
		}
		for _, ts := range []time.Time{mi.EnqueuedAt, mi.ExpiresAt} {
			if !ts.IsZero() && ts.Location() != time.UTC {
				t.Errorf("%v is not UTC", ts)
			}
		}
	})
}

// vaultNameOracle is the rule validVaultName hand-writes, as a regexp: the fuzz tests
// hold the two in agreement.
var vaultNameOracle = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z-]{0,62}$`)

func FuzzValidVaultNameAgreesWithItsRegexp(f *testing.F) {
	for _, s := range []string{"patrol", "-a", "a-", "", strings.Repeat("a", 63), strings.Repeat("a", 64), "a.b", "Ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validVaultName(s), vaultNameOracle.MatchString(s); got != want {
			t.Errorf("validVaultName(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
