package entra

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// appServiceAPIVersion is the only api-version MSAL's App Service source sends.
const appServiceAPIVersion = "2019-08-01"

// miSelector is which managed identity an MSI request asks for; all empty means the
// system-assigned one.
type miSelector struct {
	ClientID   string
	ObjectID   string
	ResourceID string
}

// msiRequest is a decoded App Service managed-identity token request.
type msiRequest struct {
	Resource string
	Selector miSelector
}

// msiError is the App Service identity endpoint's error shape.
type msiError struct {
	Status  int
	Message string
}

type msiErrorBody struct {
	StatusCode    int    `json:"statusCode"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
}

// msiTokenResponse is what MSAL's App Service source parses (protocols.md §6.3):
// expires_on is unix seconds as a string.
type msiTokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

// decodeMSIRequest checks an App Service style request: GET, the shared secret header,
// api-version=2019-08-01, a resource, and at most one identity selector (client_id,
// object_id/principal_id, mi_res_id/msi_res_id).
func decodeMSIRequest(method string, query url.Values, header, wantHeader string) (msiRequest, *msiError) {
	if method != http.MethodGet {
		return msiRequest{}, &msiError{http.StatusMethodNotAllowed, "The managed identity endpoint accepts GET only."}
	}
	if header == "" || subtle.ConstantTimeCompare([]byte(header), []byte(wantHeader)) != 1 {
		return msiRequest{}, &msiError{http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER."}
	}
	for k, vs := range query {
		if len(vs) > 1 {
			return msiRequest{}, &msiError{http.StatusBadRequest, fmt.Sprintf("The query parameter '%s' appears more than once.", sanitize(k))}
		}
	}
	if v := query.Get("api-version"); v != appServiceAPIVersion {
		return msiRequest{}, &msiError{http.StatusBadRequest, fmt.Sprintf("The api-version '%s' is not supported; use %s.", sanitize(v), appServiceAPIVersion)}
	}
	req := msiRequest{Resource: strings.TrimSuffix(query.Get("resource"), "/.default")}
	if req.Resource == "" {
		return msiRequest{}, &msiError{http.StatusBadRequest, "Required query variable 'resource' is missing."}
	}
	var named []string
	pick := func(dst *string, keys ...string) {
		for _, k := range keys {
			if v := query.Get(k); v != "" {
				*dst = v
				named = append(named, k)
			}
		}
	}
	pick(&req.Selector.ClientID, "client_id")
	pick(&req.Selector.ObjectID, "object_id", "principal_id")
	pick(&req.Selector.ResourceID, "mi_res_id", "msi_res_id")
	if len(named) > 1 {
		return msiRequest{}, &msiError{http.StatusBadRequest, fmt.Sprintf("Only one of client_id, object_id, principal_id, mi_res_id may be given, not %s.", strings.Join(named, " and "))}
	}
	return req, nil
}

// decideMSI picks the identity and the token to issue.
func decideMSI(d *Directory, req msiRequest) (issue, *msiError) {
	var app *AppRegistration
	if req.Selector == (miSelector{}) {
		if d.SystemAssignedIdentity == "" {
			return issue{}, &msiError{http.StatusBadRequest, "No system-assigned managed identity is enabled for this app."}
		}
		app = d.app(d.SystemAssignedIdentity)
	} else {
		app = d.managedIdentity(req.Selector)
	}
	if app == nil {
		return issue{}, &msiError{http.StatusBadRequest, "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."}
	}
	return issue{Subject: subject{App: *app}, Tenant: d.TenantID, Scope: scopeRequest{Raw: req.Resource, Resource: req.Resource, Default: true},
		MIResourceID: app.ResourceID}, nil
}

// ManagedIdentityHandler is the App Service style managed-identity endpoint
// (IDENTITY_ENDPOINT): GET ?api-version=2019-08-01&resource=… with X-IDENTITY-HEADER equal
// to identityHeader (IDENTITY_HEADER). It answers on any path, so a host may mount it
// where it likes. azidentity.ManagedIdentityCredential uses it unchanged; plain HTTP on
// loopback is what App Service does too.
func (e *Emulator) ManagedIdentityHandler(identityHeader string) (http.Handler, error) {
	if identityHeader == "" {
		return nil, errors.New("entra: managed identity: the identity header must not be empty")
	}
	return e.op("msi", writeMSIFault, func(w http.ResponseWriter, r *http.Request) {
		req, merr := decodeMSIRequest(r.Method, r.URL.Query(), r.Header.Get("X-IDENTITY-HEADER"), identityHeader)
		if merr != nil {
			writeMSIError(w, merr)
			return
		}
		e.mu.Lock()
		is, merr := decideMSI(&e.dir, req)
		e.mu.Unlock()
		if merr != nil {
			writeMSIError(w, merr)
			return
		}
		setPrincipal(r, is.Subject.App.ClientID)
		now := e.clock.Now()
		is.Lifetime = e.atLifetime
		at, err := e.signer.sign(accessClaims(is, e.issuer(), now))
		if err != nil {
			e.log.Error("entra: sign managed identity token", "err", err)
			writeMSIError(w, &msiError{http.StatusInternalServerError, "The token could not be issued."})
			return
		}
		writeJSON(w, http.StatusOK, msiTokenResponse{
			AccessToken: at, ExpiresOn: strconv.FormatInt(now.Add(is.Lifetime).Unix(), 10),
			Resource: req.Resource, TokenType: "Bearer", ClientID: is.Subject.App.ClientID,
		})
	}), nil
}

func writeMSIError(w http.ResponseWriter, m *msiError) {
	if m.Status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodGet)
	}
	writeJSON(w, m.Status, msiErrorBody{StatusCode: m.Status, Message: m.Message, CorrelationID: uuid.NewString()})
}

func writeMSIFault(w http.ResponseWriter, _ *http.Request, status int) {
	writeMSIError(w, &msiError{status, http.StatusText(status)})
}

// ManagedIdentityServer serves ManagedIdentityHandler on a plain-HTTP loopback listener.
type ManagedIdentityServer struct {
	// Endpoint is the IDENTITY_ENDPOINT value, http://127.0.0.1:PORT/msi/token.
	Endpoint string
	// Header is the IDENTITY_HEADER value.
	Header string
	srv    *http.Server
}

// StartManagedIdentity serves the managed-identity endpoint on 127.0.0.1 (addr, default
// "127.0.0.1:0"). identityHeader is the shared secret; empty means a random one. Close
// the emulator or the server to stop it.
func (e *Emulator) StartManagedIdentity(addr, identityHeader string) (*ManagedIdentityServer, error) {
	if identityHeader == "" {
		identityHeader = randomToken(24)
	}
	h, err := e.ManagedIdentityHandler(identityHeader)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("entra: managed identity: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/msi/token", h)
	s := &ManagedIdentityServer{
		Endpoint: "http://" + l.Addr().String() + "/msi/token",
		Header:   identityHeader,
		srv:      &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
	}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("entra: managed identity: serve", "err", err)
		}
	}()
	e.msiMu.Lock()
	e.msiSrvs = append(e.msiSrvs, s)
	e.msiMu.Unlock()
	return s, nil
}

// Env returns the variables that point azidentity.ManagedIdentityCredential at s.
func (s *ManagedIdentityServer) Env() map[string]string {
	return map[string]string{"IDENTITY_ENDPOINT": s.Endpoint, "IDENTITY_HEADER": s.Header}
}

// Close stops the server.
func (s *ManagedIdentityServer) Close() error { return s.srv.Close() }
