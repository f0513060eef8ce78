// Package wiring is patrol's composition root: from validated settings it builds the
// HTTP transport, the workload credential, the Key Vault store, the Azure DevOps PAT
// client, the service-account identities, the Service Bus adapter and the rotation
// core, and hands them out as Services. Commands (internal/cli) and the function
// handler use it; nothing else constructs adapters.
//
// Build makes no network call: every client connects lazily. The Functions host probes
// the custom handler before the first invocation, and a vault or broker that is slow to
// answer must not make the handler look dead.
//
// Decision: one Clock (Options.Clock, default rotation.SystemClock) reaches every
// component from here, and each kind of failure has one retry layer: Key Vault and Azure
// DevOps calls are retried by the core per protocol step (their clients make one try),
// Service Bus operations by the azservicebus client (rotation's retry.go;
// docs/architecture.md, "Retries").
package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/keyvault"
	"github.com/patrol-dev/patrol/internal/localtrust"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/servicebus"
)

// PublicCloudAuthority is the Entra host when PATROL_AUTHORITY_HOST is not set.
const PublicCloudAuthority = "https://login.microsoftonline.com"

// Options adjust Build, mostly for tests and the local stack. Zero values build what
// production uses.
type Options struct {
	// Logger receives every component's logs; nil discards.
	Logger *slog.Logger
	// NoReplies keeps outcomes off pat-replies: the operator's CLI runs its operations in
	// process and reports them itself, nobody polls pat-replies for them, and the
	// operator's roles grant no Send on it (servicebus.Options.NoReplies).
	NoReplies bool
	// HTTPClient replaces the transport built from PATROL_CA_FILE.
	HTTPClient *http.Client
	// Credential replaces the workload credential (DefaultAzureCredential).
	Credential azcore.TokenCredential
	// Effects replaces the Service Bus side effects of the core (a test without a
	// broker); Bus is then still built when a Service Bus setting is present.
	Effects rotation.Effects
	// Clock is every component's clock (the core, the adapters, and through Services
	// the function app); nil is rotation.SystemClock. The local stack passes its
	// emulated time; tests pass one whose Sleep does not wait.
	Clock rotation.Clock
	// ServiceBusRetryDelay shortens the Service Bus SDK's back-off between its retries
	// (tests); zero keeps the SDK's default.
	ServiceBusRetryDelay time.Duration
	// DisableChallengeResourceVerification: see keyvault.Options.
	DisableChallengeResourceVerification bool
}

// Services are the built components.
type Services struct {
	Config     config.Config
	Logger     *slog.Logger
	Clock      rotation.Clock
	HTTPClient *http.Client
	Credential azcore.TokenCredential
	Store      *keyvault.Store
	// IdentityStore is the identity vault's (PATROL_IDENTITY_KEYVAULT_URL): the service
	// accounts' token caches and passwords. It is Store when the setting is empty.
	IdentityStore *keyvault.Store
	DevOps        *devops.Client
	Accounts      *identity.ServiceAccounts
	PATs          PATs
	Identities    Identities
	Bus           *servicebus.Bus
	Effects       rotation.Effects
	Defaults      rotation.Defaults
	Rotator       *rotation.Rotator
}

// Build wires everything from cfg (already validated by config.Load).
func Build(_ context.Context, cfg config.Config, o Options) (*Services, error) {
	s := &Services{Config: cfg, Logger: o.Logger, Clock: o.Clock, Defaults: PolicyDefaults(cfg)}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Clock == nil {
		s.Clock = rotation.SystemClock
	}

	s.HTTPClient = o.HTTPClient
	if s.HTTPClient == nil {
		if cfg.CAFile != "" {
			hc, err := localtrust.LoadClient(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("wiring: %s: %w", config.SettingCAFile, err)
			}
			s.HTTPClient = hc
		} else {
			s.HTTPClient = &http.Client{Timeout: 60 * time.Second}
		}
	}
	wo := identity.WorkloadOptions{AuthorityHost: cfg.AuthorityHost, HTTPClient: s.HTTPClient}

	s.Credential = o.Credential
	if s.Credential == nil {
		cred, err := identity.NewWorkloadCredential(wo)
		if err != nil {
			return nil, fmt.Errorf("wiring: %w", err)
		}
		s.Credential = cred
	}

	store, err := keyvault.New(cfg.KeyVaultURL, s.Credential, keyvault.Options{
		ClientOptions: wo.ClientOptions(), DisableChallengeResourceVerification: o.DisableChallengeResourceVerification, Clock: s.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("wiring: %s: %w", config.SettingKeyVaultURL, err)
	}
	s.Store = store
	caches, err := s.identityVault(cfg, keyvault.Options{
		ClientOptions: wo.ClientOptions(), DisableChallengeResourceVerification: o.DisableChallengeResourceVerification, Clock: s.Clock,
	})
	if err != nil {
		return nil, err
	}

	dc, err := devops.NewClient(devops.Options{
		BaseURL: cfg.DevOpsURL, HTTPClient: s.HTTPClient, Token: TokenFromContext,
		Logger: s.Logger.With("component", "devops"),
	})
	if err != nil {
		return nil, fmt.Errorf("wiring: %s: %w", config.SettingDevOpsURL, err)
	}
	s.DevOps, s.PATs = dc, NewPATs(dc)

	authority := cfg.AuthorityHost
	if authority == "" {
		authority = PublicCloudAuthority
	}
	sa, err := identity.NewServiceAccounts(identity.Options{
		Authority: strings.TrimSuffix(authority, "/") + "/" + cfg.TenantID, ClientID: cfg.ClientID,
		HTTPClient: s.HTTPClient, Store: caches, AllowROPC: cfg.AllowROPC, Logger: s.Logger.With("component", "identity"),
	})
	if err != nil {
		return nil, fmt.Errorf("wiring: %w", err)
	}
	s.Accounts, s.Identities = sa, NewIdentities(sa)
	s.PATs = s.PATs.WithTokens(s.Identities.Challenged, s.Identities.TokenAdmin)

	// The command key signs the revocation a revokeNow schedules before the grace end.
	bo := servicebus.Options{Logger: s.Logger.With("component", "servicebus"), Clock: s.Clock, RetryDelay: o.ServiceBusRetryDelay,
		CommandKeys: s.IdentityStore.CommandKeys(), NoReplies: o.NoReplies}
	switch {
	case cfg.ServiceBusConnection != "":
		s.Bus, err = servicebus.NewFromConnectionString(cfg.ServiceBusConnection, bo)
	case cfg.ServiceBusNamespace != "":
		s.Bus, err = servicebus.New(cfg.ServiceBusNamespace, s.Credential, bo)
	}
	if err != nil {
		return nil, fmt.Errorf("wiring: %w", err)
	}
	s.Effects = o.Effects
	switch {
	case s.Effects != nil:
	case s.Bus != nil:
		s.Effects = s.Bus
	default:
		// Settings loaded for a command that sends nothing (config.LoadFor): it never
		// reaches the core's last steps, and if it did it is told which setting is missing.
		s.Effects = noBus{}
	}

	s.Rotator = rotation.NewRotator(s.Store, s.PATs, s.Identities, s.Effects, rotation.Options{
		Defaults: s.Defaults, Logger: s.Logger.With("component", "rotation"), Clock: s.Clock,
	})
	return s, nil
}

// Close releases the Service Bus connection (the HTTP clients hold nothing that needs
// closing).
func (s *Services) Close(ctx context.Context) error {
	var errs []error
	if s.Bus != nil {
		if err := s.Bus.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrNoServiceBus is what the core's Service Bus steps return when the settings were
// loaded without a Service Bus connection.
var ErrNoServiceBus = errors.New("no Service Bus connection: set " + config.SettingServiceBusConnection + " or " + config.SettingServiceBusNamespace)

// noBus stands in for the Service Bus effects of a command loaded without them.
type noBus struct{}

func (noBus) ScheduleRevocation(context.Context, rotation.Revocation, time.Time) error {
	return ErrNoServiceBus
}
func (noBus) ScheduleWakeup(context.Context, rotation.Wakeup, time.Time) error {
	return ErrNoServiceBus
}
func (noBus) Publish(context.Context, rotation.Outcome) error { return ErrNoServiceBus }
