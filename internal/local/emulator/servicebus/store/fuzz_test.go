package store

import (
	"testing"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(microsoftSample))
	f.Add([]byte(`{"UserConfig":{"Namespaces":[{"Queues":[{"Name":"a","Properties":{"LockDuration":"PT5S"}}]}]}}`))
	f.Add([]byte(`{"UserConfig":{"Namespaces":[{"Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"}}}]}]}]}]}}`))
	f.Add([]byte(`{"UserConfig":{"Namespaces":[{"Queues":[{"Name":"a","Properties":{"DefaultMessageTimeToLive":"P99999999999Y"}}]}]}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		// Whatever validates must build a store.
		st, err := New(cfg, clock.NewManual(t0))
		if err != nil {
			t.Fatalf("ParseConfig accepted a config New rejects: %v", err)
		}
		st.Close()
	})
}
