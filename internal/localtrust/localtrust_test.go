package localtrust

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/patrol-dev/patrol/internal/local/emulator/tlsca"
)

func TestLoopback(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"a vault subdomain of localhost goes to loopback": {"patrol.vault.localhost:8443", "127.0.0.1:8443"},
		"localhost itself goes to loopback":               {"localhost:1", "127.0.0.1:1"},
		"a trailing dot and upper case are tolerated":     {"X.LOCALHOST.:2", "127.0.0.1:2"},
		"a public host is untouched":                      {"vault.azure.net:443", "vault.azure.net:443"},
		"a name merely containing localhost is untouched": {"localhost.example.com:443", "localhost.example.com:443"},
		"an address without a port is untouched":          {"localhost", "localhost"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Loopback(tc.in); got != tc.want {
				t.Fatalf("Loopback(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestClientReachesAVaultSubdomainOverTLS(t *testing.T) {
	ca, err := tlsca.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Host)
	}))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)

	c, err := NewClient(ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get("https://patrol.vault.localhost:" + port + "/")
	if err != nil {
		t.Fatalf("GET through the vault subdomain: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "patrol.vault.localhost:"+port {
		t.Fatalf("server saw Host %q", body)
	}

	plain := &http.Client{Transport: &http.Transport{}}
	if _, err := plain.Get(srv.URL); err == nil {
		t.Fatal("a client without the CA trusted the emulator certificate")
	}
}

func TestNewClientRejectsAFileWithoutCertificates(t *testing.T) {
	if _, err := NewClient([]byte("not pem")); err == nil {
		t.Fatal("NewClient accepted a CA file without a certificate")
	}
}
