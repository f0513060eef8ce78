package functionapp

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The Azure workbook (infra/modules/queries/expiry.kql) reads each secret's days to
// expiry from the Sweep's "sweep: secret" records: msg, secret and expires, as JSON.
func TestSweepLogsEverySecretWithItsExpiry(t *testing.T) {
	due := managed("pat-due", ver1, nil)
	due.Expires = now.Add(24 * time.Hour)
	later := managed("pat-later", ver2, nil)
	later.Expires = now.Add(60 * 24 * time.Hour)
	r := &memRotator{secrets: map[string]rotation.Version{"pat-due": due, "pat-later": later}}
	var out bytes.Buffer
	a, err := New(Options{Rotator: r, Inventory: r, Commands: &memBus{}, Publisher: &memBus{}, Defaults: defaults,
		Clock: rotation.NowFunc(func() time.Time { return now }), CommandKeys: testKeys, Logger: slog.New(slog.NewJSONHandler(&out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Sweep(context.Background(), handlers.SweepTick{}); err != nil {
		t.Fatal(err)
	}

	got := map[string]time.Time{}
	for line := range bytes.Lines(out.Bytes()) {
		var rec struct {
			Msg     string    `json:"msg"`
			Secret  string    `json:"secret"`
			Expires time.Time `json:"expires"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec.Msg == "sweep: secret" {
			got[rec.Secret] = rec.Expires
		}
	}
	want := map[string]time.Time{"pat-due": due.Expires, "pat-later": later.Expires}
	if len(got) != len(want) {
		t.Fatalf("sweep: secret records for %v, want one for each of %v", got, want)
	}
	for secret, exp := range want {
		if !got[secret].Equal(exp) {
			t.Errorf("%s: expires %v, want %v", secret, got[secret], exp)
		}
	}
}
