package entra

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func FuzzTokenForm(f *testing.F) {
	f.Add(formType, "grant_type=password&client_id="+publicID+"&username=svc%40contoso.localhost&password=p&scope="+url.QueryEscape(adoScope+" openid offline_access profile")+"&client_info=1")
	f.Add(formType, "grant_type=client_credentials&client_id="+confidentialID+"&client_secret=s&scope=https%3A%2F%2Fvault.localhost%3A8443%2F.default&claims=%7B%22access_token%22%3A%7B%22xms_cc%22%3A%7B%22values%22%3A%5B%22CP1%22%5D%7D%7D%7D")
	f.Add(formType, "grant_type=device_code&device_code=abc&client_id=x&grant_type=password")
	f.Add("application/json", `{"grant_type":"password"}`)
	f.Add(formType, "grant_type=refresh_token&client_id=%zz")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		req, aerr := decodeTokenForm(contentType, []byte(body))
		if aerr != nil {
			checkAADError(t, aerr)
			return
		}
		if req.GrantType == "" || req.ClientID == "" {
			t.Errorf("accepted a request without grant_type (%q) or client_id (%q)", req.GrantType, req.ClientID)
		}
		// Whatever was accepted must flow through a decision without panicking.
		d, _ := fixtureDirectory().normalize()
		_, _ = decidePassword(&d, req)
		_, _ = decideClientCredentials(&d, req)
		_, _ = decideRefresh(&d, nil, req, time.Now())
		_, _ = decideDeviceCode(&d, nil, req, time.Now())
	})
}

func FuzzDeviceCodeForm(f *testing.F) {
	f.Add(formType, "client_id="+publicID+"&scope="+url.QueryEscape(adoScope+" openid offline_access profile"))
	f.Add(formType, "client_id="+publicID+"&scope=&claims=%7B")
	f.Add("text/plain", "client_id=x&scope=y")
	f.Add(formType, "client_id=a&client_id=b&scope=c")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		req, aerr := decodeDeviceCodeForm(contentType, []byte(body))
		if aerr != nil {
			checkAADError(t, aerr)
			return
		}
		if req.ClientID == "" || strings.TrimSpace(req.Scope) == "" {
			t.Errorf("accepted a request without client_id (%q) or scope (%q)", req.ClientID, req.Scope)
		}
		d, _ := fixtureDirectory().normalize()
		if _, aerr := decideDeviceCodeStart(&d, req); aerr != nil {
			checkAADError(t, aerr)
		}
	})
}

func FuzzApprovalForm(f *testing.F) {
	f.Add(formType, "user_code=abcd-efgh1&username=svc%40contoso.localhost&password=p&action=approve")
	f.Add(formType, "user_code=X&action=deny")
	f.Add(formType, "username=svc")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		form, err := decodeApprovalForm(contentType, []byte(body))
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error")
			}
			return
		}
		if form.UserCode == "" || form.UserCode != normalizeUserCode(form.UserCode) || (!form.Deny && form.Username == "") {
			t.Errorf("accepted code %q user %q deny=%v", form.UserCode, form.Username, form.Deny)
		}
	})
}

func FuzzMSIRequest(f *testing.F) {
	f.Add("GET", "api-version=2019-08-01&resource=https%3A%2F%2Fvault.localhost%3A8443", "h")
	f.Add("GET", "api-version=2019-08-01&resource=r&client_id=a&mi_res_id=b", "h")
	f.Add("POST", "api-version=2017-09-01&resource=r", "")
	f.Fuzz(func(t *testing.T, method, rawQuery, header string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return // net/http hands the handler a parsed query; unparsable ones never arrive
		}
		req, merr := decodeMSIRequest(method, q, header, "h")
		if merr != nil {
			if merr.Status < 400 || merr.Message == "" || strings.ContainsAny(merr.Message, "\x00\r\n") {
				t.Errorf("bad error %+v", merr)
			}
			return
		}
		if method != http.MethodGet || header != "h" || req.Resource == "" {
			t.Errorf("accepted %s %q (header matched: %v)", method, rawQuery, header == "h")
		}
		d, _ := fixtureDirectory().normalize()
		_, _ = decideMSI(&d, req)
	})
}

// FuzzRequestedClaims: any claims parameter is read without panicking, and a requested
// nbf never makes a token valid later than now.
func FuzzRequestedClaims(f *testing.F) {
	f.Add(`{"access_token":{"xms_cc":{"values":["cp1"]}}}`)
	f.Add(`{"access_token":{"nbf":{"essential":true,"value":"1700000000"},"xms_caeerror":{"value":"10012"}}}`)
	f.Add(`{"access_token":{"nbf":{"value":99999999999}}}`)
	f.Add(`{"access_token":[]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		now := time.Unix(1800000000, 0)
		c := jwt.MapClaims{"nbf": now.Add(-5 * time.Minute).Unix()}
		applyRequestedClaims(c, parseRequestedClaims(raw), now)
		if nbf, _ := c["nbf"].(int64); nbf > now.Unix() {
			t.Fatalf("nbf %d after now %d for %q", nbf, now.Unix(), raw)
		}
	})
}
