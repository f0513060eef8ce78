package entra

import (
	"crypto/subtle"
	"net/http"
	"time"
)

// The grant decisions below are pure: they take the directory, the stored grant they
// redeem (refresh token, device authorization) and now, and return what to issue or the
// AADSTS error. The token endpoint gathers their inputs under the lock and acts on the
// result.

// refreshRecord is the server-side state of one refresh token (stored under its hash).
type refreshRecord struct {
	UserOID  string
	ClientID string
	Issued   time.Time
	Expires  time.Time // inactivity window: each redemption issues a fresh token
	MFA      bool      // the original sign-in satisfied MFA
	Expired  bool      // ExpireRefreshTokens
	Revoked  bool      // RevokeRefreshTokens / password change
}

// deviceStatus is where a device authorization stands.
type deviceStatus int

const (
	devicePending deviceStatus = iota
	deviceApproved
	deviceDenied
	deviceRedeemed
)

// deviceAuth is one device-code sign-in in progress (stored under the device code's hash).
type deviceAuth struct {
	ClientID string
	Scope    string
	UserCode string
	Issued   time.Time
	Expires  time.Time
	Status   deviceStatus
	UserOID  string // set on approval
}

// authenticateClient checks the client part of any token request: the app exists and
// authenticated the way its registration requires.
func authenticateClient(d *Directory, req tokenRequest) (*AppRegistration, *aadError) {
	app := d.app(req.ClientID)
	if app == nil {
		return nil, appNotFound(sanitize(req.ClientID), d.TenantID)
	}
	switch {
	case app.PublicClient && (req.ClientSecret != "" || req.Assertion):
		return nil, invalidClient(CodePublicClientSecret, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
	case app.PublicClient:
		return app, nil
	case req.Assertion:
		return nil, invalidClient(CodeAssertionRejected, "Client assertion failed signature validation. The emulator accepts client secrets only.")
	case req.ClientSecret == "":
		return nil, invalidClient(CodeClientAuthMissing, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	case app.Secret == "" || subtle.ConstantTimeCompare([]byte(req.ClientSecret), []byte(app.Secret)) != 1:
		return nil, invalidClient(CodeInvalidClientSecret, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.ClientID)
	}
	return app, nil
}

// decideClientCredentials answers grant_type=client_credentials: an app-only token for
// resource/.default.
func decideClientCredentials(d *Directory, req tokenRequest) (issue, *aadError) {
	app, aerr := authenticateClient(d, req)
	if aerr != nil {
		return issue{}, aerr
	}
	if app.PublicClient {
		return issue{}, invalidClient(CodeClientAuthMissing, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	if req.Scope == "" {
		return issue{}, missingParameter("scope")
	}
	sr, aerr := parseScope(req.Scope)
	if aerr != nil {
		return issue{}, aerr
	}
	if !sr.Default || len(sr.Named) > 0 {
		return issue{}, invalidScope(CodeClientCredentialScope, "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", sanitize(req.Scope))
	}
	// Client-credential responses carry no scope: MSAL then treats every scope as granted.
	return issue{Subject: subject{App: *app}, Tenant: d.TenantID, Scope: sr}, nil
}

// decidePassword answers grant_type=password (ROPC).
func decidePassword(d *Directory, req tokenRequest) (issue, *aadError) {
	app, aerr := authenticateClient(d, req)
	if aerr != nil {
		return issue{}, aerr
	}
	switch {
	case req.Username == "":
		return issue{}, missingParameter("username")
	case req.Password == "":
		return issue{}, missingParameter("password")
	case req.Scope == "":
		return issue{}, missingParameter("scope")
	}
	sr, aerr := parseScope(req.Scope)
	if aerr != nil {
		return issue{}, aerr
	}
	u := d.user(req.Username)
	if u == nil {
		return issue{}, invalidGrant(CodeUserNotFound, "User account '{EUII Hidden}' from identity provider 'https://localhost/%s/' does not exist in tenant '%s' and cannot access the application '%s'(%s) in that tenant. The account needs to be added as an external user in the tenant first.", d.TenantID, d.TenantID, app.ClientID, app.DisplayName)
	}
	if subtle.ConstantTimeCompare([]byte(req.Password), []byte(u.Password)) != 1 || u.Password == "" {
		return issue{}, invalidGrant(CodeInvalidPassword, "Error validating credentials due to invalid username or password.")
	}
	if aerr := signInBlocked(u, false, sr); aerr != nil {
		return issue{}, aerr
	}
	return userIssue(d, app, u, sr, req, false), nil
}

// decideRefresh answers grant_type=refresh_token. rec is nil when the token is unknown.
func decideRefresh(d *Directory, rec *refreshRecord, req tokenRequest, now time.Time) (issue, *aadError) {
	app, aerr := authenticateClient(d, req)
	if aerr != nil {
		return issue{}, aerr
	}
	if req.RefreshToken == "" {
		return issue{}, missingParameter("refresh_token")
	}
	if req.Scope == "" {
		return issue{}, missingParameter("scope")
	}
	sr, aerr := parseScope(req.Scope)
	if aerr != nil {
		return issue{}, aerr
	}
	if rec == nil {
		return issue{}, invalidGrant(CodeMalformedRequest, "Invalid request. Request is malformed or invalid.")
	}
	if rec.ClientID != app.ClientID {
		return issue{}, invalidGrant(CodeInvalidGrant, "Provided grant is invalid or malformed. The refresh token was issued to a different client.")
	}
	u := d.userByOID(rec.UserOID)
	if u == nil {
		return issue{}, invalidGrant(CodeUserNotFound, "The user account does not exist in the %s directory.", d.TenantID)
	}
	if u.Disabled {
		return issue{}, invalidGrant(CodeUserDisabled, "The user account is disabled.")
	}
	if rec.Revoked {
		return issue{}, invalidGrant(CodeRefreshTokenRevoked, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s'.", rec.Issued.UTC().Format(time.RFC3339))
	}
	if rec.Expired || !now.Before(rec.Expires) {
		return issue{}, invalidGrant(CodeRefreshTokenExpired, "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %s.", rec.Issued.UTC().Format(time.RFC3339), now.Sub(rec.Issued).Round(time.Second))
	}
	if aerr := signInBlocked(u, rec.MFA, sr); aerr != nil {
		return issue{}, aerr
	}
	return userIssue(d, app, u, sr, req, rec.MFA), nil
}

// decideDeviceCode answers grant_type=device_code. auth is nil when the code is unknown.
func decideDeviceCode(d *Directory, auth *deviceAuth, req tokenRequest, now time.Time) (issue, *aadError) {
	app, aerr := authenticateClient(d, req)
	if aerr != nil {
		return issue{}, aerr
	}
	if req.DeviceCode == "" {
		return issue{}, missingParameter("device_code")
	}
	if auth == nil || auth.ClientID != app.ClientID || auth.Status == deviceRedeemed {
		return issue{}, &aadError{Status: http.StatusBadRequest, Err: "bad_verification_code", Code: CodeInvalidGrant,
			Description: "The device_code sent to the token endpoint wasn't recognized."}
	}
	if !now.Before(auth.Expires) {
		return issue{}, &aadError{Status: http.StatusBadRequest, Err: "expired_token", Code: CodeDeviceCodeExpired,
			Description: "Verification code expired. Have the user retry the sign-in."}
	}
	switch auth.Status {
	case devicePending:
		return issue{}, &aadError{Status: http.StatusBadRequest, Err: "authorization_pending", Code: CodeAuthorizationPending,
			Description: "OAuth 2.0 device flow error. Authorization is pending. Continue polling."}
	case deviceDenied:
		return issue{}, &aadError{Status: http.StatusBadRequest, Err: "authorization_declined", Code: CodeInvalidGrant,
			Description: "The end user denied the authorization request."}
	}
	return browserSignIn(d, app, req, auth.UserOID, auth.Scope)
}

// browserSignIn issues the tokens of a sign-in a person completed at a browser (a
// device code approved, an authorization code granted): the user it named, the scopes
// the token request asks for or else those of the sign-in, MFA satisfied there.
func browserSignIn(d *Directory, app *AppRegistration, req tokenRequest, userOID, signInScope string) (issue, *aadError) {
	u := d.userByOID(userOID)
	if u == nil {
		return issue{}, invalidGrant(CodeUserNotFound, "The user account does not exist in the %s directory.", d.TenantID)
	}
	scope := req.Scope
	if scope == "" {
		scope = signInScope
	}
	sr, aerr := parseScope(scope)
	if aerr != nil {
		return issue{}, aerr
	}
	if aerr := signInBlocked(u, true, sr); aerr != nil {
		return issue{}, aerr
	}
	return userIssue(d, app, u, sr, req, true), nil
}

// decideDeviceCodeStart answers the device authorization request.
func decideDeviceCodeStart(d *Directory, req deviceCodeRequest) (scopeRequest, *aadError) {
	if d.app(req.ClientID) == nil {
		return scopeRequest{}, appNotFound(sanitize(req.ClientID), d.TenantID)
	}
	return parseScope(req.Scope)
}

// signInBlocked applies the account conditions every user sign-in checks.
func signInBlocked(u *User, mfaDone bool, sr scopeRequest) *aadError {
	if u.Disabled {
		return invalidGrant(CodeUserDisabled, "The user account is disabled.")
	}
	if u.RequiresMFA && !mfaDone {
		e := invalidGrant(CodeMFARequired, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", sanitize(sr.audience()))
		e.Suberror = "basic_action"
		return e
	}
	return nil
}

// userIssue copies the user and app so signing can happen after the lock is released.
func userIssue(d *Directory, app *AppRegistration, u *User, sr scopeRequest, req tokenRequest, mfa bool) issue {
	uc := *u
	return issue{
		Subject:      subject{User: &uc, App: *app},
		Tenant:       d.TenantID,
		Scope:        sr,
		IDToken:      sr.OpenID,
		ClientInfo:   req.ClientInfo,
		RefreshToken: sr.Offline,
		EchoScope:    true,
		MFA:          mfa,
	}
}
