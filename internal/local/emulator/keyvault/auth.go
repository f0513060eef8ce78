package keyvault

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
)

// Role is an Azure built-in Key Vault data-plane role.
type Role string

// The roles that govern secrets. Each grants the data actions Azure's built-in role of
// the same name grants on secrets.
const (
	RoleAdministrator  Role = "Key Vault Administrator"
	RoleSecretsOfficer Role = "Key Vault Secrets Officer"
	RoleSecretsUser    Role = "Key Vault Secrets User"
	RoleReader         Role = "Key Vault Reader"
)

// AllVaults in Grant assigns a role on every vault (a subscription-scope assignment).
const AllVaults = "*"

const actionPrefix = "Microsoft.KeyVault/vaults/secrets/"

// actions maps an operation to its Azure RBAC data action.
var actions = map[string]string{
	OpSetSecret:            actionPrefix + "setSecret/action",
	OpGetSecret:            actionPrefix + "getSecret/action",
	OpUpdateSecret:         actionPrefix + "update/action",
	OpListSecrets:          actionPrefix + "readMetadata/action",
	OpListSecretVersions:   actionPrefix + "readMetadata/action",
	OpDeleteSecret:         actionPrefix + "delete",
	OpGetDeletedSecret:     actionPrefix + "readMetadata/action",
	OpListDeletedSecrets:   actionPrefix + "readMetadata/action",
	OpRecoverDeletedSecret: actionPrefix + "recover/action",
	OpPurgeDeletedSecret:   actionPrefix + "purge/action",
	OpBackupSecret:         actionPrefix + "backup/action",
	OpRestoreSecret:        actionPrefix + "restore/action",
}

// allows reports whether role grants action. Officer and Administrator hold
// "secrets/*"; User holds getSecret and readMetadata; Reader holds readMetadata only.
func (r Role) allows(action string) bool {
	switch r {
	case RoleAdministrator, RoleSecretsOfficer:
		return strings.HasPrefix(action, actionPrefix)
	case RoleSecretsUser:
		return action == actionPrefix+"getSecret/action" || action == actionPrefix+"readMetadata/action"
	case RoleReader:
		return action == actionPrefix+"readMetadata/action"
	}
	return false
}

func (r Role) valid() bool {
	switch r {
	case RoleAdministrator, RoleSecretsOfficer, RoleSecretsUser, RoleReader:
		return true
	}
	return false
}

// resourceFor is the challenge resource for a request host: the host without its
// vault label, port kept ("myvault.vault.localhost:8443" → "https://vault.localhost:8443").
// A host with no vault label (localhost, an IP) gets vault.localhost on the same port;
// clients reaching it that way must disable challenge resource verification anyway.
func resourceFor(host string) string {
	if _, rest, ok := splitVaultHost(host); ok {
		return "https://" + rest
	}
	if _, port, err := net.SplitHostPort(host); err == nil {
		return "https://vault.localhost:" + port
	}
	return "https://vault.localhost"
}

// splitVaultHost splits "myvault.vault.localhost:8443" into "myvault" and
// "vault.localhost:8443". It refuses single-label hosts and IP literals.
func splitVaultHost(host string) (vault, rest string, ok bool) {
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	if net.ParseIP(strings.Trim(hostname, "[]")) != nil {
		return "", "", false
	}
	vault, rest, ok = strings.Cut(host, ".")
	if !ok || vault == "" || rest == "" || strings.HasPrefix(rest, ":") {
		return "", "", false
	}
	return strings.ToLower(vault), rest, true
}

// innerTokenExpired marks (internally) a 401 answered with a CAE claims challenge;
// it is not sent as an innererror.
const innerTokenExpired = "tokenExpired"

// claimsChallenge is Key Vault's CAE challenge: insufficient_claims with base64 claims
// asking for a token issued no earlier than nbf (with xms_caeerror when caeError is set,
// as the Azure SDKs' fixtures show for a revoked session).
//
// Deliberate local divergence (docs/emulator-fidelity.md D6): an *expired* token gets
// this challenge too, without xms_caeerror. Real Key Vault answers it with a plain 401
// ([TokenExpired]); the challenge lets MSAL, whose cache judges expiry by the wall
// clock, fetch a fresh token when the emulated clock has jumped ahead.
func (e *Emulator) claimsChallenge(nbf time.Time, caeError ...string) string {
	return authn.ClaimsChallenge(fmt.Sprintf("%s/%s/oauth2/authorize", e.authority, e.tenant), nbf, strings.Join(caeError, ""))
}

// RevokeSessions ends objectID's sessions now: its tokens issued before get a claims
// challenge (xms_caeerror 10012) when their client declared cp1, a plain 401 otherwise.
// Share Options.Sessions with the Azure DevOps emulator to revoke in both at once.
func (e *Emulator) RevokeSessions(objectID string) {
	e.opts.Sessions.Revoke(objectID, e.clk.Now())
}

// challenge is the WWW-Authenticate value azsecrets needs: authorization carrying the
// tenant as its path (the SDK indexes the 4th "/" segment and panics without it) and
// resource matching the vault host with its port.
func (e *Emulator) challenge(host string) string {
	return fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, e.authority, e.tenant, resourceFor(host))
}

// authenticate checks the bearer token. It never reads the body: the SDK's first
// request arrives without a token and with its body stripped.
func (e *Emulator) authenticate(r *http.Request, now time.Time) (authn.Principal, *apiError) {
	h := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		return authn.Principal{}, &apiError{status: 401, code: "Unauthorized", message: "AKV10000: Request is missing a Bearer or PoP token."}
	}
	// Expiry is judged on this emulator's clock, before the verifier (which may use
	// another). An expired token gets a CAE claims challenge rather than a plain one:
	// azcore then asks the credential for a new token with claims, which bypasses
	// MSAL's cache — whose idea of expiry is wall time, not the emulator clock — so
	// advancing the clock past a token's life costs clients one round trip, not a failure.
	if exp := tokenExpiry(raw); !exp.IsZero() && !now.Before(exp) {
		return authn.Principal{}, &apiError{status: 401, code: "Unauthorized", message: "AKV10000: The access token has expired.", inner: innerTokenExpired}
	}
	p, err := e.verifier.Verify(strings.TrimSpace(raw))
	if err != nil {
		// The verifier's error names the failed check, never the token.
		return authn.Principal{}, &apiError{status: 401, code: "Unauthorized", message: "AKV10000: The access token is not valid: " + err.Error()}
	}
	if !audienceOK(p.Audience, resourceFor(r.Host)) {
		return authn.Principal{}, &apiError{status: 401, code: "Unauthorized",
			message: fmt.Sprintf("AKV10022: Invalid audience. Expected %s, found: %s.", resourceFor(r.Host), truncate(p.Audience, 200))}
	}
	if at, stale := e.opts.Sessions.Stale(p); stale {
		aerr := &apiError{status: 401, code: "Unauthorized", message: "AKV10000: The access token was issued before the principal's sessions were revoked."}
		if p.HandlesChallenges() {
			aerr.challenge = e.claimsChallenge(at, authn.CAEErrorSessionRevoked)
		}
		return authn.Principal{}, aerr
	}
	return p, nil
}

func audienceOK(aud, resource string) bool {
	aud = strings.TrimSuffix(aud, "/")
	return aud == resource || aud == "https://vault.azure.net"
}

// tokenExpiry reads exp from an already verified JWT; zero if absent.
func tokenExpiry(raw string) time.Time {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(strings.TrimSpace(raw), claims); err != nil {
		return time.Time{}
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return time.Time{}
	}
	return exp.Time
}

// authorize applies RBAC: some role assigned to the principal on this vault (or on
// every vault) must grant the operation's data action.
func (e *Emulator) authorize(vault string, p authn.Principal, op, name string) *apiError {
	action := actions[op]
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, scope := range []string{vault, AllVaults} {
		for role := range e.grants[scope][p.ObjectID] {
			if role.allows(action) {
				return nil
			}
		}
	}
	resource := fmt.Sprintf("/subscriptions/%s/resourcegroups/%s/providers/microsoft.keyvault/vaults/%s",
		e.opts.SubscriptionID, strings.ToLower(e.opts.ResourceGroup), vault)
	if name != "" {
		resource += "/secrets/" + name
	}
	msg := "Caller is not authorized to perform action on resource.\r\n" +
		"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n" +
		fmt.Sprintf("Caller: appid=%s;oid=%s;iss=https://sts.windows.net/%s/\r\n", p.AppID, p.ObjectID, p.TenantID) +
		fmt.Sprintf("Action: '%s'\r\n", action) +
		fmt.Sprintf("Resource: '%s'\r\n", resource) +
		"Assignment: (not found)\r\n" +
		"DenyAssignmentId: null\r\n" +
		"DecisionReason: 'DeniedWithNoValidRBAC' \r\n" +
		fmt.Sprintf("Vault: %s;location=%s\r\n", vault, e.opts.Location)
	return &apiError{status: 403, code: "Forbidden", inner: "ForbiddenByRbac", message: msg}
}

// principalLabel names a caller in the journal: a UPN, else the app id, else the
// object id. Never a credential.
func principalLabel(p authn.Principal) string {
	switch {
	case p.UPN != "":
		return p.UPN
	case p.AppID != "":
		return p.AppID
	}
	return p.ObjectID
}
