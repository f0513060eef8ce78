package entra

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/patrol-dev/patrol/internal/local/emulator/authn"
)

// TestApprovalPageCompletesADeviceSignIn drives the page the way a person would: open
// the verification URI, submit the code with a wrong password, then the right one.
func TestApprovalPageCompletesADeviceSignIn(t *testing.T) {
	e := start(t)
	pc := e.publicClient(t, publicID, e.em.Authority(), nil)
	dc, err := pc.AcquireTokenByDeviceCode(ctx(t), []string{adoScope})
	must(t, err)
	code := dc.Result.UserCode

	resp, err := e.http.Get(dc.Result.VerificationURL + "?code=" + url.QueryEscape(strings.ToLower(code)))
	must(t, err)
	page := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="`+code+`"`) || !strings.Contains(page, svcUPN) || strings.Contains(page, disabledUPN) {
		t.Fatalf("GET page: %d; want the code prefilled and enabled users offered", resp.StatusCode)
	}

	post := func(form url.Values) (int, string) {
		t.Helper()
		resp, err := e.http.PostForm(e.em.VerificationURI(), form)
		must(t, err)
		defer resp.Body.Close()
		return resp.StatusCode, readAll(t, resp.Body)
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		says   string
	}{
		{"a wrong password is refused with AADSTS50126", url.Values{"user_code": {code}, "username": {svcUPN}, "password": {"wrong"}, "action": {"approve"}}, 400, "AADSTS50126"},
		{"a disabled account is refused with AADSTS50057", url.Values{"user_code": {code}, "username": {disabledUPN}, "password": {svcPassword}, "action": {"approve"}}, 400, "AADSTS50057"},
		{"an unknown code is refused", url.Values{"user_code": {"NOTACODE1"}, "username": {svcUPN}, "password": {svcPassword}, "action": {"approve"}}, 400, "didn&#39;t work"},
		{"a missing code is refused", url.Values{"username": {svcUPN}}, 400, "enter the code"},
		{"the right password approves the sign-in", url.Values{"user_code": {code}, "username": {svcUPN}, "password": {svcPassword}, "action": {"approve"}}, 200, "signed in as " + svcUPN},
		{"a completed code cannot be approved again", url.Values{"user_code": {code}, "username": {svcUPN}, "password": {svcPassword}, "action": {"approve"}}, 400, "didn&#39;t work"},
	}
	for _, tc := range tests {
		status, body := post(tc.form)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: status %d, page says %q? (want %d)", tc.name, status, tc.says, tc.status)
		}
		if strings.Contains(body, svcPassword) {
			t.Errorf("%s: the page repeats the password", tc.name)
		}
	}

	ar, err := dc.AuthenticationResult(ctx(t))
	must(t, err)
	var p authn.Principal
	if p, err = e.em.Verifier().Verify(ar.AccessToken); err != nil || p.UPN != svcUPN {
		t.Errorf("principal %+v, %v; want svc", p, err)
	}
}

func TestApprovalPageDenies(t *testing.T) {
	e := start(t)
	pc := e.publicClient(t, publicID, e.em.Authority(), nil)
	dc, err := pc.AcquireTokenByDeviceCode(ctx(t), []string{adoScope})
	must(t, err)
	resp, err := e.http.PostForm(e.em.VerificationURI(), url.Values{"user_code": {dc.Result.UserCode}, "action": {"deny"}})
	must(t, err)
	resp.Body.Close()
	_, err = dc.AuthenticationResult(ctx(t))
	if w := aadFrom(t, err); w.Body.Error != "authorization_declined" {
		t.Errorf("error %q, want authorization_declined", w.Body.Error)
	}
}
