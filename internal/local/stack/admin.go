package stack

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/local/emulator/journal"
)

// ServeAdmin starts the inspection and control API on a plain-HTTP loopback address and
// returns its base URL. It exposes what tests get from the Go API to people and scripts:
//
//	GET  /                          endpoints
//	GET  /clock                     the emulated time
//	POST /clock/advance?by=720h     move the emulated time ahead (runs due timers)
//	GET  /journal/{emulator}        requests seen (entra, keyvault, devops)
//	GET|PUT|DELETE /faults/{emulator}/{operation}   fault rules (entra, keyvault, devops, servicebus)
//	GET  /devops/pats?org=contoso   PATs with status, never values
//	GET  /keyvault/secrets?vault=patrol             secrets and current versions, never values
//	                                                (vault=patrol-identity: the token caches)
//	GET  /servicebus/entities       message counts per entity
//	POST /entra/approve?code=X&upn=Y                complete a device-code sign-in
//	POST /sessions/revoke?upn=Y     "revoke sessions": CAE challenges and no refresh
//
// It moves time, injects faults and approves sign-ins, so a web page the operator
// happens to visit must not reach it (DNS rebinding, a cross-site form post), nor another
// local user: every request must name the listener in Host (127.0.0.1, localhost or
// [::1] with its port), carry no foreign Origin or Sec-Fetch-Site, and present the
// per-run token (AdminToken, PATROL_LOCAL_ADMIN_TOKEN in patrol.env) as
// "Authorization: Bearer <token>".
func (s *Stack) ServeAdmin(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("stack: admin API: %w", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	s.admin = &http.Server{Handler: adminGuard(port, s.AdminToken, s.adminHandler()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("admin API stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// AdminTokenSetting names the admin API's token in patrol.env.
const AdminTokenSetting = config.LocalAdminToken

// adminGuard admits a request only when it is addressed to this loopback listener, is
// not cross-origin, and carries the token.
func adminGuard(port, token string, next http.Handler) http.Handler {
	hosts := map[string]bool{}
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
		hosts[h+":"+port] = true
	}
	deny := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts[strings.ToLower(r.Host)] {
			deny(w, http.StatusMisdirectedRequest, "Host must be 127.0.0.1:"+port+" or localhost:"+port)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !hosts[strings.TrimPrefix(strings.ToLower(o), "http://")] {
			deny(w, http.StatusForbidden, "cross-origin requests are refused")
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			deny(w, http.StatusForbidden, "cross-site requests are refused")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="patrol local admin"`)
			deny(w, http.StatusUnauthorized, "send Authorization: Bearer $"+AdminTokenSetting+" (from patrol.env)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Stack) faults(name string) *fault.Injector {
	switch name {
	case "entra":
		return s.Entra.Faults()
	case "keyvault":
		return s.KV.Faults()
	case "devops":
		return s.DevOps.Faults()
	case "servicebus":
		return s.SBFaults
	}
	return nil
}

func (s *Stack) journal(name string) *journal.Journal {
	switch name {
	case "entra":
		return s.Entra.Journal()
	case "keyvault":
		return s.KV.Journal()
	case "devops":
		return s.DevOps.Journal()
	}
	return nil
}

func (s *Stack) adminHandler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	fail := func(w http.ResponseWriter, status int, msg string) { reply(w, status, map[string]string{"error": msg}) }
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]string{
			"entra": s.Entra.AuthorityHost(), "keyvault": s.VaultURL, "identityKeyvault": s.IdentityVaultURL, "devops": s.DevOpsURL,
			"servicebus": s.SB.Addr().String(), "managedIdentity": s.MSI.Endpoint, "deviceLogin": s.Entra.VerificationURI(),
		})
	})
	mux.HandleFunc("GET /clock", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"now": s.Clock.Now()})
	})
	mux.HandleFunc("POST /clock/advance", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("by"))
		if err != nil || d <= 0 {
			fail(w, 400, "by: want a positive Go duration such as 720h")
			return
		}
		s.Clock.Advance(d)
		reply(w, 200, map[string]any{"now": s.Clock.Now()})
	})
	mux.HandleFunc("GET /journal/{emulator}", func(w http.ResponseWriter, r *http.Request) {
		j := s.journal(r.PathValue("emulator"))
		if j == nil {
			fail(w, 404, "no journal for emulator "+r.PathValue("emulator")+" (entra, keyvault, devops)")
			return
		}
		reply(w, 200, map[string]any{"counts": j.Counts(), "entries": j.Entries()})
	})
	mux.HandleFunc("/faults/{emulator}/", func(w http.ResponseWriter, r *http.Request) {
		in := s.faults(r.PathValue("emulator"))
		if in == nil {
			fail(w, 404, "no fault injector for emulator "+r.PathValue("emulator")+" (entra, keyvault, devops, servicebus)")
			return
		}
		http.StripPrefix("/faults/"+r.PathValue("emulator"), in).ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /devops/pats", func(w http.ResponseWriter, r *http.Request) {
		org := r.URL.Query().Get("org")
		if org == "" {
			org = Organization
		}
		reply(w, 200, s.DevOps.PATs(org))
	})
	mux.HandleFunc("GET /keyvault/secrets", func(w http.ResponseWriter, r *http.Request) {
		vault := r.URL.Query().Get("vault")
		if vault == "" {
			vault = Vault
		}
		infos, err := s.KV.Secrets(vault)
		if err != nil {
			fail(w, 404, err.Error())
			return
		}
		reply(w, 200, infos)
	})
	mux.HandleFunc("GET /servicebus/entities", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, s.SB.Store().Snapshot())
	})
	// "Revoke sessions" for a user: Azure DevOps and Key Vault (one shared record)
	// answer the user's older tokens with a CAE claims challenge (cp1 clients) and
	// Entra revokes the refresh tokens.
	mux.HandleFunc("POST /sessions/revoke", func(w http.ResponseWriter, r *http.Request) {
		upn := r.URL.Query().Get("upn")
		if err := errors.Join(s.DevOps.RevokeSessions(upn), s.Entra.RevokeRefreshTokens(upn)); err != nil {
			fail(w, 404, err.Error())
			return
		}
		reply(w, 200, map[string]string{"revoked": upn})
	})
	mux.HandleFunc("POST /entra/approve", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := s.Entra.ApproveDeviceCode(strings.TrimSpace(q.Get("code")), q.Get("upn")); err != nil {
			fail(w, 400, err.Error())
			return
		}
		reply(w, 200, map[string]string{"approved": q.Get("code")})
	})
	return mux
}
