package stack

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/config"
)

func TestStackServesEveryEmulatorToTheRealClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Key Vault through azsecrets with a client-secret credential against the Entra emulator.
	co := azcore.ClientOptions{Transport: s.HTTP, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: s.Entra.AuthorityHost(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}}
	cred, err := azidentity.NewClientSecretCredential(TenantID, WorkloadClientID, s.WorkloadSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := azsecrets.NewClient(s.VaultURL, cred, &azsecrets.ClientOptions{ClientOptions: co})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.SetSecret(ctx, "hello", azsecrets.SetSecretParameters{Value: strPtr("world")}, nil); err != nil {
		t.Fatalf("set secret through the stack: %v", err)
	}

	// Service Bus through azservicebus with the connection string from Env.
	sb, err := azservicebus.NewClientFromConnectionString(s.SB.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(ctx)
	snd, err := sb.NewSender("pat-revocations", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("{}")}, nil); err != nil {
		t.Fatalf("send through the stack: %v", err)
	}

	// The dotenv file is complete, loads as patrol's settings, and names the CA file.
	dir := t.TempDir()
	caFile, envFile, err := s.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := config.ReadEnvFile(envFile)
	if err != nil {
		t.Fatalf("read the written dotenv: %v", err)
	}
	for _, k := range []string{"AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "PATROL_KEYVAULT_URL", "ServiceBusConnection", "PATROL_CA_FILE"} {
		if env[k] == "" {
			t.Errorf("dotenv lacks %s", k)
		}
	}
	if env["PATROL_CA_FILE"] != caFile {
		t.Errorf("PATROL_CA_FILE = %q, want %q", env["PATROL_CA_FILE"], caFile)
	}
	if _, err := config.Load(func(k string) string { return env[k] }); err != nil {
		t.Fatalf("the stack's settings do not load as patrol's configuration: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !strings.Contains(string(b), "BEGIN CERTIFICATE") || strings.Contains(string(b), "PRIVATE KEY") {
		t.Fatal("ca.pem must hold the CA certificate and no key")
	}
}

func strPtr(s string) *string { return &s }

// adminRequest is a request to the admin API as `curl -H "Authorization: Bearer …"`
// sends it.
func adminRequest(t *testing.T, s *Stack, method, url, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	return req
}

func TestAdminAPIAdvancesTheClockAndInstallsFaults(t *testing.T) {
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base, err := s.ServeAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	before := s.Clock.Now()
	resp, err := http.DefaultClient.Do(adminRequest(t, s, http.MethodPost, base+"/clock/advance?by=720h", ""))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("advance: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := s.Clock.Now().Sub(before); got < 720*time.Hour {
		t.Fatalf("clock moved %v, want at least 720h", got)
	}
	resp, err = http.DefaultClient.Do(adminRequest(t, s, http.MethodPut, base+"/faults/devops/CreatePat", `{"status":503,"times":1}`))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("install fault: %v %v", resp, err)
	}
	resp.Body.Close()
	if f, ok := s.DevOps.Faults().Take("CreatePat"); !ok || f.Status != 503 {
		t.Fatalf("fault not installed on the devops emulator: %+v %v", f, ok)
	}
	resp, err = http.DefaultClient.Do(adminRequest(t, s, http.MethodGet, base+"/journal/nowhere", ""))
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("unknown emulator journal: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestAdminAPIAnswersOnlyItsOwnTokenBearingSameOriginCallers(t *testing.T) {
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base, err := s.ServeAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := base[strings.LastIndexByte(base, ':')+1:]
	cases := map[string]struct {
		edit func(*http.Request)
		want int // status of POST /clock/advance
	}{
		"the token from patrol.env is admitted":               {edit: func(*http.Request) {}, want: 200},
		"localhost with the listener's port is the same host": {edit: func(r *http.Request) { r.Host = "localhost:" + port }, want: 200},
		"the browser's own same-origin fetch is admitted": {edit: func(r *http.Request) {
			r.Header.Set("Origin", "http://127.0.0.1:"+port)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
		}, want: 200},
		"no token is refused":                     {edit: func(r *http.Request) { r.Header.Del("Authorization") }, want: 401},
		"a wrong token is refused":                {edit: func(r *http.Request) { r.Header.Set("Authorization", "Bearer guess") }, want: 401},
		"the token as Basic is refused":           {edit: func(r *http.Request) { r.Header.Set("Authorization", "Basic "+s.AdminToken) }, want: 401},
		"a rebound DNS name is refused":           {edit: func(r *http.Request) { r.Host = "attacker.example:" + port }, want: http.StatusMisdirectedRequest},
		"another port on loopback is refused":     {edit: func(r *http.Request) { r.Host = "127.0.0.1:1" }, want: http.StatusMisdirectedRequest},
		"a foreign Origin is refused":             {edit: func(r *http.Request) { r.Header.Set("Origin", "https://attacker.example") }, want: 403},
		"a cross-site fetch is refused":           {edit: func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, want: 403},
		"a same-site other-port fetch is refused": {edit: func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") }, want: 403},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := s.Clock.Now()
			req := adminRequest(t, s, http.MethodPost, base+"/clock/advance?by=1h", "")
			tc.edit(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if moved := s.Clock.Now().Sub(before) >= time.Hour; moved != (tc.want == 200) {
				t.Errorf("clock moved: %v, want %v", moved, tc.want == 200)
			}
		})
	}
	if got := s.Env("ca.pem")[AdminTokenSetting]; got == "" || got != s.AdminToken {
		t.Errorf("patrol.env's %s = %q, want the admin token", AdminTokenSetting, got)
	}
}
