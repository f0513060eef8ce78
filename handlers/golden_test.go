package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testInvocationID = "3d1e9a7c-5b2f-4c8e-a6d4-0f1e2d3c4b5a"

// fakeApp records every call with its decoded input and answers as configured. It is
// the in-memory stand-in for the business logic: what is under test here is the
// protocol around it.
type fakeApp struct {
	mu        sync.Mutex
	calls     []recordedCall
	err       error
	rotateNow RotateNowResult
	status    contract.StatusResult
	account   contract.PersonAccount
}

type recordedCall struct {
	Method  string       `json:"method"`
	Input   any          `json:"input"`
	Message *MessageInfo `json:"message,omitempty"`
}

func (a *fakeApp) record(method string, in any, mi *MessageInfo) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, recordedCall{Method: method, Input: in, Message: mi})
	return a.err
}

func (a *fakeApp) KeyVaultEvent(_ context.Context, ev KeyVaultEvent) error {
	return a.record("KeyVaultEvent", ev, nil)
}

// message is the Service Bus delivery the handler put on ctx, checked to be there.
func message(ctx context.Context) *MessageInfo {
	mi, ok := MessageFrom(ctx)
	if !ok {
		panic("a Service Bus function's App call has no MessageInfo on its context")
	}
	return &mi
}

func (a *fakeApp) Offboard(ctx context.Context, m contract.OffboardingMessage) error {
	return a.record("Offboard", m, message(ctx))
}
func (a *fakeApp) Rotate(ctx context.Context, c contract.RotationCommand) error {
	return a.record("Rotate", c, message(ctx))
}
func (a *fakeApp) Revoke(ctx context.Context, c contract.RevocationCommand) error {
	return a.record("Revoke", c, message(ctx))
}
func (a *fakeApp) RotateNow(_ context.Context, r RotateNowRequest) (RotateNowResult, error) {
	if err := a.record("RotateNow", r, nil); err != nil {
		return RotateNowResult{}, err
	}
	res := a.rotateNow
	if res.OperationID == "" {
		res.OperationID = r.OperationID
	}
	return res, nil
}
func (a *fakeApp) Status(_ context.Context, r StatusRequest) (contract.StatusResult, error) {
	if err := a.record("Status", r, nil); err != nil {
		return contract.StatusResult{}, err
	}
	return a.status, nil
}
func (a *fakeApp) Sweep(_ context.Context, t SweepTick) error { return a.record("Sweep", t, nil) }
func (a *fakeApp) Account(_ context.Context, p contract.Person) (contract.PersonAccount, error) {
	if err := a.record("Account", p, nil); err != nil {
		return contract.PersonAccount{}, err
	}
	return a.account, nil
}

type fakeReporter struct {
	mu    sync.Mutex
	calls []contract.Failure
	err   error
}

func (r *fakeReporter) ReportFailure(_ context.Context, f contract.Failure) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, f)
	return r.err
}

// cooldownErr is how the app refuses inside the cooldown.
type cooldownErr struct{}

func (cooldownErr) Error() string {
	return "secret \"pat-svc1\" was rotated by hand less than the cooldown ago; retry after 7m0s"
}
func (cooldownErr) Unwrap() error             { return ErrTooManyRequests }
func (cooldownErr) RetryAfter() time.Duration { return 7 * time.Minute }

// permanentErr is how a core error marks itself permanent without importing handlers.
type permanentErr struct{ msg string }

func (e permanentErr) Error() string   { return e.msg }
func (e permanentErr) Permanent() bool { return true }

var (
	at       = time.Date(2026, 11, 27, 20, 14, 5, 0, time.UTC)
	statusV1 = contract.SecretStatus{Secret: "pat-svc1", Managed: true, Org: "contoso", ServiceAccount: "svc-pipelines@contoso.example",
		Owner: "svc-pipelines@contoso.example", PATID: "3e1f7c2a-5b4d-4e6f-8a9b-0c1d2e3f4a5b",
		Version: "ee059b2bb5bc48398a53b168c6cdcb10", Expires: time.Date(2027, 2, 25, 0, 0, 0, 0, time.UTC),
		RenewAt: time.Date(2027, 2, 11, 0, 0, 0, 0, time.UTC), LastOperation: "mfrggzdfmztwq2lk", LastReason: "near-expiry"}
	statusFeed = contract.SecretStatus{Secret: "pat-feed", Managed: true, Org: "contoso", ServiceAccount: "ada.lovelace@contoso.example",
		Owner: "ada.lovelace@contoso.example", NeedsAttention: "the configured service account is a person who is leaving"}
)

var accountAda = contract.PersonAccount{Person: contract.Person{UPN: "ada.lovelace@contoso.example"}, Time: at, Organizations: []contract.OrgAccount{
	{Org: "contoso", ListedBy: "svc-pipelines@contoso.example", PATs: []contract.AccountPAT{
		{PATID: "3e1f7c2a-5b4d-4e6f-8a9b-0c1d2e3f4a5b", DisplayName: "feed", Org: "contoso", Scopes: []string{"vso.packaging"},
			Expires: time.Date(2027, 2, 25, 0, 0, 0, 0, time.UTC), Class: contract.PATManaged, Secret: "pat-feed", ServiceAccount: "svc-pipelines@contoso.example",
			Action: "re-issue under svc-pipelines@contoso.example on offboarding, then revoke this PAT 24h0m0s later"},
		{PATID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", DisplayName: "release pipeline", Org: "contoso", Scopes: []string{"vso.release"},
			Expires: time.Date(2027, 1, 6, 0, 0, 0, 0, time.UTC), Class: contract.PATUnmanaged,
			Action: "report only: no secret patrol manages holds it; whatever uses it stops working when the account is disabled"}}},
	{Org: "fabrikam", ListedBy: "svc-pipelines@contoso.example", PATs: []contract.AccountPAT{},
		Problem: "listing refused: svc-pipelines@contoso.example may not list other people's PATs in fabrikam (it needs consent for vso.tokenadministration and vso.graph, and the Project Collection Administrator role)"},
}}

type goldenCase struct {
	file   string // testdata/<Function>/<case>.request.json
	app    fakeApp
	report error
}

func goldenCases() map[string]*goldenCase {
	return map[string]*goldenCase{
		"a near-expiry event in the Event Grid schema reaches the app decoded": {
			file: "KeyVaultEvents/near-expiry-eventgrid"},
		"a CloudEvents event whose data is a JSON string reaches the app decoded": {
			file: "KeyVaultEvents/expired-cloudevents-string-data"},
		"the documentation's sample with a stray-space key, a spaced version and string NBF decodes": {
			file: "KeyVaultEvents/docs-sample-quirks"},
		"an event type patrol does not handle is acknowledged with a logged reason and no call": {
			file: "KeyVaultEvents/unhandled-type"},
		"a transient app error fails the event so Event Grid redelivers it": {
			file: "KeyVaultEvents/transient-failure", app: fakeApp{err: errors.New("keyvault: get secret \"pat-svc1\": 503 Service Unavailable")}},

		"an HR message in the host's double encoding reaches the app with its metadata": {
			file: "Offboarding/double-encoded"},
		"an HR message quoted once more than usual still decodes": {
			file: "Offboarding/quoted-once-more"},
		"an HR message sent single-encoded (as hand-made fixtures do) decodes": {
			file: "Offboarding/single-encoded"},
		"a malformed HR message is reported naming the field and fails, so Service Bus dead-letters it": {
			file: "Offboarding/malformed"},
		"a malformed HR message whose report fails still fails": {
			file: "Offboarding/malformed-report-fails", report: errors.New("servicebus: send: connection reset")},
		"a malformed HR message delivered again is not reported again": {
			file: "Offboarding/malformed-redelivered"},
		"an HR message that is not JSON is reported and fails": {
			file: "Offboarding/not-json"},

		"a rotation command on the session queue reaches the app": {
			file: "Rotate/session"},
		"a rotation command whose session is not its secret publishes a failed outcome and fails": {
			file: "Rotate/session-mismatch"},
		"a permanent app error on the session queue publishes a failed outcome and fails": {
			file: "Rotate/permanent-failure", app: fakeApp{err: permanentErr{"rotation: secret \"pat-feed\": gather: tag patrol-scopes=\"app_token\": full-scope PAT refused"}}},
		"an adopt command on the queue is refused naming the trigger, never reaching the app": {
			file: "Rotate/adopt-refused"},
		"a policy on a queued command is refused naming the field": {
			file: "Rotate/policy-refused"},
		"an unsigned manual command the app refuses is reported as unauthenticated": {
			file: "Rotate/unsigned-manual", app: fakeApp{err: &contract.AuthError{Problem: "missing; a manual or revokeNow command must be signed by patrol (RotateNow or the CLI)"}}},
		"a transient app error abandons the rotation command for a retry": {
			file: "Rotate/transient-failure", app: fakeApp{err: fmt.Errorf("devops: create pat: %w", context.DeadlineExceeded)}},

		"a scheduled revocation reaches the app": {
			file: "Revoke/scheduled"},
		"a signed emergency revocation reaches the app with its requestedAt and signature": {
			file: "Revoke/signed-emergency"},
		"a permanent app error reports the revocation and fails it, so Service Bus dead-letters it": {
			file: "Revoke/permanent-failure", app: fakeApp{err: fmt.Errorf("devops: revoke: organization contoso: %w", ErrPermanent)}},

		"an emergency rotation answers 202 with an operation id and a status URL": {
			file: "RotateNow/accepted"},
		"an emergency rotation that finishes within ?wait answers 200 with the outcome": {
			file: "RotateNow/wait-completed", app: fakeApp{rotateNow: RotateNowResult{Outcome: &contract.Outcome{
				Status: contract.StatusRotated, Secret: "pat-svc1", OperationID: testInvocationID, Reason: "emergency",
				Version: "0f9e8d7c6b5a49382716f5e4d3c2b1a0", Time: at}}}},
		"an emergency rotation that fails within ?wait answers status failed with the outcome": {
			file: "RotateNow/wait-failed", app: fakeApp{rotateNow: RotateNowResult{Outcome: &contract.Outcome{
				Status: contract.StatusFailed, Secret: "pat-svc1", OperationID: testInvocationID, Trigger: contract.TriggerManual,
				Reason: "create", Step: "create", Message: "devops: create pat: 503 Service Unavailable", Time: at}}}},
		"an emergency rotation with an unknown body field answers 400 naming it": {
			file: "RotateNow/unknown-body-field"},
		"an emergency rotation of an unknown secret answers 404": {
			file: "RotateNow/not-found", app: fakeApp{err: fmt.Errorf("secret %q: %w", "pat-gone", ErrNotFound)}},
		"an emergency rotation while another holds the secret answers 409": {
			file: "RotateNow/conflict", app: fakeApp{err: fmt.Errorf("operation op-1 is rotating pat-svc1: %w", ErrConflict)}},
		"an emergency rotation records the function key's name, not a forged principal header nor the body's requestedBy": {
			file: "RotateNow/function-key-named"},
		"an emergency rotation inside the cooldown answers 429 with Retry-After": {
			file: "RotateNow/cooldown", app: fakeApp{err: cooldownErr{}}},
		"an old host's Query sent as a JSON string still reads revokeNow": {
			file: "RotateNow/query-as-string-old-host"},

		"status of one secret answers 200 with it": {
			file: "SecretStatus/one-secret", app: fakeApp{status: contract.StatusResult{Secrets: []contract.SecretStatus{statusV1}}}},
		"status without a secret lists every managed secret": {
			file: "SecretStatus/all-secrets", app: fakeApp{status: contract.StatusResult{Secrets: []contract.SecretStatus{statusFeed, statusV1}}}},
		"status of an impossible secret name answers 400 without calling the app": {
			file: "SecretStatus/invalid-name"},
		"status of an operation answers with its outcome": {
			file: "SecretStatus/operation", app: fakeApp{status: contract.StatusResult{Secrets: []contract.SecretStatus{statusV1}, Operation: &contract.Outcome{
				Status: contract.StatusSkipped, Secret: "pat-svc1", OperationID: "0b8f5e52-3c1d-4a7e-9f60-1d2c3b4a5e6f", Reason: "done-before", Time: at}}}},

		"the account of a person named by UPN answers 200 with every organization, a refused listing included": {
			file: "OffboardingReport/by-upn", app: fakeApp{account: accountAda}},
		"the account of a person named by object id reaches the app canonical": {
			file: "OffboardingReport/by-object-id", app: fakeApp{account: contract.PersonAccount{Person: contract.Person{ObjectID: "6f1c2a4e-8d3b-4c55-9a10-2b7e4d9c0f13"}, Time: at, Organizations: []contract.OrgAccount{}}}},
		"the account of something that names no person answers 400 without calling the app": {
			file: "OffboardingReport/invalid-person"},

		"a timer firing with schedule status reaches the app with the host's clock": {
			file: "Sweep/scheduled"},
		"a timer firing without the schedule monitor (null ScheduleStatus) decodes": {
			file: "Sweep/no-monitor"},
		"a past-due firing with zone-less dates whose sweep fails fails the invocation": {
			file: "Sweep/past-due-failure", app: fakeApp{err: errors.New("keyvault: list secrets: 429 Too Many Requests")}},
	}
}

// golden is what a golden file holds: the handler's answer to the host and every side
// effect it caused.
type golden struct {
	Status   int                `json:"status"`
	Response json.RawMessage    `json:"response"`
	Calls    []recordedCall     `json:"calls"`
	Reported []contract.Failure `json:"failuresReported"`
}

func TestGolden(t *testing.T) {
	cases := goldenCases()
	seen := map[string]bool{}
	for name, tc := range cases {
		seen[tc.file] = true
		t.Run(name, func(t *testing.T) {
			req, err := os.ReadFile(filepath.Join("testdata", tc.file+".request.json"))
			if err != nil {
				t.Fatal(err)
			}
			app := &tc.app
			rep := &fakeReporter{err: tc.report}
			h := New(Options{Deps: func(context.Context) (Deps, error) {
				return Deps{App: app, Failures: rep}, nil
			}})
			fn, _, _ := strings.Cut(tc.file, "/")
			r := httptest.NewRequest(http.MethodPost, "/"+fn, bytes.NewReader(req))
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			r.Header.Set(InvocationIDHeader, testInvocationID)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			got := golden{Status: w.Code, Response: w.Body.Bytes(), Calls: app.calls, Reported: rep.calls}
			gotBytes := normalize(t, got)
			path := filepath.Join("testdata", tc.file+".golden.json")
			if *update {
				if err := os.WriteFile(path, gotBytes, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(gotBytes, want) {
				t.Errorf("%s differs from the handler's answer (rerun with -update if the change is intended)\ngot:\n%s", path, gotBytes)
			}
		})
	}
	// Every request file has a case, so no fixture silently goes untested.
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.request.json"))
	for _, f := range files {
		rel := strings.TrimSuffix(filepath.ToSlash(strings.TrimPrefix(f, "testdata"+string(filepath.Separator))), ".request.json")
		if !seen[rel] {
			t.Errorf("testdata/%s.request.json has no golden case", rel)
		}
	}
	// And every function has at least one.
	byFn := map[string]bool{}
	for f := range seen {
		fn, _, _ := strings.Cut(f, "/")
		byFn[fn] = true
	}
	for _, fn := range Functions() {
		if !byFn[fn.Name] {
			t.Errorf("function %s has no golden case", fn.Name)
		}
	}
}

// normalize renders a golden record as indented JSON with the response re-indented, so
// the comparison is byte-for-byte yet insensitive to the handler's compact spacing. The
// HTTP output's body (a JSON string) is expanded for readability.
func normalize(t *testing.T, g golden) []byte {
	t.Helper()
	var resp map[string]any
	if err := json.Unmarshal(g.Response, &resp); err != nil {
		t.Fatalf("handler answered non-JSON: %v: %q", err, g.Response)
	}
	if outs, ok := resp["Outputs"].(map[string]any); ok {
		for _, v := range outs {
			if o, ok := v.(map[string]any); ok {
				if body, ok := o["body"].(string); ok && json.Valid([]byte(body)) {
					o["body(parsed)"] = json.RawMessage(body)
				}
			}
		}
	}
	rb, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	g.Response = rb
	out, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}
