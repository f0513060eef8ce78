// Package identity gets Entra ID tokens for patrol: delegated tokens for the service
// accounts that own PATs (MSAL for Go public client — Azure DevOps refuses service
// principals and managed identities on the PAT lifecycle API), and the workload identity
// patrol itself runs as (azidentity).
//
// A service account signs in once (`patrol login`: in a browser, or with the device-code
// flow where no browser is at hand); its MSAL token cache is then kept in Key Vault, one
// secret per account, and refreshed silently.
// A stored password (ROPC) is used only where the operator enabled it, because ROPC
// fails for accounts under MFA or Conditional Access and is deprecated by Microsoft.
//
// Tokens carry the Azure DevOps permissions patrol uses, asked for by name
// (DevOpsScopes; TokenAdminScopes only to revoke someone else's PAT), and the client
// declares the cp1 capability, so Azure DevOps may revoke a token early with a claims
// challenge that TokenWithClaims answers (cae.go).
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// DevOpsResource is Azure DevOps' application id, the resource of its Entra scopes.
const DevOpsResource = "499b84ac-1321-427f-aa17-267ca6975798"

// Decision: patrol asks for the Azure DevOps permissions it uses by name, not for
// DevOpsResource/.default. Since Sprint 257 the PAT lifecycle API takes vso.pats (read)
// and vso.pats_manage (create, update, revoke) and refuses user_impersonation;
// .default would yield whatever the app registration was consented, and an app
// consented only user_impersonation would sign in fine and fail every rotation. Named
// scopes fail at sign-in instead, with AADSTS65001 naming the app (ConsentRequired).
// Token administration (vso.tokenadministration) is asked for separately, only to
// revoke a PAT someone else made, so the operators who never need it need not consent
// it (docs/deploy.md, docs/emulator-fidelity.md 1.1, 1.8, 2.2).
var (
	// DevOpsScopes are the default Options.Scopes: the PAT lifecycle API.
	DevOpsScopes = []string{DevOpsResource + "/vso.pats", DevOpsResource + "/vso.pats_manage"}
	// TokenAdminScopes are the token administration API's (TokenAdmin).
	TokenAdminScopes = []string{DevOpsResource + "/vso.tokenadministration"}
	// ListingScopes list a person's PATs (ListingToken): the Graph users API resolves
	// the person (vso.graph), token administration lists (vso.tokenadministration).
	ListingScopes = []string{DevOpsResource + "/vso.tokenadministration", DevOpsResource + "/vso.graph"}
)

// Options configure ServiceAccounts.
type Options struct {
	// Authority is https://<host>/<tenant>; the host defaults to the public cloud.
	Authority  string
	ClientID   string
	HTTPClient *http.Client
	Store      CacheStore
	AllowROPC  bool
	Logger     *slog.Logger
	// Scopes default to DevOpsScopes.
	Scopes []string
	// CacheRecheck is how long a warm instance trusts its copy of an account's cache
	// before comparing the stored version again (cache.go); default DefaultCacheRecheck.
	CacheRecheck time.Duration
}

// Token is a delegated access token. Its String never shows the value.
type Token struct {
	value     string
	ExpiresOn time.Time
}

// Value returns the bearer token.
func (t Token) Value() string { return t.value }

// String redacts the value.
func (t Token) String() string {
	return "Token(redacted, expires " + t.ExpiresOn.UTC().Format(time.RFC3339) + ")"
}

// LogValue redacts the value in structured logs.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// ServiceAccounts issues Azure DevOps tokens for service accounts.
type ServiceAccounts struct {
	opts    Options
	mu      sync.Mutex
	clients map[string]*account
}

type account struct {
	upn    string
	client public.Client
	cache  *kvCache
}

// NewServiceAccounts validates opts; it makes no network call.
func NewServiceAccounts(opts Options) (*ServiceAccounts, error) {
	switch {
	case opts.ClientID == "":
		return nil, errors.New("identity: no public client id (PATROL_CLIENT_ID)")
	case opts.Authority == "" || !strings.HasPrefix(opts.Authority, "https://"):
		return nil, fmt.Errorf("identity: authority %q must be an https URL ending in the tenant", opts.Authority)
	case opts.Store == nil:
		return nil, errors.New("identity: no cache store")
	}
	if len(opts.Scopes) == 0 {
		opts.Scopes = DevOpsScopes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.CacheRecheck <= 0 {
		opts.CacheRecheck = DefaultCacheRecheck
	}
	return &ServiceAccounts{opts: opts, clients: map[string]*account{}}, nil
}

func (s *ServiceAccounts) account(upn string) (*account, error) {
	key := strings.ToLower(upn)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.clients[key]; ok {
		return a, nil
	}
	c := &kvCache{store: s.opts.Store, account: key, recheck: s.opts.CacheRecheck, log: s.opts.Logger}
	pc, err := public.New(s.opts.ClientID,
		public.WithAuthority(s.opts.Authority),
		public.WithHTTPClient(s.opts.HTTPClient),
		public.WithCache(c),
		// Instance discovery calls login.microsoftonline.com for any other host, which
		// the local stack must never reach; the authority is configured, not discovered.
		public.WithInstanceDiscovery(!isCustomAuthority(s.opts.Authority)),
		// cp1: patrol handles claims challenges (Continuous Access Evaluation, cae.go).
		public.WithClientCapabilities(clientCapabilities),
	)
	if err != nil {
		return nil, fmt.Errorf("identity: MSAL client for %s: %w", upn, err)
	}
	a := &account{upn: key, client: pc, cache: c}
	s.clients[key] = a
	return a, nil
}

func isCustomAuthority(authority string) bool {
	return !strings.HasPrefix(strings.ToLower(authority), "https://login.microsoftonline.com/")
}

// Token returns an Azure DevOps token for the service account: silently from its cache,
// else by password where ROPC is allowed and a password is stored, else a *SignInError
// telling the operator how to fix it. A sign-in found missing or revoked (invalid_grant)
// is tried once more when the stored cache changed since this instance read it: an
// operator ran `patrol login` again, and that must take effect without a restart.
func (s *ServiceAccounts) Token(ctx context.Context, upn string) (Token, error) {
	return s.againIfReloaded(ctx, upn, s.token)
}

func (s *ServiceAccounts) token(ctx context.Context, upn string) (Token, error) {
	tok, err := s.silent(ctx, upn, nil, "")
	var se *SignInError
	if !errors.As(err, &se) || se.Kind != NotSignedIn && se.Kind != SignInExpired {
		return tok, err
	}
	s.opts.Logger.InfoContext(ctx, "no token from the cache", "serviceAccount", upn, "reason", se.Kind.String())
	a, err := s.account(upn)
	if err != nil {
		return Token{}, err
	}
	return s.passwordOr(ctx, a, se)
}

// passwordOr signs in with the stored password where allowed, else returns fallback.
func (s *ServiceAccounts) passwordOr(ctx context.Context, a *account, fallback *SignInError) (Token, error) {
	if !s.opts.AllowROPC {
		return Token{}, fallback
	}
	pw, ok, err := s.opts.Store.Password(ctx, a.upn)
	if err != nil {
		return Token{}, fmt.Errorf("identity: read password of %s: %w", a.upn, err)
	}
	if !ok {
		return Token{}, fallback
	}
	//nolint:staticcheck // ROPC is deprecated; patrol uses it only where the operator opted in.
	res, err := a.client.AcquireTokenByUsernamePassword(ctx, s.opts.Scopes, a.upn, pw)
	if err != nil {
		return Token{}, s.signInError(a.upn, s.opts.Scopes, err)
	}
	return Token{value: res.AccessToken, ExpiresOn: res.ExpiresOn}, nil
}

// DeviceCode is what a person needs to complete a device-code sign-in.
type DeviceCode struct {
	UserCode        string
	VerificationURL string
	Message         string
	ExpiresOn       time.Time
}

// Login signs the service account in with the device-code flow. show is called once with
// the code to enter; Login then waits until the sign-in completes, fails or ctx ends. It
// refuses a sign-in completed as a different user, which would otherwise silently issue
// PATs under the wrong account.
func (s *ServiceAccounts) Login(ctx context.Context, upn string, show func(DeviceCode)) error {
	a, err := s.account(upn)
	if err != nil {
		return err
	}
	defer a.cache.signingIn()()
	dc, err := a.client.AcquireTokenByDeviceCode(ctx, s.opts.Scopes)
	if err != nil {
		return s.signInError(upn, s.opts.Scopes, err)
	}
	show(DeviceCode{UserCode: dc.Result.UserCode, VerificationURL: dc.Result.VerificationURL, Message: dc.Result.Message, ExpiresOn: dc.Result.ExpiresOn})
	res, err := dc.AuthenticationResult(ctx)
	if err != nil {
		return s.signInError(upn, s.opts.Scopes, err)
	}
	return requireAccount(ctx, a, upn, res.Account)
}
