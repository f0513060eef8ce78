package identity

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// WorkloadOptions configure the credential patrol itself runs as.
type WorkloadOptions struct {
	// AuthorityHost overrides the Entra host (local stack); empty = public cloud.
	AuthorityHost string
	HTTPClient    *http.Client
}

// ClientOptions returns the azcore options every Azure SDK client of patrol shares, so
// one transport (trusting the local CA where configured) carries all calls.
func (o WorkloadOptions) ClientOptions() azcore.ClientOptions {
	co := azcore.ClientOptions{}
	if o.HTTPClient != nil {
		co.Transport = o.HTTPClient
	}
	if o.AuthorityHost != "" {
		co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimSuffix(o.AuthorityHost, "/") + "/", Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
	}
	return co
}

// NewWorkloadCredential returns the credential for Key Vault and Service Bus: the
// Functions host's managed identity in Azure (and under devhost, which serves the same
// endpoint), environment credentials or developer sign-ins elsewhere — the
// DefaultAzureCredential chain (AZURE_CLIENT_ID selects a user-assigned identity), with instance discovery off for a custom authority so
// nothing calls login.microsoftonline.com from the local stack.
func NewWorkloadCredential(o WorkloadOptions) (azcore.TokenCredential, error) {
	opts := &azidentity.DefaultAzureCredentialOptions{
		ClientOptions:            o.ClientOptions(),
		DisableInstanceDiscovery: o.AuthorityHost != "",
	}
	cred, err := azidentity.NewDefaultAzureCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("identity: workload credential: %w", err)
	}
	return cred, nil
}
