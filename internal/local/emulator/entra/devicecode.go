package entra

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Errors from ApproveDeviceCode and DenyDeviceCode.
var (
	ErrUnknownUserCode   = errors.New("no device sign-in has this user code")
	ErrDeviceCodeExpired = errors.New("the device code has expired")
	ErrDeviceCodeDone    = errors.New("the device sign-in was already completed")
	ErrUnknownUser       = errors.New("no such user")
)

// deviceCodeResponse is the device authorization response MSAL reads (§5.4).
type deviceCodeResponse struct {
	UserCode        string `json:"user_code"`
	DeviceCode      string `json:"device_code"`
	VerificationURI string `json:"verification_uri"`
	ExpiresIn       int64  `json:"expires_in"`
	Interval        int    `json:"interval"`
	Message         string `json:"message"`
}

// DeviceSignIn describes a device-code sign-in waiting for a person (no device code: it
// is a credential).
type DeviceSignIn struct {
	UserCode  string    `json:"userCode"`
	ClientID  string    `json:"clientId"`
	Scope     string    `json:"scope"`
	ExpiresOn time.Time `json:"expiresOn"`
}

// VerificationURI is the approval page a device-code message sends people to.
func (e *Emulator) VerificationURI() string { return "https://" + e.host + "/devicelogin" }

func (e *Emulator) serveDeviceCode(w http.ResponseWriter, r *http.Request) {
	body, ok := e.formBody(w, r)
	if !ok {
		return
	}
	req, aerr := decodeDeviceCodeForm(r.Header.Get("Content-Type"), body)
	if aerr != nil {
		e.writeAAD(w, r, aerr)
		return
	}
	setPrincipal(r, req.ClientID)
	now := e.clock.Now()
	deviceCode := randomToken(48)

	e.mu.Lock()
	_, aerr = decideDeviceCodeStart(&e.dir, req)
	var userCode string
	if aerr == nil {
		e.purgeDevicesLocked(now)
		for userCode = newUserCode(); ; userCode = newUserCode() {
			if _, taken := e.userCodes[userCode]; !taken {
				break
			}
		}
		h := tokenHash(deviceCode)
		e.devices[h] = &deviceAuth{ClientID: strings.ToLower(req.ClientID), Scope: req.Scope, UserCode: userCode,
			Issued: now, Expires: now.Add(e.dcLifetime)}
		e.userCodes[userCode] = h
	}
	e.mu.Unlock()

	if aerr != nil {
		e.writeAAD(w, r, aerr)
		return
	}
	uri := e.VerificationURI()
	writeJSON(w, http.StatusOK, deviceCodeResponse{
		UserCode: userCode, DeviceCode: deviceCode, VerificationURI: uri,
		ExpiresIn: int64(e.dcLifetime / time.Second), Interval: 5,
		Message: fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", uri, userCode),
	})
}

// purgeDevicesLocked forgets sign-ins an hour past expiry, so a long-running local stack
// does not grow without bound.
func (e *Emulator) purgeDevicesLocked(now time.Time) {
	for h, a := range e.devices {
		if now.After(a.Expires.Add(time.Hour)) {
			delete(e.devices, h)
			delete(e.userCodes, a.UserCode)
		}
	}
}

// userCodeAlphabet leaves out letters and digits people confuse (0/O, 1/I).
const userCodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newUserCode returns a nine-character code like Entra's ("FJ8B3NP4L").
func newUserCode() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)]
	}
	return string(b)
}

// normalizeUserCode accepts what a person types: any case, spaces or dashes.
func normalizeUserCode(c string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.ToUpper(strings.TrimSpace(c)))
}

// PendingDeviceSignIns lists the device-code sign-ins waiting for approval, oldest first.
func (e *Emulator) PendingDeviceSignIns() []DeviceSignIn {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []DeviceSignIn
	for _, a := range e.devices {
		if a.Status == devicePending && now.Before(a.Expires) {
			out = append(out, DeviceSignIn{UserCode: a.UserCode, ClientID: a.ClientID, Scope: a.Scope, ExpiresOn: a.Expires})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ExpiresOn.Before(out[j].ExpiresOn) })
	return out
}

// ApproveDeviceCode completes a device-code sign-in as upn, as a person at the approval
// page would (MFA counts as done). Account conditions are applied when the client next
// polls: a disabled user then gets AADSTS50057.
func (e *Emulator) ApproveDeviceCode(userCode, upn string) error {
	return e.completeDevice(userCode, func(a *deviceAuth) error {
		u := e.dir.user(upn)
		if u == nil {
			return fmt.Errorf("%w: %q", ErrUnknownUser, upn)
		}
		a.Status, a.UserOID = deviceApproved, u.ObjectID
		return nil
	})
}

// DenyDeviceCode declines a device-code sign-in: the client's next poll gets
// authorization_declined.
func (e *Emulator) DenyDeviceCode(userCode string) error {
	return e.completeDevice(userCode, func(a *deviceAuth) error {
		a.Status = deviceDenied
		return nil
	})
}

func (e *Emulator) completeDevice(userCode string, complete func(*deviceAuth) error) error {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := e.pendingLocked(userCode, now)
	if err == nil {
		err = complete(a)
	}
	if err != nil {
		return fmt.Errorf("entra: device code %s: %w", sanitize(userCode), err)
	}
	return nil
}

func (e *Emulator) pendingLocked(userCode string, now time.Time) (*deviceAuth, error) {
	h, ok := e.userCodes[normalizeUserCode(userCode)]
	if !ok {
		return nil, ErrUnknownUserCode
	}
	a := e.devices[h]
	switch {
	case !now.Before(a.Expires):
		return nil, ErrDeviceCodeExpired
	case a.Status != devicePending:
		return nil, ErrDeviceCodeDone
	}
	return a, nil
}

// decideApproval checks what a person entered on the approval page. It returns the user
// to approve as, or the message to show (Entra's wording for the same failures).
func decideApproval(d *Directory, f approvalForm) (*User, string) {
	u := d.user(f.Username)
	if u == nil {
		return nil, fmt.Sprintf("AADSTS%d: This username may be incorrect. Make sure you typed it correctly.", CodeUserNotFound)
	}
	if u.Password == "" || subtle.ConstantTimeCompare([]byte(f.Password), []byte(u.Password)) != 1 {
		return nil, fmt.Sprintf("AADSTS%d: Your account or password is incorrect.", CodeInvalidPassword)
	}
	if u.Disabled {
		return nil, fmt.Sprintf("AADSTS%d: Your account has been locked. Contact your support person to unlock it, then try again.", CodeUserDisabled)
	}
	return u, ""
}

// pageData feeds the sign-in page template. Ctx is set when the page serves an
// authorization request (authorize.go) rather than a device code.
type pageData struct {
	Code    string
	User    string
	Users   []string
	Error   string
	Done    string
	Pending []DeviceSignIn
	Ctx     string
	App     string
	Scope   string
}

var approvalPage = template.Must(template.New("devicelogin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account (Entra ID emulator)</title>
<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto}label{display:block;margin:.8rem 0 .2rem}
input{width:100%;padding:.4rem}.err{color:#a00}.ok{color:#060}button{margin:1rem .5rem 0 0;padding:.4rem 1rem}</style></head>
<body>{{if .Ctx}}<h1>Sign in</h1>
<p>Local Entra ID emulator: sign in to {{.App}} ({{.Scope}}). Multi-factor authentication counts as done here.</p>
{{else}}<h1>Enter code</h1>
<p>Local Entra ID emulator: approve a device sign-in. Multi-factor authentication counts as done here.</p>
{{end}}{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
{{if .Done}}<p class="ok">{{.Done}}</p>{{end}}
{{if .Ctx}}<form method="post" action="/devicelogin?ctx={{.Ctx}}" autocomplete="off">
{{else}}<form method="post" action="/devicelogin" autocomplete="off">
<label for="user_code">Code</label><input id="user_code" name="user_code" value="{{.Code}}" required>
{{end}}<label for="username">Account</label><input id="username" name="username" list="users" value="{{.User}}">
<datalist id="users">{{range .Users}}<option value="{{.}}">{{end}}</datalist>
<label for="password">Password</label><input id="password" name="password" type="password">
<button name="action" value="approve">Sign in</button><button name="action" value="deny">{{if .Ctx}}Cancel{{else}}Deny{{end}}</button>
</form>
{{if and .Pending (not .Ctx)}}<h2>Waiting</h2><ul>{{range .Pending}}<li>{{.UserCode}} for app {{.ClientID}} ({{.Scope}})</li>{{end}}</ul>{{end}}
</body></html>
`))

// serveDeviceLogin is the sign-in page: a person approves a device-code sign-in, or
// (with ?ctx=, see authorize.go) signs in for an authorization request.
func (e *Emulator) serveDeviceLogin(w http.ResponseWriter, r *http.Request) {
	data := pageData{Code: normalizeUserCode(r.URL.Query().Get("code"))}
	status := http.StatusOK
	ctxID := r.URL.Query().Get("ctx")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if ctxID != "" && !e.signInFor(ctxID, &data) {
			data.Error, status = "This sign-in page has expired. Go back to the application and sign in again.", http.StatusBadRequest
		}
	case http.MethodPost:
		if ctxID != "" {
			e.serveBrowserSignIn(w, r, ctxID)
			return
		}
		status = e.handleApproval(r, &data)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	e.writeSignInPage(w, &data, status)
}

// writeSignInPage renders the sign-in page with the accounts a person may pick.
func (e *Emulator) writeSignInPage(w http.ResponseWriter, data *pageData, status int) {
	e.mu.Lock()
	for _, u := range e.dir.Users {
		if !u.Disabled {
			data.Users = append(data.Users, u.UPN)
		}
	}
	e.mu.Unlock()
	data.Pending = e.PendingDeviceSignIns()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = approvalPage.Execute(w, data) // the browser may have gone; nothing to tell it
}

// handleApproval applies a submitted form and returns the page's status.
func (e *Emulator) handleApproval(r *http.Request, data *pageData) int {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil {
		data.Error = "The form could not be read."
		return http.StatusBadRequest
	}
	f, err := decodeApprovalForm(r.Header.Get("Content-Type"), body)
	if err != nil {
		data.Error = "Check the form: " + err.Error() + "."
		return http.StatusBadRequest
	}
	data.Code, data.User = f.UserCode, f.Username
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := e.pendingLocked(f.UserCode, now)
	switch {
	case errors.Is(err, ErrDeviceCodeExpired):
		data.Error = fmt.Sprintf("AADSTS%d: The code you entered has expired. Get a new code from the device you're trying to sign in to and try again.", CodeDeviceCodeExpired)
		return http.StatusBadRequest
	case err != nil:
		data.Error = "That code didn't work. Check the code and try again."
		return http.StatusBadRequest
	}
	if f.Deny {
		a.Status = deviceDenied
		data.Done, data.Code = "Sign-in declined. You can close this window.", ""
		return http.StatusOK
	}
	u, msg := decideApproval(&e.dir, f)
	if u == nil {
		data.Error = msg
		return http.StatusBadRequest
	}
	setPrincipal(r, u.UPN)
	a.Status, a.UserOID = deviceApproved, u.ObjectID
	data.Done, data.Code = fmt.Sprintf("You have signed in as %s on your device. You can close this window.", u.UPN), ""
	return http.StatusOK
}
