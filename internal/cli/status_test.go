package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var statusNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// statusVersions are managed secrets in every state status distinguishes.
func statusVersions() []rotation.Version {
	tags := func(extra ...string) map[string]string {
		t := map[string]string{rotation.TagManaged: "true", rotation.TagOrg: "contoso", rotation.TagScopes: "vso.code",
			rotation.TagServiceAccount: "svc-build@contoso.com", rotation.TagOwner: "svc-build@contoso.com",
			rotation.TagPATID: "0f8fad5b-d9cb-469f-a165-70867728950e"}
		for i := 0; i+1 < len(extra); i += 2 {
			t[extra[i]] = extra[i+1]
		}
		return t
	}
	v := func(name string, created, expires time.Time, enabled bool, t map[string]string) rotation.Version {
		return rotation.Version{Name: name, ID: "0123456789abcdef0123456789abcdef", Enabled: enabled, Created: created, Expires: expires, Tags: t}
	}
	return []rotation.Version{
		v("healthy", statusNow.Add(-10*24*time.Hour), statusNow.Add(80*24*time.Hour), true, tags()),
		v("due-soon", statusNow.Add(-80*24*time.Hour), statusNow.Add(10*24*time.Hour), true, tags()),
		v("expired", statusNow.Add(-91*24*time.Hour), statusNow.Add(-24*time.Hour), true, tags()),
		v("switched-off", statusNow.Add(-10*24*time.Hour), statusNow.Add(80*24*time.Hour), false, tags()),
		v("bad-policy", statusNow.Add(-10*24*time.Hour), statusNow.Add(80*24*time.Hour), true, tags(rotation.TagScopes, "app_token")),
	}
}

func defaults() rotation.Defaults {
	return rotation.Defaults{
		Lifetime: 90 * 24 * time.Hour, Grace: 24 * time.Hour, RenewBefore: 14 * 24 * time.Hour,
		Bounds: rotation.Bounds{
			Orgs: []string{"contoso"}, ServiceAccounts: map[string][]string{"svc-build@contoso.com": {"contoso"}},
			Scopes: []string{"vso.*"}, MaxLifetime: 90 * 24 * time.Hour, MaxGrace: 7 * 24 * time.Hour,
		},
	}
}

// A secret whose tags ask for more than the operator's bounds shows which bound, in
// status and in plan, and is not due.
func TestStatusAndPlanShowSecretsOutsideTheBounds(t *testing.T) {
	v := statusVersions()[0]
	v.Name = "greedy"
	v.Tags[rotation.TagScopes] = "vso.code vso.tokens"
	rows := statuses(rotation.Plan([]rotation.Version{v}, defaults(), statusNow))
	const want = "outside bounds (scope vso.tokens not allowed by PATROL_ALLOWED_SCOPES)"
	var table, plan bytes.Buffer
	if err := writeStatusTable(&table, rows, statusNow); err != nil {
		t.Fatal(err)
	}
	if err := writePlan(&plan, rows, statusNow); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(table.Bytes(), []byte("needs attention: "+want)) {
		t.Errorf("status table does not say %q:\n%s", "needs attention: "+want, table.String())
	}
	if !bytes.Contains(plan.Bytes(), []byte(want)) || !bytes.Contains(plan.Bytes(), []byte(rotation.ReasonOutsideBounds)) {
		t.Errorf("plan does not name the bound:\n%s", plan.String())
	}
	if len(rows) != 1 || rows[0].NeedsAttention != want {
		t.Errorf("status = %+v, want needsAttention %q", rows, want)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestStatusTable(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatusTable(&b, statuses(rotation.Plan(statusVersions(), defaults(), statusNow)), statusNow); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.table.golden", b.Bytes())
}

func TestStatusJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatusJSON(&b, statuses(rotation.Plan(statusVersions(), defaults(), statusNow))); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.json.golden", b.Bytes())
}

func TestStatusOfAnEmptyVault(t *testing.T) {
	var table, js bytes.Buffer
	if err := writeStatusTable(&table, nil, statusNow); err != nil {
		t.Fatal(err)
	}
	if err := writeStatusJSON(&js, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(table.Bytes(), []byte("patrol adopt")) || js.String() != "{\n  \"secrets\": []\n}\n" {
		t.Fatalf("table %q, json %q", table.String(), js.String())
	}
}

func TestPlanSaysWhatASweepWouldDo(t *testing.T) {
	var b bytes.Buffer
	if err := writePlan(&b, statuses(rotation.Plan(statusVersions(), defaults(), statusNow)), statusNow); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.golden", b.Bytes())
}
