// Package stack starts every emulator patrol needs — Entra ID, Key Vault, Azure DevOps
// and Service Bus — in one process, seeded with a demo tenant, organization and vault, and
// describes how to reach them: as Go values for tests and `patrol-dev local`, and as a dotenv
// file using the standard variable names so tools in any language can be pointed at them.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	entraemu "github.com/patrol-dev/patrol/internal/local/emulator/entra"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	sbemu "github.com/patrol-dev/patrol/internal/local/emulator/servicebus"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
	"github.com/patrol-dev/patrol/internal/localtrust"
)

// The seeded demo identities. They are fixed so docs, scripts and a person's muscle
// memory carry over between runs; only the secrets are fresh each time.
const (
	TenantID         = "11111111-1111-4111-8111-111111111111"
	Domain           = "contoso.com"
	WorkloadClientID = "22222222-2222-4222-8222-222222222222" // confidential app: operator CLI, tests
	PublicClientID   = "33333333-3333-4333-8333-333333333333" // PATROL_CLIENT_ID: signs service accounts in
	ManagedIdentity  = "44444444-4444-4444-8444-444444444444" // the function app's identity under devhost
	ServiceAccount   = "svc-build@contoso.com"
	Person           = "alice@contoso.com"
	Organization     = "contoso"
	Vault            = "patrol"
	// IdentityVault holds the service accounts' token caches and passwords, apart from
	// the PATs (PATROL_IDENTITY_KEYVAULT_URL), with the same roles as in Azure: the
	// app's identity and the operator only.
	IdentityVault = "patrol-identity"
)

// OperatorKeyName is the Service Bus key of the local operator: `patrol` run with
// operator.env (Stack.OperatorEnv) may do exactly what OperatorRights say, so a command
// that needs a right the operator is not given in Azure fails here too.
const OperatorKeyName = "patrol-operator"

// OperatorRights mirror the Service Bus roles infra/modules/servicebus.bicep assigns to
// operatorPrincipalId (Data Sender: Send, Data Receiver: Listen); internal/settings
// holds the two in agreement. adopt and rotate run the rotation in the operator's
// process, so their last steps publish to pat-events and schedule on pat-revocations
// (and a wake-up on pat-rotations); offboard sends to hr-offboarding; the operator
// follows outcomes on pat-events.
var OperatorRights = sbemu.Rights{
	contract.QueueOffboarding: sbemu.Send,
	contract.QueueRotations:   sbemu.Send,
	contract.QueueRevocations: sbemu.Send,
	contract.TopicEvents:      sbemu.Send | sbemu.Listen,
}

// LocalAddrs are the fixed loopback ports `patrol-dev local` and `patrol-dev emulate` use by
// default, so local.settings.json.example and a person's bookmarks stay valid between
// runs (5672 is the port Microsoft's Service Bus emulator uses). Tests use free ports.
var LocalAddrs = map[string]string{
	"entra":      "127.0.0.1:8441",
	"devops":     "127.0.0.1:8442",
	"keyvault":   "127.0.0.1:8443",
	"msi":        "127.0.0.1:8444",
	"servicebus": "127.0.0.1:5672",
	"admin":      "127.0.0.1:8440",
}

// Options configure Start. The zero value starts everything on free loopback ports with
// a wall clock.
type Options struct {
	Clock  *clock.Clock // default clock.New(): wall time that Advance can push ahead
	Logger *slog.Logger
	// ServiceBusConfig adds entities (Microsoft's emulator Config.json format) beside
	// patrol's own.
	ServiceBusConfig *store.Config
	// Addrs pin listen addresses per emulator ("entra", "keyvault", "devops",
	// "servicebus", "msi"); default 127.0.0.1:0.
	Addrs map[string]string
}

// Stack is a running set of emulators.
type Stack struct {
	CA     *tlsca.CA
	Clock  *clock.Clock
	HTTP   *http.Client // trusts the CA and dials *.localhost to loopback
	Entra  *entraemu.Emulator
	KV     *kvemu.Emulator
	DevOps *devopsemu.Emulator
	SB     *sbemu.Emulator
	MSI    *entraemu.ManagedIdentityServer

	DevOpsURL        string
	VaultURL         string
	IdentityVaultURL string
	WorkloadSecret   string
	// ServiceAccountPassword is the seeded service account's password: tests and the
	// demo complete device-code sign-ins with it.
	ServiceAccountPassword string

	// AdminToken is the per-run token the inspection/control API requires (ServeAdmin),
	// written to patrol.env as PATROL_LOCAL_ADMIN_TOKEN.
	AdminToken string

	// SBFaults injects faults into the Service Bus broker (the other emulators own theirs).
	SBFaults *fault.Injector

	admin *http.Server
	log   *slog.Logger
}

// Start starts every emulator. On error, whatever started is stopped again.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	s := &Stack{Clock: o.Clock, log: o.Logger}
	if s.Clock == nil {
		s.Clock = clock.New()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	addr := func(name string) string {
		if a := o.Addrs[name]; a != "" {
			return a
		}
		return "127.0.0.1:0"
	}
	if s.CA, err = tlsca.New(); err != nil {
		return nil, err
	}
	if s.HTTP, err = localtrust.NewClient(s.CA.CertPEM()); err != nil {
		return nil, err
	}
	s.WorkloadSecret, s.ServiceAccountPassword = randomSecret(), randomSecret()
	s.AdminToken = randomSecret()

	s.Entra, err = entraemu.New(entraemu.Options{
		Directory: entraemu.Directory{
			TenantID: TenantID, Domain: Domain,
			AppRegistrations: []entraemu.AppRegistration{
				{ClientID: WorkloadClientID, Secret: s.WorkloadSecret, DisplayName: "patrol workload (local)"},
				// Consented as docs/deploy.md tells operators: the PAT scopes, token
				// administration for revoking PATs people made before patrol adopted them,
				// and Graph read for the offboarding report (docs/offboarding.md).
				{ClientID: PublicClientID, PublicClient: true, DisplayName: "patrol sign-in (local)", RedirectURIs: []string{"http://localhost"}, Consent: entraemu.Consent{
					devopsemu.ResourceID: {devopsemu.ScopePATs, devopsemu.ScopePATsManage, devopsemu.ScopeTokenAdminister, devopsemu.ScopeGraph}}},
				{ClientID: ManagedIdentity, ManagedIdentity: true, DisplayName: "patrol function app identity (local)"},
			},
			Users: []entraemu.User{
				{UPN: ServiceAccount, Password: s.ServiceAccountPassword, DisplayName: "Build service account"},
				{UPN: Person, Password: randomSecret(), DisplayName: "Alice Example"},
			},
			SystemAssignedIdentity: ManagedIdentity,
		},
		CA: s.CA, Clock: s.Clock, Logger: s.log.With("emulator", "entra"),
	})
	if err != nil {
		return nil, fmt.Errorf("stack: entra: %w", err)
	}
	if err = s.Entra.Start(addr("entra")); err != nil {
		return nil, fmt.Errorf("stack: entra: %w", err)
	}
	if s.MSI, err = s.Entra.StartManagedIdentity(addr("msi"), randomSecret()); err != nil {
		return nil, fmt.Errorf("stack: managed identity endpoint: %w", err)
	}

	tlsCfg, err := s.CA.ServerTLSConfig()
	if err != nil {
		return nil, err
	}
	// One record of revoked sessions: a CAE critical event reaches every resource.
	sessions := authn.NewSessions()
	s.KV, err = kvemu.New(kvemu.Options{Sessions: sessions,
		Verifier: s.Entra.Verifier(), Authority: strings.TrimSuffix(s.Entra.AuthorityHost(), "/"), TenantID: TenantID,
		Vaults: []string{Vault, IdentityVault}, Clock: s.Clock, Logger: s.log.With("emulator", "keyvault"), TLS: tlsCfg,
	})
	if err != nil {
		return nil, fmt.Errorf("stack: key vault: %w", err)
	}
	if err = s.KV.Start(addr("keyvault")); err != nil {
		return nil, fmt.Errorf("stack: key vault: %w", err)
	}
	s.VaultURL, s.IdentityVaultURL = s.KV.VaultURL(Vault), s.KV.VaultURL(IdentityVault)
	for _, vault := range []string{Vault, IdentityVault} {
		for _, who := range []string{s.objectID(WorkloadClientID), s.objectID(ManagedIdentity)} {
			if err = s.KV.Grant(vault, who, kvemu.RoleSecretsOfficer); err != nil {
				return nil, fmt.Errorf("stack: key vault grant: %w", err)
			}
		}
	}

	devTLS, err := s.CA.ServerTLSConfig()
	if err != nil {
		return nil, err
	}
	s.DevOps, err = devopsemu.New(devopsemu.Options{Verifier: s.Entra.Verifier(), Clock: s.Clock, Logger: s.log.With("emulator", "devops"), TLS: devTLS,
		Authority: strings.TrimSuffix(s.Entra.AuthorityHost(), "/"), Sessions: sessions})
	if err != nil {
		return nil, fmt.Errorf("stack: azure devops: %w", err)
	}
	if _, err = s.DevOps.AddOrganization(devopsemu.Organization{Name: Organization, TenantID: TenantID}); err != nil {
		return nil, err
	}
	for _, u := range []devopsemu.User{
		{ObjectID: s.userObjectID(ServiceAccount), UPN: ServiceAccount, DisplayName: "Build service account", Admin: true},
		{ObjectID: s.userObjectID(Person), UPN: Person, DisplayName: "Alice Example"},
	} {
		if _, err = s.DevOps.AddUser(Organization, u); err != nil {
			return nil, err
		}
	}
	if err = s.DevOps.Start(addr("devops")); err != nil {
		return nil, fmt.Errorf("stack: azure devops: %w", err)
	}
	s.DevOpsURL = s.DevOps.URL()

	cfg := store.PatrolConfig()
	if o.ServiceBusConfig != nil {
		if cfg, err = store.Merge(cfg, *o.ServiceBusConfig); err != nil {
			return nil, fmt.Errorf("stack: service bus config: %w", err)
		}
	}
	s.SBFaults = fault.New()
	// The app keeps the emulator's documented key with every right; the operator gets
	// a key of its own with only the operator's rights.
	keys := map[string]string{sbemu.DefaultKeyName: sbemu.DefaultKey, OperatorKeyName: randomSecret()}
	if s.SB, err = sbemu.New(sbemu.Options{Config: cfg, Clock: s.Clock, Logger: s.log.With("emulator", "servicebus"), Faults: s.SBFaults,
		Keys: keys, Rights: map[string]sbemu.Rights{OperatorKeyName: OperatorRights}}); err != nil {
		return nil, fmt.Errorf("stack: service bus: %w", err)
	}
	if err = s.SB.Start(addr("servicebus")); err != nil {
		return nil, fmt.Errorf("stack: service bus: %w", err)
	}
	return s, ctx.Err()
}

func (s *Stack) objectID(clientID string) string {
	for _, a := range s.Entra.Directory().AppRegistrations {
		if a.ClientID == clientID {
			return a.ObjectID
		}
	}
	return ""
}

func (s *Stack) userObjectID(upn string) string {
	if u, ok := s.Entra.User(upn); ok {
		return u.ObjectID
	}
	return ""
}

// Env returns the settings that point patrol, and any Azure SDK, at the stack. Standard
// names are used where they exist (AZURE_*), patrol's own otherwise. caFile is where the
// CA certificate was (or will be) written.
func (s *Stack) Env(caFile string) map[string]string {
	return map[string]string{
		// Standard Azure SDK names (azidentity EnvironmentCredential, any language).
		"AZURE_AUTHORITY_HOST": s.Entra.AuthorityHost(),
		"AZURE_TENANT_ID":      TenantID,
		"AZURE_CLIENT_ID":      WorkloadClientID,
		"AZURE_CLIENT_SECRET":  s.WorkloadSecret,
		// Node trusts extra CAs from this; Go tools use PATROL_CA_FILE via patrol.
		"NODE_EXTRA_CA_CERTS": caFile,
		// patrol's settings (docs/architecture.md).
		"PATROL_KEYVAULT_URL":            s.VaultURL,
		"PATROL_IDENTITY_KEYVAULT_URL":   s.IdentityVaultURL,
		"ServiceBusConnection":           s.SB.ConnectionString(),
		"PATROL_TENANT_ID":               TenantID,
		"PATROL_CLIENT_ID":               PublicClientID,
		"PATROL_DEFAULT_SERVICE_ACCOUNT": ServiceAccount,
		"PATROL_AUTHORITY_HOST":          s.Entra.AuthorityHost(),
		"PATROL_DEVOPS_URL":              s.DevOpsURL,
		"PATROL_CA_FILE":                 caFile,
		// The operator's bounds: what the demo and the tests mint, and no more (the
		// default scopes, lifetime and grace bounds already fit).
		"PATROL_ALLOWED_ORGS":             Organization,
		"PATROL_ALLOWED_SERVICE_ACCOUNTS": ServiceAccount + "=" + Organization,
		// Local-only facts for people and scripts.
		"PATROL_LOCAL_KEYVAULT_RESOURCE":   s.KV.Resource(),
		"PATROL_LOCAL_DEVICE_LOGIN_URL":    s.Entra.VerificationURI(),
		"PATROL_LOCAL_ORGANIZATION":        Organization,
		"PATROL_LOCAL_SERVICE_ACCOUNT_PWD": s.ServiceAccountPassword,
		AdminTokenSetting:                  s.AdminToken,
		"IDENTITY_ENDPOINT_LOCAL":          s.MSI.Endpoint,
	}
}

// OperatorEnv is Env for the operator's commands: the Service Bus connection is the
// operator's key (OperatorRights), not the app's.
func (s *Stack) OperatorEnv(caFile string) map[string]string {
	env := s.Env(caFile)
	env["ServiceBusConnection"] = s.SB.KeyConnectionString(OperatorKeyName)
	return env
}

// OperatorEnvFile is the name WriteFiles gives OperatorEnv's dotenv file, beside patrol.env.
const OperatorEnvFile = "operator.env"

// WriteFiles writes ca.pem, patrol.env (the app's settings) and operator.env (the
// operator's, OperatorEnv) into dir and returns the paths of the first two.
func (s *Stack) WriteFiles(dir string) (caFile, envFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("stack: %w", err)
	}
	caFile, envFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "patrol.env")
	abs, err := filepath.Abs(caFile)
	if err == nil {
		caFile = abs
	}
	if err := s.CA.WritePEM(caFile); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(envFile, []byte(Dotenv(s.Env(caFile))), 0o600); err != nil {
		return "", "", fmt.Errorf("stack: write %s: %w", envFile, err)
	}
	operatorFile := filepath.Join(dir, OperatorEnvFile)
	if err := os.WriteFile(operatorFile, []byte(Dotenv(s.OperatorEnv(caFile))), 0o600); err != nil {
		return "", "", fmt.Errorf("stack: write %s: %w", operatorFile, err)
	}
	return caFile, envFile, nil
}

// Dotenv renders settings as a dotenv file, sorted, values single-quoted.
func Dotenv(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by patrol: endpoints and test credentials of the local emulators.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	return b.String()
}

// Close stops every emulator that started.
func (s *Stack) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if s.admin != nil {
		errs = append(errs, s.admin.Shutdown(ctx))
	}
	if s.SB != nil {
		errs = append(errs, s.SB.Close())
	}
	if s.DevOps != nil {
		errs = append(errs, s.DevOps.Close())
	}
	if s.KV != nil {
		errs = append(errs, s.KV.Close())
	}
	if s.MSI != nil {
		errs = append(errs, s.MSI.Close())
	}
	if s.Entra != nil {
		errs = append(errs, s.Entra.Close())
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Warn("stopping the emulators", "err", err)
	}
}

func randomSecret() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
