package keyvault

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
)

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestSecretLifecycleThroughAzsecrets(t *testing.T) {
	env := newEnv(t, nil)
	ctx := context.Background()
	cred := env.cred(officerOID)
	c := env.client("alpha", cred, nil)
	exp := testStart.Add(90 * 24 * time.Hour)

	set1, err := c.SetSecret(ctx, "pat-svc1", azsecrets.SetSecretParameters{
		Value: ptr("first"), ContentType: ptr("text/plain"), Tags: map[string]*string{"owner": ptr("svc1")},
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp},
	}, nil)
	if err != nil {
		t.Fatalf("SetSecret: %v", err)
	}
	v1 := set1.ID.Version()
	if !versionRE.MatchString(v1) || set1.ID.Name() != "pat-svc1" {
		t.Fatalf("SetSecret id %q: want name pat-svc1 and a 32-hex version", *set1.ID)
	}
	if *set1.Value != "first" || !set1.Attributes.Expires.Equal(exp) || *set1.Attributes.RecoveryLevel != "Recoverable+Purgeable" ||
		*set1.Attributes.RecoverableDays != 90 || !set1.Attributes.Created.Equal(testStart) {
		t.Fatalf("SetSecret response attributes = %+v", *set1.Attributes)
	}

	env.clk.Advance(time.Minute)
	set2, err := c.SetSecret(ctx, "pat-svc1", azsecrets.SetSecretParameters{Value: ptr("second")}, nil)
	if err != nil {
		t.Fatalf("SetSecret v2: %v", err)
	}
	v2 := set2.ID.Version()

	latest, err := c.GetSecret(ctx, "pat-svc1", "", nil)
	if err != nil {
		t.Fatalf("GetSecret latest: %v", err)
	}
	if *latest.Value != "second" || latest.ID.Version() != v2 {
		t.Fatalf("GetSecret latest = version %s, want %s with the second value", latest.ID.Version(), v2)
	}
	old, err := c.GetSecret(ctx, "pat-svc1", v1, nil)
	if err != nil {
		t.Fatalf("GetSecret v1: %v", err)
	}
	if *old.Value != "first" || *old.Tags["owner"] != "svc1" || *old.ContentType != "text/plain" {
		t.Fatalf("GetSecret v1 lost its value, tags or content type")
	}

	// Update the first version's tags and disable it; the latest keeps its own.
	upd, err := c.UpdateSecretProperties(ctx, "pat-svc1", v1, azsecrets.UpdateSecretPropertiesParameters{
		Tags: map[string]*string{"state": ptr("retired")}, SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)},
	}, nil)
	if err != nil {
		t.Fatalf("UpdateSecretProperties v1: %v", err)
	}
	if upd.Value != nil || *upd.Attributes.Enabled || *upd.Tags["state"] != "retired" || upd.ID.Version() != v1 {
		t.Fatalf("UpdateSecretProperties v1 response: enabled=%v tags=%v value present=%v", *upd.Attributes.Enabled, upd.Tags, upd.Value != nil)
	}
	if _, err := c.UpdateSecretProperties(ctx, "pat-svc1", "", azsecrets.UpdateSecretPropertiesParameters{ContentType: ptr("application/x-pat")}, nil); err != nil {
		t.Fatalf("UpdateSecretProperties latest: %v", err)
	}
	if infos, _ := env.kv.Versions("alpha", "pat-svc1"); infos[1].ContentType != "application/x-pat" || infos[0].Tags["state"] != "retired" {
		t.Fatalf("inspection after updates: %+v", infos)
	}

	var versions []string
	for p := c.NewListSecretPropertiesVersionsPager("pat-svc1", nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("versions page: %v", err)
		}
		for _, s := range page.Value {
			versions = append(versions, s.ID.Version())
		}
	}
	if strings.Join(versions, ",") != v1+","+v2 {
		t.Fatalf("versions = %v, want [%s %s]", versions, v1, v2)
	}

	del, err := c.DeleteSecret(ctx, "pat-svc1", nil)
	if err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if del.RecoveryID == nil || !strings.HasSuffix(*del.RecoveryID, "/deletedsecrets/pat-svc1") || del.DeletedDate == nil ||
		!del.ScheduledPurgeDate.Equal(del.DeletedDate.Add(90*24*time.Hour)) || del.ID.Version() != v2 {
		t.Fatalf("DeleteSecret response = recoveryId %v deleted %v purge %v id %v", del.RecoveryID, del.DeletedDate, del.ScheduledPurgeDate, del.ID)
	}
	if _, err := c.GetDeletedSecret(ctx, "pat-svc1", nil); err != nil {
		t.Fatalf("GetDeletedSecret: %v", err)
	}
	var deleted []string
	for p := c.NewListDeletedSecretPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("deleted page: %v", err)
		}
		for _, d := range page.Value {
			deleted = append(deleted, d.ID.Name())
		}
	}
	if len(deleted) != 1 || deleted[0] != "pat-svc1" {
		t.Fatalf("deleted secrets = %v", deleted)
	}
	if _, err := c.RecoverDeletedSecret(ctx, "pat-svc1", nil); err != nil {
		t.Fatalf("RecoverDeletedSecret: %v", err)
	}
	if got, err := c.GetSecret(ctx, "pat-svc1", "", nil); err != nil || *got.Value != "second" {
		t.Fatalf("GetSecret after recover: %v", err)
	}
	if _, err := c.DeleteSecret(ctx, "pat-svc1", nil); err != nil {
		t.Fatalf("DeleteSecret again: %v", err)
	}
	if _, err := c.PurgeDeletedSecret(ctx, "pat-svc1", nil); err != nil {
		t.Fatalf("PurgeDeletedSecret: %v", err)
	}
	if _, err := c.GetDeletedSecret(ctx, "pat-svc1", nil); err == nil {
		t.Fatal("GetDeletedSecret after purge succeeded")
	}
	if _, err := c.SetSecret(ctx, "pat-svc1", azsecrets.SetSecretParameters{Value: ptr("reborn")}, nil); err != nil {
		t.Fatalf("SetSecret after purge: %v", err)
	}
	// One challenge round trip for the client's first request, then cached tokens.
	if n := cred.calls.Load(); n != 1 {
		t.Fatalf("credential asked for %d tokens, want 1", n)
	}
}

func TestBackupAndRestoreThroughAzsecrets(t *testing.T) {
	env := newEnv(t, nil)
	ctx := context.Background()
	c := env.client("alpha", env.cred(officerOID), nil)
	if _, err := env.kv.Put("alpha", "kept", NewSecret{Value: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.kv.Put("alpha", "kept", NewSecret{Value: "v2"}); err != nil {
		t.Fatal(err)
	}
	b, err := c.BackupSecret(ctx, "kept", nil)
	if err != nil {
		t.Fatalf("BackupSecret: %v", err)
	}
	if strings.Contains(string(b.Value), "v1") {
		t.Fatal("the backup blob holds the value in clear")
	}
	if _, err := c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: b.Value}, nil); err == nil {
		t.Fatal("RestoreSecret over an existing secret succeeded")
	}
	env.client("beta", env.cred(officerOID), nil)
	if _, err := env.client("beta", env.cred(officerOID), nil).RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: b.Value}, nil); err != nil {
		t.Fatalf("RestoreSecret into another vault: %v", err)
	}
	if v, _ := env.kv.SecretValue("beta", "kept", ""); v != "v2" {
		t.Fatal("restored secret does not have the latest value")
	}
	if vs, _ := env.kv.Versions("beta", "kept"); len(vs) != 2 {
		t.Fatalf("restored %d versions, want 2", len(vs))
	}
}

func TestListingPagesAcrossSeveralPages(t *testing.T) {
	env := newEnv(t, nil)
	ctx := context.Background()
	c := env.client("alpha", env.cred(officerOID), nil)
	want := map[string]bool{}
	for i := range 60 {
		name := fmt.Sprintf("secret-%02d", i)
		want[name] = true
		if _, err := env.kv.Put("alpha", name, NewSecret{Value: "x", Tags: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	var sizes []int
	for p := c.NewListSecretPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", len(sizes)+1, err)
		}
		sizes = append(sizes, len(page.Value))
		for _, s := range page.Value {
			if s.ID.Version() != "" {
				t.Fatalf("list item id %s carries a version", *s.ID)
			}
			if got[s.ID.Name()] {
				t.Fatalf("%s listed twice", s.ID.Name())
			}
			got[s.ID.Name()] = true
		}
	}
	if fmt.Sprint(sizes) != "[25 25 10]" || !maps.Equal(got, want) {
		t.Fatalf("pages of %v listing %d secrets; want [25 25 10] and all 60", sizes, len(got))
	}

	for i := range 30 {
		if _, err := env.kv.Put("alpha", "many-versions", NewSecret{Value: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	sizes = nil
	seen := map[string]bool{}
	for p := c.NewListSecretPropertiesVersionsPager("many-versions", nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("versions page: %v", err)
		}
		sizes = append(sizes, len(page.Value))
		for _, s := range page.Value {
			seen[s.ID.Version()] = true
		}
	}
	if fmt.Sprint(sizes) != "[25 5]" || len(seen) != 30 {
		t.Fatalf("version pages %v with %d distinct versions; want [25 5] and 30", sizes, len(seen))
	}

	for i := range 30 {
		if _, err := c.DeleteSecret(ctx, fmt.Sprintf("secret-%02d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	sizes = nil
	for p := c.NewListDeletedSecretPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("deleted page: %v", err)
		}
		sizes = append(sizes, len(page.Value))
	}
	if fmt.Sprint(sizes) != "[25 5]" {
		t.Fatalf("deleted pages %v, want [25 5]", sizes)
	}
}

func TestErrorsAnsweredAsAzureDoes(t *testing.T) {
	tags16 := map[string]*string{}
	for i := range 16 {
		tags16[fmt.Sprintf("t%d", i)] = ptr("v")
	}
	type call func(ctx context.Context, env *testEnv) error
	set := func(vault, oid, name string, p azsecrets.SetSecretParameters) call {
		return func(ctx context.Context, env *testEnv) error {
			_, err := env.client(vault, env.cred(oid), nil).SetSecret(ctx, name, p, nil)
			return err
		}
	}
	get := func(vault, oid, name, version string) call {
		return func(ctx context.Context, env *testEnv) error {
			_, err := env.client(vault, env.cred(oid), nil).GetSecret(ctx, name, version, nil)
			return err
		}
	}
	seed := func(env *testEnv, name string, n NewSecret) {
		if _, err := env.kv.Put("alpha", name, n); err != nil {
			env.t.Fatal(err)
		}
	}
	deleteIt := func(env *testEnv, name string) {
		seed(env, name, NewSecret{Value: "x"})
		if _, err := env.client("alpha", env.cred(officerOID), nil).DeleteSecret(context.Background(), name, nil); err != nil {
			env.t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		opts       func(*Options)
		setup      func(env *testEnv)
		call       call
		status     int
		code       string
		inner      string
		msgContain string
	}{
		{name: "a name with an underscore is a bad parameter",
			call: set("alpha", officerOID, "bad_name", azsecrets.SetSecretParameters{Value: ptr("x")}), status: 400, code: "BadParameter", msgContain: "invalid name"},
		{name: "a 128-character name is a bad parameter",
			call: set("alpha", officerOID, strings.Repeat("a", 128), azsecrets.SetSecretParameters{Value: ptr("x")}), status: 400, code: "BadParameter"},
		{name: "sixteen tags are one too many",
			call: set("alpha", officerOID, "tags", azsecrets.SetSecretParameters{Value: ptr("x"), Tags: tags16}), status: 400, code: "BadParameter", msgContain: "15"},
		{name: "a 257-character tag name is too long",
			call: set("alpha", officerOID, "tags", azsecrets.SetSecretParameters{Value: ptr("x"), Tags: map[string]*string{strings.Repeat("k", 257): ptr("v")}}), status: 400, code: "BadParameter"},
		{name: "a 257-character tag value is too long",
			call: set("alpha", officerOID, "tags", azsecrets.SetSecretParameters{Value: ptr("x"), Tags: map[string]*string{"k": ptr(strings.Repeat("v", 257))}}), status: 400, code: "BadParameter"},
		{name: "a value one byte over 25k is refused",
			call: set("alpha", officerOID, "big", azsecrets.SetSecretParameters{Value: ptr(strings.Repeat("x", 25*1024+1))}), status: 400, code: "BadParameter", msgContain: "25600"},
		{name: "a 256-character content type is too long",
			call: set("alpha", officerOID, "ct", azsecrets.SetSecretParameters{Value: ptr("x"), ContentType: ptr(strings.Repeat("c", 256))}), status: 400, code: "BadParameter"},
		{name: "an unknown secret is SecretNotFound",
			call: get("alpha", officerOID, "nope", ""), status: 404, code: "SecretNotFound", msgContain: "nope was not found"},
		{name: "an unknown version is SecretNotFound",
			setup: func(env *testEnv) { seed(env, "known", NewSecret{Value: "x"}) },
			call:  get("alpha", officerOID, "known", strings.Repeat("0", 32)), status: 404, code: "SecretNotFound"},
		{name: "setting a soft-deleted name is ObjectIsDeletedButRecoverable",
			setup: func(env *testEnv) { deleteIt(env, "gone") },
			call:  set("alpha", officerOID, "gone", azsecrets.SetSecretParameters{Value: ptr("x")}), status: 409, code: "Conflict", inner: "ObjectIsDeletedButRecoverable"},
		{name: "setting a name whose deletion is still running is ObjectIsBeingDeleted",
			opts:  func(o *Options) { o.DeleteWindow = 5 * time.Second },
			setup: func(env *testEnv) { deleteIt(env, "going") },
			call:  set("alpha", officerOID, "going", azsecrets.SetSecretParameters{Value: ptr("x")}), status: 409, code: "Conflict", inner: "ObjectIsBeingDeleted"},
		{name: "reading a deleted secret is SecretNotFound",
			setup: func(env *testEnv) { deleteIt(env, "gone") },
			call:  get("alpha", officerOID, "gone", ""), status: 404, code: "SecretNotFound"},
		{name: "reading a disabled secret is Forbidden with SecretDisabled",
			setup: func(env *testEnv) { seed(env, "off", NewSecret{Value: "x", Enabled: ptr(false)}) },
			call:  get("alpha", officerOID, "off", ""), status: 403, code: "Forbidden", inner: "SecretDisabled", msgContain: "Operation get is not allowed on a disabled secret."},
		{name: "recovering a secret that is not deleted is not found",
			setup: func(env *testEnv) { seed(env, "alive", NewSecret{Value: "x"}) },
			call: func(ctx context.Context, env *testEnv) error {
				_, err := env.client("alpha", env.cred(officerOID), nil).RecoverDeletedSecret(ctx, "alive", nil)
				return err
			}, status: 404, code: "SecretNotFound", msgContain: "Deleted Secret not found: alive"},
		{name: "purging a secret that is not deleted is not found",
			setup: func(env *testEnv) { seed(env, "alive", NewSecret{Value: "x"}) },
			call: func(ctx context.Context, env *testEnv) error {
				_, err := env.client("alpha", env.cred(officerOID), nil).PurgeDeletedSecret(ctx, "alive", nil)
				return err
			}, status: 404, code: "SecretNotFound"},
		{name: "a principal without any role assignment is ForbiddenByRbac",
			setup: func(env *testEnv) { seed(env, "s", NewSecret{Value: "x"}) },
			call:  get("alpha", strangerOID, "s", ""), status: 403, code: "Forbidden", inner: "ForbiddenByRbac",
			msgContain: "Caller is not authorized to perform action on resource.\r\nIf role assignments"},
		{name: "a Secrets User cannot set a secret",
			call: set("alpha", userOID, "s", azsecrets.SetSecretParameters{Value: ptr("x")}), status: 403, code: "Forbidden", inner: "ForbiddenByRbac",
			msgContain: "Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'"},
		{name: "a Key Vault Reader cannot read a value",
			setup: func(env *testEnv) { seed(env, "s", NewSecret{Value: "x"}) },
			call:  get("alpha", readerOID, "s", ""), status: 403, code: "Forbidden", inner: "ForbiddenByRbac"},
		{name: "a role on one vault grants nothing on another",
			call: get("beta", userOID, "s", ""), status: 403, code: "Forbidden", inner: "ForbiddenByRbac"},
		{name: "an exhausted write budget is Throttled",
			opts: func(o *Options) { o.Limit = &RateLimit{Window: 10 * time.Second, Writes: 1} },
			setup: func(env *testEnv) {
				if _, err := env.client("alpha", env.cred(officerOID), nil).SetSecret(context.Background(), "a", azsecrets.SetSecretParameters{Value: ptr("x")}, nil); err != nil {
					env.t.Fatal(err)
				}
			},
			call: set("alpha", officerOID, "b", azsecrets.SetSecretParameters{Value: ptr("x")}), status: 429, code: "Throttled", msgContain: "VaultRequestTypeLimitReached"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, tc.opts)
			if tc.setup != nil {
				tc.setup(env)
			}
			err := tc.call(context.Background(), env)
			if err == nil {
				t.Fatal("call succeeded")
			}
			status, code, inner, msg := respErr(t, err)
			if status != tc.status || code != tc.code || inner != tc.inner {
				t.Fatalf("got %d %s/%s, want %d %s/%s (message %q)", status, code, inner, tc.status, tc.code, tc.inner, msg)
			}
			if !strings.Contains(msg, tc.msgContain) {
				t.Fatalf("message %q does not contain %q", msg, tc.msgContain)
			}
		})
	}
}

func TestLimitsAtTheirEdgesAreAccepted(t *testing.T) {
	env := newEnv(t, nil)
	tags := map[string]*string{}
	for i := range 15 {
		tags[fmt.Sprintf("%03d%s", i, strings.Repeat("k", 253))] = ptr(strings.Repeat("v", 256))
	}
	_, err := env.client("alpha", env.cred(officerOID), nil).SetSecret(context.Background(), strings.Repeat("a", 127), azsecrets.SetSecretParameters{
		Value: ptr(strings.Repeat("x", 25*1024)), ContentType: ptr(strings.Repeat("c", 255)), Tags: tags,
	}, nil)
	if err != nil {
		t.Fatalf("a secret exactly at every limit was refused: %v", err)
	}
}

func TestThrottleWindowFollowsTheEmulatorClock(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.Limit = &RateLimit{Window: 10 * time.Second, Writes: 2, Others: 3} })
	ctx := context.Background()
	c := env.client("alpha", env.cred(officerOID), nil)
	for i := range 2 {
		if _, err := c.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: ptr("x")}, nil); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if _, err := c.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: ptr("x")}, nil); err == nil {
		t.Fatal("third write inside the window succeeded")
	}
	for i := range 3 {
		if _, err := c.GetSecret(ctx, "s", "", nil); err != nil {
			t.Fatalf("read %d (reads have their own budget): %v", i, err)
		}
	}
	if _, err := c.GetSecret(ctx, "s", "", nil); err == nil {
		t.Fatal("fourth read inside the window succeeded")
	}
	env.clk.Advance(10 * time.Second)
	if _, err := c.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: ptr("x")}, nil); err != nil {
		t.Fatalf("write after the window passed: %v", err)
	}
}

func TestInjectedFaultsAreRetriedByAzcore(t *testing.T) {
	tests := []struct {
		name      string
		fault     fault.Fault
		wantCalls int // GetSecret requests journalled after the challenge
	}{
		{name: "a throttled read with Retry-After is retried after the wait", fault: fault.Fault{Status: 429, RetryAfter: time.Second, Times: 1}, wantCalls: 2},
		{name: "two service-unavailable answers are retried", fault: fault.Fault{Status: 503, Times: 2}, wantCalls: 3},
		{name: "a dropped connection is retried", fault: fault.Fault{Drop: true, Times: 1}, wantCalls: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, nil)
			ctx := context.Background()
			if _, err := env.kv.Put("alpha", "s", NewSecret{Value: "v"}); err != nil {
				t.Fatal(err)
			}
			c := env.client("alpha", env.cred(officerOID), &policy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Second})
			if _, err := c.GetSecret(ctx, "s", "", nil); err != nil { // spends the challenge
				t.Fatal(err)
			}
			env.kv.Journal().Reset()
			env.kv.Faults().Set(OpGetSecret, tc.fault)
			got, err := c.GetSecret(ctx, "s", "", nil)
			if err != nil {
				t.Fatalf("GetSecret through the fault: %v", err)
			}
			if *got.Value != "v" {
				t.Fatal("wrong value after retries")
			}
			if n := env.kv.Journal().Count(OpGetSecret); n != tc.wantCalls {
				t.Fatalf("journal has %d GetSecret requests, want %d: %+v", n, tc.wantCalls, env.kv.Journal().Entries())
			}
		})
	}
}

func TestInjectedThrottleCarriesKeyVaultsErrorBody(t *testing.T) {
	env := newEnv(t, nil)
	env.kv.Faults().Set(OpListSecrets, fault.Fault{Status: 429, RetryAfter: 3 * time.Second})
	p := env.client("alpha", env.cred(officerOID), nil).NewListSecretPropertiesPager(nil)
	_, err := p.NextPage(context.Background())
	status, code, _, _ := respErr(t, err)
	if status != http.StatusTooManyRequests || code != "Throttled" {
		t.Fatalf("got %d %s, want 429 Throttled", status, code)
	}
}

func TestSecretNamesAreCaseInsensitive(t *testing.T) {
	env := newEnv(t, nil)
	ctx := context.Background()
	c := env.client("alpha", env.cred(officerOID), nil)
	if _, err := c.SetSecret(ctx, "MySecret", azsecrets.SetSecretParameters{Value: ptr("a")}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetSecret(ctx, "mysecret", "", nil)
	if err != nil {
		t.Fatalf("GetSecret with other case: %v", err)
	}
	if got.ID.Name() != "MySecret" {
		t.Fatalf("id name %q, want the name as created", got.ID.Name())
	}
}

func TestVaultsAreIsolated(t *testing.T) {
	env := newEnv(t, nil)
	ctx := context.Background()
	a := env.client("alpha", env.cred(officerOID), nil)
	b := env.client("beta", env.cred(officerOID), nil)
	if _, err := a.SetSecret(ctx, "same", azsecrets.SetSecretParameters{Value: ptr("in-alpha")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetSecret(ctx, "same", "", nil); err == nil {
		t.Fatal("a secret set in alpha is visible in beta")
	}
	if _, err := b.SetSecret(ctx, "same", azsecrets.SetSecretParameters{Value: ptr("in-beta")}, nil); err != nil {
		t.Fatal(err)
	}
	va, _ := env.kv.SecretValue("alpha", "same", "")
	vb, _ := env.kv.SecretValue("beta", "same", "")
	if va != "in-alpha" || vb != "in-beta" {
		t.Fatal("values crossed vaults")
	}
}

func TestExpiredTokenIsRenewedThroughAClaimsChallenge(t *testing.T) {
	env := newEnv(t, nil)
	ctx := context.Background()
	cred := env.cred(officerOID)
	c := env.client("alpha", cred, nil)
	if _, err := c.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: ptr("x")}, nil); err != nil {
		t.Fatal(err)
	}
	env.clk.Advance(2 * time.Hour) // past the token's emulator-time expiry
	if _, err := c.GetSecret(ctx, "s", "", nil); err != nil {
		t.Fatalf("GetSecret after the token expired on the emulator clock: %v", err)
	}
	if cred.calls.Load() != 2 || cred.claims.Load() != 1 {
		t.Fatalf("credential calls=%d with claims=%d, want a second token requested with CAE claims", cred.calls.Load(), cred.claims.Load())
	}
}
