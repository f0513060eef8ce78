package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
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

// detailVersions are one secret rotated on a person's request after a leak, and one
// whose tags ask for more than the operator's bounds.
func detailVersions() []rotation.Version {
	vs := statusVersions()
	rotated := vs[0]
	rotated.Name = "pat-build"
	rotated.Tags[rotation.TagPreviousPATID] = "9a1b2c3d-0000-4000-8000-00000000abcd"
	rotated.Tags[rotation.TagOp] = "k7m2q4x9c1v8b3n6"
	rotated.Tags[rotation.TagReason] = "manual"
	rotated.Tags[rotation.TagRequestedBy] = "alice@contoso.com"
	rotated.Tags[rotation.TagRequestReason] = "INC-1234 leaked in a build log"
	greedy := statusVersions()[0]
	greedy.Name = "greedy"
	greedy.Tags[rotation.TagScopes] = "vso.code vso.tokens"
	return []rotation.Version{rotated, greedy}
}

func detail(t *testing.T, name string) contract.SecretStatus {
	t.Helper()
	for _, r := range rotation.Plan(detailVersions(), defaults(), statusNow) {
		if r.Secret == name {
			return r.StatusDetail()
		}
	}
	t.Fatalf("no row for %s", name)
	return contract.SecretStatus{}
}

func TestStatusOfOneSecretTable(t *testing.T) {
	var b bytes.Buffer
	for _, name := range []string{"pat-build", "greedy"} {
		if err := writeStatusDetail(&b, detail(t, name), statusNow); err != nil {
			t.Fatal(err)
		}
		b.WriteString("\n")
	}
	golden(t, "status-secret.table.golden", b.Bytes())
}

func TestStatusOfOneSecretJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatusJSON(&b, []contract.SecretStatus{detail(t, "pat-build")}); err != nil {
		t.Fatal(err)
	}
	golden(t, "status-secret.json.golden", b.Bytes())
}

// The detail names both PATs a consumer may still hold during the grace period, and
// who asked for the rotation: what an operator looks for after a leak.
func TestStatusOfOneSecretShowsBothPATsAndTheRequester(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatusDetail(&b, detail(t, "pat-build"), statusNow); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0f8fad5b-d9cb-469f-a165-70867728950e", "9a1b2c3d-0000-4000-8000-00000000abcd",
		"alice@contoso.com: INC-1234 leaked in a build log", "vso.code", "k7m2q4x9c1v8b3n6 (manual)"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("detail lacks %q:\n%s", want, b.String())
		}
	}
}
