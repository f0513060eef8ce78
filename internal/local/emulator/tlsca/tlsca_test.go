package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

func TestLeafVerifiesForEveryDefaultHostAndNothingElse(t *testing.T) {
	ca, err := New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		host string
		ok   bool
	}{
		"the bare localhost name verifies":        {"localhost", true},
		"a vault subdomain verifies":              {"patrol.vault.localhost", true},
		"the challenge resource host verifies":    {"vault.localhost", true},
		"the IPv4 loopback verifies":              {"127.0.0.1", true},
		"an unrelated public name does not":       {"vault.azure.net", false},
		"a deeper subdomain is not covered by *.": {"a.b.vault.localhost", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: tc.host, Roots: ca.Pool()})
			if (err == nil) != tc.ok {
				t.Fatalf("verify %s: err = %v, want ok=%v", tc.host, err, tc.ok)
			}
		})
	}
	if _, err := tls.X509KeyPair(ca.CertPEM(), nil); err == nil {
		t.Fatal("the CA PEM must not carry a private key")
	}
}
