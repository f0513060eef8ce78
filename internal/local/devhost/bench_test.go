package devhost

import (
	"context"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// BenchmarkHandlerStartToReady measures what the host waits for at every cold start:
// process start until the first answer to GET / (polled every 25 ms, as the host
// does). Each iteration kills the previous process first; median-ms counts only the
// start. "bare-go-http-server" is the echo handler (a plain
// net/http server); "patrol-serve" is patrol's own handler. The median is reported
// next to the mean because the 25 ms polling makes the distribution lumpy.
func BenchmarkHandlerStartToReady(b *testing.B) {
	patrol := filepath.Join(b.TempDir(), "patrol")
	if out, err := exec.Command("go", "build", "-o", patrol, "../../../cmd/patrol").CombinedOutput(); err != nil {
		b.Fatalf("build patrol: %v\n%s", err, out)
	}
	for _, bc := range []struct {
		name    string
		command []string
	}{
		{"bare-go-http-server", []string{echoBin}},
		{"patrol-serve", []string{patrol, "serve"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			app, err := LoadAppDefinition(writeApp(b, map[string]string{
				"host.json":                    minimalHost,
				"functions/Open/function.json": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"}]}`,
			}))
			if err != nil {
				b.Fatal(err)
			}
			settings := map[string]string{
				"PATROL_KEYVAULT_URL": "https://patrol-demo.vault.localhost:8443", "PATROL_TENANT_ID": "11111111-1111-4111-8111-111111111111",
				"PATROL_CLIENT_ID":     "33333333-3333-4333-8333-333333333333",
				"ServiceBusConnection": "Endpoint=sb://localhost:5672/;SharedAccessKeyName=k;SharedAccessKey=bench-not-a-secret;UseDevelopmentEmulator=true",
			}
			h, err := Start(context.Background(), Options{Definition: app, Settings: settings, Command: bc.command})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			var samples []time.Duration
			b.ResetTimer()
			for b.Loop() {
				if err := h.Kill(); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := h.Restart(context.Background()); err != nil {
					b.Fatal(err)
				}
				samples = append(samples, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
			if len(samples) > 0 {
				b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "median-ms")
			}
		})
	}
}
