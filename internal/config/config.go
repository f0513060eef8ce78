// Package config holds patrol's settings: their names (the contract shared with
// local.settings.json.example, function.json files and infra/), their defaults, and
// Load, which validates every setting once at start-up so that a bad value stops the
// process with a message naming the setting instead of failing mid-rotation.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	cron "github.com/netresearch/go-cron"

	"github.com/patrol-dev/patrol/internal/rules"
)

// Setting names, exactly as docs/architecture.md "Settings" lists them.
const (
	SettingKeyVaultURL           = "PATROL_KEYVAULT_URL"
	SettingIdentityKeyVaultURL   = "PATROL_IDENTITY_KEYVAULT_URL"
	SettingServiceBusConnection  = "ServiceBusConnection"
	SettingServiceBusNamespace   = "ServiceBusConnection__fullyQualifiedNamespace"
	SettingTenantID              = "PATROL_TENANT_ID"
	SettingClientID              = "PATROL_CLIENT_ID"
	SettingDefaultServiceAccount = "PATROL_DEFAULT_SERVICE_ACCOUNT"
	SettingGrace                 = "PATROL_GRACE"
	SettingRenewBefore           = "PATROL_RENEW_BEFORE"
	SettingLifetime              = "PATROL_LIFETIME"
	SettingAllowROPC             = "PATROL_ALLOW_ROPC"
	SettingSweepSchedule         = "PATROL_SWEEP_SCHEDULE"
	SettingAzureClientID         = "AZURE_CLIENT_ID"
	SettingAuthorityHost         = "PATROL_AUTHORITY_HOST"
	SettingDevOpsURL             = "PATROL_DEVOPS_URL"
	SettingCAFile                = "PATROL_CA_FILE"
	SettingManualCooldown        = "PATROL_MANUAL_COOLDOWN"
)

// SettingOffboardingUnmanaged says what the Offboarding function does with a leaver's
// PATs that no managed secret holds (docs/offboarding.md): one of the Unmanaged* values.
const SettingOffboardingUnmanaged = "PATROL_OFFBOARDING_UNMANAGED"

// Values of PATROL_OFFBOARDING_UNMANAGED.
const (
	UnmanagedReport           = "report"             // name them in the report, touch nothing
	UnmanagedRevokeAfterGrace = "revoke-after-grace" // revoke each PATROL_GRACE after the offboarding
	UnmanagedRevokeNow        = "revoke-now"         // revoke each at once
)

// The operator's bounds on what any secret's tags may ask (rotation.Bounds).
const (
	SettingAllowedOrgs            = "PATROL_ALLOWED_ORGS"
	SettingAllowedServiceAccounts = "PATROL_ALLOWED_SERVICE_ACCOUNTS"
	SettingAllowedScopes          = "PATROL_ALLOWED_SCOPES"
	SettingMaxLifetime            = "PATROL_MAX_LIFETIME"
	SettingMaxGrace               = "PATROL_MAX_GRACE"
)

// LocalClockURL is set by `patrol-dev local` only: the URL of the emulators' clock (the
// local stack's admin API GET /clock). The handler then takes "now" from the emulated
// clock instead of the wall clock, synchronising before every invocation, so that
// advancing the emulated time means the same thing to patrol as to Key Vault, Azure
// DevOps and Service Bus. It is not a deployment setting (in Azure the wall clock is the
// only clock), so it is not among Names.
const LocalClockURL = "PATROL_LOCAL_CLOCK_URL"

// LocalAdminToken is set by `patrol-dev local` only, beside LocalClockURL: the bearer
// token the local stack's admin API requires (written to patrol.env per run). Not a
// deployment setting either.
const LocalAdminToken = "PATROL_LOCAL_ADMIN_TOKEN"

// Names returns every setting name in the order docs/architecture.md lists them, for
// the contract test that keeps code, local.settings.json.example and infra/ in step.
func Names() []string {
	return []string{
		SettingKeyVaultURL, SettingIdentityKeyVaultURL, SettingServiceBusConnection, SettingServiceBusNamespace,
		SettingTenantID, SettingClientID, SettingDefaultServiceAccount, SettingGrace,
		SettingRenewBefore, SettingLifetime,
		SettingAllowedOrgs, SettingAllowedServiceAccounts, SettingAllowedScopes, SettingMaxLifetime, SettingMaxGrace,
		SettingAllowROPC, SettingSweepSchedule,
		SettingAzureClientID, SettingAuthorityHost, SettingDevOpsURL, SettingCAFile,
		SettingManualCooldown,
		SettingOffboardingUnmanaged,
	}
}

// Defaults, as documented.
const (
	// DefaultGrace outlasts the slowest refresh a documented consumer makes: App
	// Service and Functions re-fetch a Key Vault reference every 24 hours
	// (docs/consumers.md), so a 24 h grace would race the revocation; three refresh
	// intervals leave a missed refresh or a weekend of pipeline runs room.
	DefaultGrace         = 72 * time.Hour
	DefaultRenewBefore   = 30 * rules.Day
	DefaultLifetime      = 90 * rules.Day
	DefaultSweepSchedule = "0 0 */6 * * *"
	// DefaultManualCooldown is the least time between two manual rotations of a secret.
	DefaultManualCooldown = 10 * time.Minute
	// MaxManualCooldown bounds PATROL_MANUAL_COOLDOWN: an emergency must stay possible.
	MaxManualCooldown = 24 * time.Hour
	// DefaultAllowedScopes admits every vso.* scope but the sensitive ones, which a
	// prefix never admits (rotation.IsSensitiveScope).
	DefaultAllowedScopes = "vso.*"
	// DefaultMaxLifetime is DefaultLifetime: a secret may ask for shorter PATs than
	// the default, not longer, unless the operator says so.
	DefaultMaxLifetime = 90 * rules.Day
	DefaultMaxGrace    = 7 * rules.Day
)

// Config is every setting, validated. Zero values of optional settings mean "not set".
type Config struct {
	KeyVaultURL string
	// IdentityKeyVaultURL is the vault of the service accounts' token caches and
	// passwords, which only the app's identity and the operator can reach. Empty: they
	// stay in KeyVaultURL's vault, as before it existed (IdentityVault says so loudly).
	IdentityKeyVaultURL string
	// ServiceBusConnection is a connection string (local stack); it holds a key, so
	// never log it — Config.LogValue leaves it out.
	ServiceBusConnection string
	// ServiceBusNamespace is the fully qualified namespace for an identity-based
	// connection (Azure). Exactly one of the two Service Bus settings is set.
	ServiceBusNamespace   string
	TenantID              string
	ClientID              string
	DefaultServiceAccount string
	Grace                 time.Duration
	RenewBefore           time.Duration
	Lifetime              time.Duration
	AllowROPC             bool
	SweepSchedule         string
	AzureClientID         string
	AuthorityHost         string
	DevOpsURL             string
	CAFile                string
	// ManualCooldown is the least time between two manual rotations of one secret
	// (RotateNow answers 429 inside it); zero turns it off.
	ManualCooldown time.Duration
	// OffboardingUnmanaged is one of the Unmanaged* values; default UnmanagedReport.
	OffboardingUnmanaged string

	// The bounds (see ParseAllowedOrgs and friends for the forms). Empty AllowedOrgs
	// or AllowedServiceAccounts admit nothing.
	AllowedOrgs            []string
	AllowedServiceAccounts map[string][]string
	AllowedScopes          []string
	MaxLifetime            time.Duration
	MaxGrace               time.Duration
}

// LogValue lets a Config be logged without its Service Bus key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String(SettingKeyVaultURL, c.KeyVaultURL),
		slog.String(SettingIdentityKeyVaultURL, c.IdentityKeyVaultURL),
		slog.String(SettingServiceBusConnection, RedactConnectionString(c.ServiceBusConnection)),
		slog.String(SettingServiceBusNamespace, c.ServiceBusNamespace),
		slog.String(SettingTenantID, c.TenantID),
		slog.String(SettingClientID, c.ClientID),
		slog.String(SettingDefaultServiceAccount, c.DefaultServiceAccount),
		slog.String(SettingGrace, rules.FormatDuration(c.Grace)),
		slog.String(SettingRenewBefore, rules.FormatDuration(c.RenewBefore)),
		slog.String(SettingLifetime, rules.FormatDuration(c.Lifetime)),
		slog.Bool(SettingAllowROPC, c.AllowROPC),
		slog.String(SettingSweepSchedule, c.SweepSchedule),
		slog.String(SettingAzureClientID, c.AzureClientID),
		slog.String(SettingAuthorityHost, c.AuthorityHost),
		slog.String(SettingDevOpsURL, c.DevOpsURL),
		slog.String(SettingCAFile, c.CAFile),
		slog.String(SettingManualCooldown, rules.FormatDuration(c.ManualCooldown)),
		slog.String(SettingOffboardingUnmanaged, c.OffboardingUnmanaged),
		slog.String(SettingAllowedOrgs, strings.Join(c.AllowedOrgs, ",")),
		slog.String(SettingAllowedServiceAccounts, FormatAllowedServiceAccounts(c.AllowedServiceAccounts)),
		slog.String(SettingAllowedScopes, strings.Join(c.AllowedScopes, " ")),
		slog.String(SettingMaxLifetime, rules.FormatDuration(c.MaxLifetime)),
		slog.String(SettingMaxGrace, rules.FormatDuration(c.MaxGrace)),
	)
}

// SettingError names the setting and the bad value (redacted when the setting holds a
// secret).
type SettingError struct {
	Setting string
	Value   string
	Problem string
}

func (e *SettingError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("config: %s: %s", e.Setting, e.Problem)
	}
	return fmt.Sprintf("config: %s=%q: %s", e.Setting, e.Value, e.Problem)
}

// Needs names the settings a command uses beyond the ones every command does (the
// vault, the tenant and the client id). A command that never sends a message must not
// refuse to start because the Service Bus setting is missing: an operator running
// `patrol status` on a laptop has no reason to know the namespace.
type Needs struct {
	// ServiceBus: one of ServiceBusConnection and
	// ServiceBusConnection__fullyQualifiedNamespace is required. Without it a Service
	// Bus setting that is present is still checked, and used.
	ServiceBus bool
}

// Everything is what the function app (`patrol serve`) needs: every setting.
var Everything = Needs{ServiceBus: true}

// Load reads and validates every setting through getenv (os.Getenv, or a dotenv file
// layered over it with WithEnvFile), all of them required as `patrol serve` needs them.
// All problems are reported together so one run shows everything that needs fixing.
func Load(getenv func(string) string) (Config, error) {
	return LoadFor(getenv, Everything)
}

// LoadFor is Load for a command that needs only some settings: a setting outside needs
// is validated when present and otherwise left empty.
func LoadFor(getenv func(string) string, needs Needs) (Config, error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	var errs []error
	bad := func(setting, value, problem string) {
		errs = append(errs, &SettingError{Setting: setting, Value: value, Problem: problem})
	}
	c := Config{
		KeyVaultURL:           get(SettingKeyVaultURL),
		IdentityKeyVaultURL:   get(SettingIdentityKeyVaultURL),
		ServiceBusConnection:  get(SettingServiceBusConnection),
		ServiceBusNamespace:   get(SettingServiceBusNamespace),
		TenantID:              get(SettingTenantID),
		ClientID:              get(SettingClientID),
		DefaultServiceAccount: get(SettingDefaultServiceAccount),
		SweepSchedule:         get(SettingSweepSchedule),
		AzureClientID:         get(SettingAzureClientID),
		AuthorityHost:         get(SettingAuthorityHost),
		DevOpsURL:             get(SettingDevOpsURL),
		CAFile:                get(SettingCAFile),
	}

	if c.KeyVaultURL == "" {
		bad(SettingKeyVaultURL, "", "required (the vault URL, e.g. https://myvault.vault.azure.net)")
	} else if p := httpsURLProblem(c.KeyVaultURL); p != "" {
		bad(SettingKeyVaultURL, c.KeyVaultURL, p)
	}

	if c.IdentityKeyVaultURL != "" {
		if p := httpsURLProblem(c.IdentityKeyVaultURL); p != "" {
			bad(SettingIdentityKeyVaultURL, c.IdentityKeyVaultURL, p)
		} else if sameHost(c.IdentityKeyVaultURL, c.KeyVaultURL) {
			bad(SettingIdentityKeyVaultURL, c.IdentityKeyVaultURL, "must be a second vault, not "+SettingKeyVaultURL+": the refresh tokens are kept apart from the PATs consumers read")
		}
	}

	switch {
	case c.ServiceBusConnection == "" && c.ServiceBusNamespace == "":
		if !needs.ServiceBus {
			break
		}
		bad(SettingServiceBusConnection, "", "required: set it or "+SettingServiceBusNamespace)
	case c.ServiceBusConnection != "" && c.ServiceBusNamespace != "":
		bad(SettingServiceBusConnection, RedactConnectionString(c.ServiceBusConnection),
			"set only one of it and "+SettingServiceBusNamespace+" so it is clear which connection is used")
	case c.ServiceBusConnection != "":
		if p := connectionStringProblem(c.ServiceBusConnection); p != "" {
			bad(SettingServiceBusConnection, RedactConnectionString(c.ServiceBusConnection), p)
		}
	default:
		if !isHostPort(c.ServiceBusNamespace) {
			bad(SettingServiceBusNamespace, c.ServiceBusNamespace, "want a host name such as mybus.servicebus.windows.net (no scheme or path)")
		}
	}

	switch {
	case c.TenantID == "":
		bad(SettingTenantID, "", "required (the tenant id or domain of the service accounts)")
	case !isGUID(c.TenantID) && !isDNSName(c.TenantID):
		bad(SettingTenantID, c.TenantID, "want a GUID or a domain such as contoso.onmicrosoft.com")
	}
	switch {
	case c.ClientID == "":
		bad(SettingClientID, "", "required (the application id of the public client that signs service accounts in)")
	case !isGUID(c.ClientID):
		bad(SettingClientID, c.ClientID, "want an application (client) id GUID")
	}
	if c.DefaultServiceAccount != "" && !rules.IsUPN(c.DefaultServiceAccount) {
		bad(SettingDefaultServiceAccount, c.DefaultServiceAccount, "want "+rules.UPNForm)
	}
	if c.AzureClientID != "" && !isGUID(c.AzureClientID) {
		bad(SettingAzureClientID, c.AzureClientID, "want the managed identity's client id GUID")
	}

	duration := func(setting string, def, min, max time.Duration) time.Duration {
		raw := get(setting)
		if raw == "" {
			return def
		}
		d, err := rules.ParseDuration(raw)
		if err != nil {
			bad(setting, raw, err.Error())
			return def
		}
		if d < min || d > max {
			bad(setting, raw, fmt.Sprintf("want between %s and %s", rules.FormatDuration(min), rules.FormatDuration(max)))
			return def
		}
		return d
	}
	c.Grace = duration(SettingGrace, DefaultGrace, 0, rules.MaxLifetime)
	c.RenewBefore = duration(SettingRenewBefore, DefaultRenewBefore, time.Minute, rules.MaxLifetime)
	c.Lifetime = duration(SettingLifetime, DefaultLifetime, rules.MinLifetime, rules.MaxLifetime)
	c.ManualCooldown = duration(SettingManualCooldown, DefaultManualCooldown, 0, MaxManualCooldown)

	c.MaxLifetime = duration(SettingMaxLifetime, DefaultMaxLifetime, rules.MinLifetime, rules.MaxLifetime)
	c.MaxGrace = duration(SettingMaxGrace, DefaultMaxGrace, 0, rules.MaxLifetime)
	loadBounds(&c, get, bad)

	if raw := get(SettingAllowROPC); raw != "" {
		v, err := strconv.ParseBool(raw)
		if err != nil {
			bad(SettingAllowROPC, raw, "want true or false")
		}
		c.AllowROPC = v
	}

	switch c.OffboardingUnmanaged = strings.ToLower(strings.TrimSpace(get(SettingOffboardingUnmanaged))); c.OffboardingUnmanaged {
	case "":
		c.OffboardingUnmanaged = UnmanagedReport
	case UnmanagedReport, UnmanagedRevokeAfterGrace, UnmanagedRevokeNow:
	default:
		bad(SettingOffboardingUnmanaged, c.OffboardingUnmanaged, "want "+UnmanagedReport+", "+UnmanagedRevokeAfterGrace+" or "+UnmanagedRevokeNow)
	}

	if c.SweepSchedule == "" {
		c.SweepSchedule = DefaultSweepSchedule
	} else if p := scheduleProblem(c.SweepSchedule); p != "" {
		bad(SettingSweepSchedule, c.SweepSchedule, p)
	}

	for _, s := range []struct{ name, value string }{
		{SettingAuthorityHost, c.AuthorityHost},
		{SettingDevOpsURL, c.DevOpsURL},
	} {
		if s.value == "" {
			continue
		}
		if p := httpsURLProblem(s.value); p != "" {
			bad(s.name, s.value, p)
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// ncrontab is the Functions timer format: six fields, seconds first.
var ncrontab = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

func scheduleProblem(s string) string {
	if n := len(strings.Fields(s)); n != 6 {
		return fmt.Sprintf("want an NCRONTAB expression with 6 fields (second minute hour day month weekday), got %d", n)
	}
	if _, err := ncrontab.Parse(s); err != nil {
		return "not a valid NCRONTAB expression: " + err.Error()
	}
	return ""
}

func httpsURLProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "want an absolute URL such as https://host"
	}
	if u.Scheme != "https" {
		return "want an https URL (tokens are sent to it)"
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "want a base URL without credentials, query or fragment"
	}
	return ""
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Host, ub.Host)
}

// IdentityVaultProblem says what needs attention about where the service accounts'
// refresh tokens live, or "" when they have a vault of their own.
func (c Config) IdentityVaultProblem() string {
	if c.IdentityKeyVaultURL != "" {
		return ""
	}
	return SettingIdentityKeyVaultURL + " is not set: the service accounts' token caches and passwords share " +
		"the secrets vault with the PATs, so whoever may read that vault can take their refresh tokens; " +
		"deploy the identity vault and run `patrol migrate-identity` (docs/deploy.md)"
}

func isGUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// isDNSName: at least two dot-separated labels of 1-63 letters, digits and dashes,
// each starting and ending with a letter or digit, 253 characters at most.
// (Hand-written: the equivalent bounded-repetition regexp compiled at start-up cost
// the handler measurable start-to-ready time.)
func isDNSName(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) < 1 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
	}
	return true
}

func isHostPort(s string) bool {
	host := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return false
		}
		host = h
	}
	return isDNSName(host) || host == "localhost"
}

// connectionStringProblem checks the shape azservicebus accepts, without ever
// returning the key.
func connectionStringProblem(s string) string {
	fields := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return "want Key=Value pairs separated by ';'"
		}
		fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	ep := fields["endpoint"]
	if ep == "" {
		return "missing Endpoint=sb://<namespace>/"
	}
	u, err := url.Parse(ep)
	if err != nil || u.Scheme != "sb" || u.Host == "" {
		return "Endpoint must look like sb://<namespace>/"
	}
	if strings.EqualFold(fields["usedevelopmentemulator"], "true") {
		return ""
	}
	if fields["sharedaccesssignature"] != "" {
		return ""
	}
	if fields["sharedaccesskeyname"] == "" || fields["sharedaccesskey"] == "" {
		return "want SharedAccessKeyName and SharedAccessKey, SharedAccessSignature, or UseDevelopmentEmulator=true"
	}
	return ""
}

// RedactConnectionString keeps what locates a Service Bus namespace and hides everything
// else, so a connection string can appear in an error or a log. It keeps the values of
// Endpoint, SharedAccessKeyName, EntityPath and UseDevelopmentEmulator only when they
// look like what those keys hold; any other value, and any part that is not Key=Value,
// becomes REDACTED. An allow-list, because a malformed string is exactly the one that
// gets echoed: a ',' or newline instead of ';' runs the key into the Endpoint value, a
// misspelt key name or a pasted bare key would pass a deny-list untouched.
func RedactConnectionString(s string) string {
	parts := strings.Split(s, ";")
	for i, part := range parts {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		keep, known := plainConnectionValue[key]
		switch {
		case !ok || !known:
			parts[i] = redacted // not a key we know: it may be a pasted value
		case keep == nil || !keep(strings.TrimSpace(v)):
			parts[i] = k + "=" + redacted
		}
	}
	return strings.Join(parts, ";")
}

const redacted = "REDACTED"

// plainConnectionValue: the connection-string keys, and for those whose values are not
// secret a check of the shape such a value has (nil: always secret). Hand-written, like
// the other rules here, so that start-up compiles no regexp.
var plainConnectionValue = map[string]func(string) bool{
	"sharedaccesskey":       nil,
	"sharedaccesssignature": nil,
	"endpoint": func(v string) bool {
		rest, ok := cutPrefixFold(v, "sb://")
		rest = strings.TrimSuffix(rest, "/")
		host, port, hasPort := strings.Cut(rest, ":")
		return ok && host != "" && onlyBytes(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") &&
			(!hasPort || port != "" && onlyBytes(port, "0123456789"))
	},
	"sharedaccesskeyname": func(v string) bool {
		return v != "" && len(v) <= 256 && onlyBytes(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
	},
	"entitypath": func(v string) bool {
		return v != "" && len(v) <= 260 && onlyBytes(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-")
	},
	"usedevelopmentemulator": func(v string) bool { return strings.EqualFold(v, "true") || strings.EqualFold(v, "false") },
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// onlyBytes reports whether every byte of s is one of allowed.
func onlyBytes(s, allowed string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(allowed, s[i]) < 0 {
			return false
		}
	}
	return true
}
