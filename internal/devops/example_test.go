package devops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	entraemu "github.com/patrol-dev/patrol/internal/local/emulator/entra"
	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
	"github.com/patrol-dev/patrol/internal/localtrust"
)

// Create a PAT for a service account against the Azure DevOps emulator, with the Entra
// emulator issuing the service account's user token, both over TLS from one local CA
// and on one manual clock, so the output below is the same on every run.
func ExampleClient_CreatePAT() {
	const (
		tenant    = "8e4a6f1d-2b7c-4d3e-9f10-a1b2c3d4e5f6"
		publicApp = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f" // the app service accounts sign in with
		svcOID    = "aaaaaaaa-0000-4000-8000-000000000001"
		svcUPN    = "svc-build@contoso.localhost"
		svcPass   = "correct horse battery staple"
		org       = "contoso"
	)
	ctx := context.Background()
	ca, err := tlsca.New()
	if err != nil {
		log.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))

	entra, err := entraemu.New(entraemu.Options{CA: ca, Clock: clk, Directory: entraemu.Directory{
		TenantID: tenant,
		AppRegistrations: []entraemu.AppRegistration{{ClientID: publicApp, PublicClient: true, DisplayName: "patrol",
			Consent: entraemu.Consent{devopsemu.ResourceID: {devopsemu.ScopePATs, devopsemu.ScopePATsManage, devopsemu.ScopeTokenAdminister}}}},
		Users: []entraemu.User{{UPN: svcUPN, Password: svcPass, ObjectID: svcOID}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	if err := entra.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer entra.Close()

	tlsConf, err := ca.ServerTLSConfig()
	if err != nil {
		log.Fatal(err)
	}
	ado, err := devopsemu.New(devopsemu.Options{Verifier: entra.Verifier(), Clock: clk, TLS: tlsConf})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ado.AddOrganization(devopsemu.Organization{Name: org, TenantID: tenant}); err != nil {
		log.Fatal(err)
	}
	if _, err := ado.AddUser(org, devopsemu.User{ObjectID: svcOID, UPN: svcUPN, DisplayName: "Build service account"}); err != nil {
		log.Fatal(err)
	}
	if err := ado.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer ado.Close()

	hc, err := localtrust.NewClient(ca.CertPEM())
	if err != nil {
		log.Fatal(err)
	}
	// The service account signs in with its password (ROPC); patrol's identity package
	// does the same through MSAL.
	token := func(ctx context.Context) (string, error) {
		form := url.Values{"grant_type": {"password"}, "client_id": {publicApp}, "username": {svcUPN},
			"password": {svcPass}, "scope": {"499b84ac-1321-427f-aa17-267ca6975798/.default"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, entra.Authority()+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.AccessToken == "" {
			return "", fmt.Errorf("sign-in: HTTP %d: %v", res.StatusCode, err)
		}
		return body.AccessToken, nil
	}

	client, err := devops.NewClient(devops.Options{BaseURL: ado.URL(), HTTPClient: hc, Token: token})
	if err != nil {
		log.Fatal(err)
	}
	pat, err := client.CreatePAT(ctx, org, devops.CreateRequest{
		DisplayName: "nightly-build", Scope: "vso.code", ValidTo: clk.Now().Add(90 * 24 * time.Hour),
	})
	if err != nil {
		log.Fatal(err)
	}
	// The value is a devops.Secret: printing it shows no token.
	fmt.Printf("%s (%s) valid to %s, token %v\n", pat.DisplayName, pat.Scope, pat.ValidTo.Format(time.DateOnly), pat.Token)
	user, err := client.VerifyPAT(ctx, org, pat.Token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the PAT authenticates as", user.DisplayName)
	// Output:
	// nightly-build (vso.code) valid to 2027-02-25, token [REDACTED]
	// the PAT authenticates as Build service account
}
