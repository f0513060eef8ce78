package keyvault

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkGetSecret measures the handler alone (token check, RBAC, lookup, JSON) so a
// regression in the per-request path shows without TLS and network noise.
func BenchmarkGetSecret(b *testing.B) {
	env := newEnv(b, nil)
	env.put("s", NewSecret{Value: "v"})
	tok := env.signer.appToken(officerOID, "https://vault.localhost:8443")
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "https://alpha.vault.localhost:8443/secrets/s/?api-version=2026-04-01", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		env.kv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkSetSecret measures creating versions, events included (no subscribers).
func BenchmarkSetSecret(b *testing.B) {
	env := newEnv(b, nil)
	env.kv.SetRateLimit(RateLimit{})
	tok := env.signer.appToken(officerOID, "https://vault.localhost:8443")
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPut, "https://alpha.vault.localhost:8443/secrets/s?api-version=2026-04-01", strings.NewReader(`{"value":"x","tags":{"a":"b"}}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		env.kv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
