package stack_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/localtrust"
)

// Start every emulator in this process, then reach Key Vault the way any tool would:
// knowing only the dotenv file the stack writes (the same file `patrol-dev emulate`
// prints), with the real azidentity and azsecrets clients. Ports and secrets are fresh
// on every run; the seeded tenant and vault names are fixed.
func Example() {
	ctx := context.Background()
	s, err := stack.Start(ctx, stack.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	dir, err := os.MkdirTemp("", "patrol-stack-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	_, envFile, err := s.WriteFiles(dir)
	if err != nil {
		log.Fatal(err)
	}
	env, err := config.ReadEnvFile(envFile)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tenant:", env["AZURE_TENANT_ID"])

	// localtrust trusts the emulators' CA and dials <vault>.vault.localhost to loopback.
	hc, err := localtrust.LoadClient(env["PATROL_CA_FILE"])
	if err != nil {
		log.Fatal(err)
	}
	co := azcore.ClientOptions{Transport: hc, Cloud: cloud.Configuration{
		ActiveDirectoryAuthorityHost: env["AZURE_AUTHORITY_HOST"],
		Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{},
	}}
	// Instance discovery would ask login.microsoftonline.com about the emulator.
	cred, err := azidentity.NewClientSecretCredential(env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"],
		&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	if err != nil {
		log.Fatal(err)
	}
	kv, err := azsecrets.NewClient(env["PATROL_KEYVAULT_URL"], cred, &azsecrets.ClientOptions{ClientOptions: co})
	if err != nil {
		log.Fatal(err)
	}
	value := "hello"
	if _, err := kv.SetSecret(ctx, "greeting", azsecrets.SetSecretParameters{Value: &value}, nil); err != nil {
		log.Fatal(err)
	}
	for pager := kv.NewListSecretPropertiesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, p := range page.Value {
			fmt.Println("secret:", p.ID.Name())
		}
	}
	// Output:
	// tenant: 11111111-1111-4111-8111-111111111111
	// secret: greeting
}
