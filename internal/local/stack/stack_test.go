package stack

import (
	"context"
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
	resp, err := http.Post(base+"/clock/advance?by=720h", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("advance: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := s.Clock.Now().Sub(before); got < 720*time.Hour {
		t.Fatalf("clock moved %v, want at least 720h", got)
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/faults/devops/CreatePat", strings.NewReader(`{"status":503,"times":1}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("install fault: %v %v", resp, err)
	}
	resp.Body.Close()
	if f, ok := s.DevOps.Faults().Take("CreatePat"); !ok || f.Status != 503 {
		t.Fatalf("fault not installed on the devops emulator: %+v %v", f, ok)
	}
	resp, err = http.Get(base + "/journal/nowhere")
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("unknown emulator journal: %v %v", resp, err)
	}
	resp.Body.Close()
}
