// Package localtrust builds the HTTP client patrol and its tests use against the local
// stack. Two things differ from Azure there: the emulators' TLS certificates come from a
// per-run CA, and Key Vault hosts such as patrol.vault.localhost must reach loopback even
// though the system resolver does not map *.localhost names (RFC 6761 reserves them for
// loopback, and browsers honour that; Go's resolver and glibc here do not).
package localtrust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// NewClient returns an HTTP client that trusts the system roots plus caPEM and dials every
// *.localhost host to 127.0.0.1.
func NewClient(caPEM []byte) (*http.Client, error) {
	t, err := NewTransport(caPEM)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t, Timeout: 2 * time.Minute}, nil
}

// LoadClient is NewClient with the CA read from a PEM file.
func LoadClient(caFile string) (*http.Client, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("localtrust: read CA file: %w", err)
	}
	return NewClient(b)
}

// NewTransport returns the transport behind NewClient.
func NewTransport(caPEM []byte) (*http.Transport, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("localtrust: the CA file holds no PEM certificate")
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // the local stack is never behind a proxy
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, Loopback(addr))
	}
	return t, nil
}

// Loopback rewrites a host:port whose host is localhost or ends in .localhost to
// 127.0.0.1:port; other addresses pass unchanged.
func Loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
