package devhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeApp lays out an app: files maps a path relative to the root to its content.
func writeApp(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const minimalHost = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`

func TestLoadReadsPatrolsOwnApp(t *testing.T) {
	app, err := LoadAppDefinition("../../..")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		typ, entity, route, schedule string
		sessions                     bool
	}{
		"KeyVaultEvents":    {typ: TypeEventGridTrigger},
		"Offboarding":       {typ: TypeServiceBusTrigger, entity: "hr-offboarding"},
		"Rotate":            {typ: TypeServiceBusTrigger, entity: "pat-rotations", sessions: true},
		"Revoke":            {typ: TypeServiceBusTrigger, entity: "pat-revocations"},
		"RotateNow":         {typ: TypeHTTPTrigger, route: "rotate/{secret}"},
		"SecretStatus":      {typ: TypeHTTPTrigger, route: "status/{secret?}"},
		"Sweep":             {typ: TypeTimerTrigger, schedule: "%PATROL_SWEEP_SCHEDULE%"},
		"OffboardingReport": {typ: TypeHTTPTrigger, route: "offboarding/{person}"},
	}
	if len(app.Functions) != len(want) {
		t.Fatalf("functions = %d, want %d", len(app.Functions), len(want))
	}
	for _, f := range app.Functions {
		w, ok := want[f.Name]
		if !ok {
			t.Errorf("unexpected function %s", f.Name)
			continue
		}
		b := f.TriggerBinding()
		if b.Type != w.typ || b.Entity() != w.entity && w.entity != "" || b.Route != w.route || b.Schedule != w.schedule || b.IsSessionsEnabled != w.sessions {
			t.Errorf("%s: trigger = %+v", f.Name, b)
		}
	}
	if app.Host.RoutePrefix != "api" || app.Host.FunctionTimeout != 10*time.Minute || app.Host.ServiceBus.MaxConcurrentSessions != 8 {
		t.Errorf("host = %+v", app.Host)
	}
	if _, err := app.Expand(map[string]string{"PATROL_SWEEP_SCHEDULE": "0 0 */6 * * *"}); err != nil {
		t.Errorf("expand: %v", err)
	}
}

func TestLoadAcceptsTheDeployedLayout(t *testing.T) {
	root := writeApp(t, map[string]string{
		"host.json":            minimalHost,
		"Ping/function.json":   `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"}]}`,
		"nested/readme.txt":    "not a function",
		"Ticker/function.json": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"0 */5 * * * *"}]}`,
	})
	app, err := LoadAppDefinition(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(app.Functions) != 2 || app.Functions[0].Name != "Ping" || app.Functions[1].Name != "Ticker" {
		t.Fatalf("functions = %+v", app.Functions)
	}
	if got := app.Functions[0].TriggerBinding().AuthLevel; got != AuthFunction {
		t.Errorf("default authLevel = %q, want function", got)
	}
}

func TestLoadRejectsBadApps(t *testing.T) {
	fn := func(bindings string) map[string]string {
		return map[string]string{"host.json": minimalHost, "functions/F/function.json": `{"bindings":[` + bindings + `]}`}
	}
	cases := map[string]struct {
		files map[string]string
		want  []string // substrings of the error
	}{
		"a missing host.json is reported": {
			files: map[string]string{"functions/F/function.json": `{}`},
			want:  []string{"host.json"},
		},
		"a host.json without a custom handler names the field": {
			files: map[string]string{"host.json": `{"version":"2.0"}`},
			want:  []string{"host.json", "customHandler.description"},
		},
		"a wrong host.json version names the field": {
			files: map[string]string{"host.json": `{"version":"1.0","customHandler":{"description":{"defaultExecutablePath":"x"}}}`},
			want:  []string{"version"},
		},
		"a bad functionTimeout names the field": {
			files: map[string]string{"host.json": `{"version":"2.0","functionTimeout":"ten minutes","customHandler":{"description":{"defaultExecutablePath":"x"}}}`},
			want:  []string{"functionTimeout", "ten minutes"},
		},
		"a bad sessionIdleTimeout names the field": {
			files: map[string]string{"host.json": `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"x"}},"extensions":{"serviceBus":{"sessionIdleTimeout":"30s"}}}`},
			want:  []string{"extensions.serviceBus.sessionIdleTimeout"},
		},
		"zero maxConcurrentCalls names the field": {
			files: map[string]string{"host.json": `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"x"}},"extensions":{"serviceBus":{"maxConcurrentCalls":0}}}`},
			want:  []string{"maxConcurrentCalls"},
		},
		"an app without functions is reported": {
			files: map[string]string{"host.json": minimalHost},
			want:  []string{"no function.json"},
		},
		"invalid JSON names the file": {
			files: map[string]string{"host.json": minimalHost, "functions/F/function.json": `{"bindings":[`},
			want:  []string{filepath.Join("functions", "F", "function.json"), "not valid JSON"},
		},
		"a binding without a type names its index": {
			files: fn(`{"direction":"in","name":"x"}`),
			want:  []string{"bindings[0].type", "missing"},
		},
		"an unknown binding type is named": {
			files: fn(`{"type":"blobTrigger","direction":"in","name":"x","path":"c/{name}"}`),
			want:  []string{"bindings[0].type", "blobTrigger"},
		},
		"a trigger pointing out names the direction": {
			files: fn(`{"type":"eventGridTrigger","direction":"out","name":"x"}`),
			want:  []string{"bindings[0].direction"},
		},
		"two triggers are rejected": {
			files: fn(`{"type":"eventGridTrigger","direction":"in","name":"a"},{"type":"eventGridTrigger","direction":"in","name":"b"}`),
			want:  []string{"bindings[1].type", "second trigger"},
		},
		"no trigger is rejected": {
			files: fn(`{"type":"http","direction":"out","name":"res"}`),
			want:  []string{"no trigger"},
		},
		"a duplicate binding name is rejected": {
			files: fn(`{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"REQ"}`),
			want:  []string{"bindings[1].name"},
		},
		"a bad authLevel is named": {
			files: fn(`{"type":"httpTrigger","direction":"in","name":"req","authLevel":"user"}`),
			want:  []string{"bindings[0].authLevel", "user"},
		},
		"a bad method is named": {
			files: fn(`{"type":"httpTrigger","direction":"in","name":"req","methods":["post","fetch"]}`),
			want:  []string{"bindings[0].methods[1]", "fetch"},
		},
		"a bad route is named": {
			files: fn(`{"type":"httpTrigger","direction":"in","name":"req","route":"a/{x}{y}"}`),
			want:  []string{"bindings[0].route"},
		},
		"a service bus trigger without an entity names queueName": {
			files: fn(`{"type":"serviceBusTrigger","direction":"in","name":"msg","connection":"C"}`),
			want:  []string{"bindings[0].queueName", "missing"},
		},
		"a topic trigger without a subscription is named": {
			files: fn(`{"type":"serviceBusTrigger","direction":"in","name":"msg","topicName":"t"}`),
			want:  []string{"bindings[0].subscriptionName"},
		},
		"batched service bus triggers are refused": {
			files: fn(`{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"q","cardinality":"many"}`),
			want:  []string{"bindings[0].cardinality"},
		},
		"a string boolean that is not a boolean is named": {
			files: fn(`{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"q","isSessionsEnabled":"yes"}`),
			want:  []string{"isSessionsEnabled"},
		},
		"a timer without a schedule is named": {
			files: fn(`{"type":"timerTrigger","direction":"in","name":"t"}`),
			want:  []string{"bindings[0].schedule", "missing"},
		},
		"a five-field cron is refused with the schedule": {
			files: fn(`{"type":"timerTrigger","direction":"in","name":"t","schedule":"*/5 * * * *"}`),
			want:  []string{"bindings[0].schedule", "*/5 * * * *", "6"},
		},
		"two functions on one route are refused": {
			files: map[string]string{
				"host.json":                 minimalHost,
				"functions/A/function.json": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"x/{a}","methods":["get"]}]}`,
				"functions/B/function.json": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"X/{b}","methods":["get"]}]}`,
			},
			want: []string{"already served by function A"},
		},
		"a function defined in both layouts is refused": {
			files: map[string]string{
				"host.json":                 minimalHost,
				"functions/A/function.json": `{"bindings":[{"type":"eventGridTrigger","direction":"in","name":"e"}]}`,
				"A/function.json":           `{"bindings":[{"type":"eventGridTrigger","direction":"in","name":"e"}]}`,
			},
			want: []string{"also defined"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadAppDefinition(writeApp(t, tc.files))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestExpandResolvesSettings(t *testing.T) {
	root := writeApp(t, map[string]string{
		"host.json":                 `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h","arguments":["serve","--x=%SETTING_X%"]}}}`,
		"functions/Q/function.json": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"%QUEUE%","connection":"Conn"}]}`,
		"functions/T/function.json": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"%SCHED%"}]}`,
	})
	app, err := LoadAppDefinition(root)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		settings map[string]string
		want     []string // error substrings; empty = success
	}{
		"every reference set expands": {
			settings: map[string]string{"SETTING_X": "1", "QUEUE": "q1", "SCHED": "0 */5 * * * *"},
		},
		"a missing queue setting names the file, field and setting": {
			settings: map[string]string{"SETTING_X": "1", "SCHED": "0 */5 * * * *"},
			want:     []string{filepath.Join("functions", "Q", "function.json"), "bindings[0].queueName", "%QUEUE%"},
		},
		"a missing argument setting names host.json": {
			settings: map[string]string{"QUEUE": "q1", "SCHED": "0 */5 * * * *"},
			want:     []string{"host.json", "arguments[1]", "SETTING_X"},
		},
		"a bad expanded schedule names the function and the schedule": {
			settings: map[string]string{"SETTING_X": "1", "QUEUE": "q1", "SCHED": "every five minutes"},
			want:     []string{"function T", "every five minutes"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := app.Expand(tc.settings)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				q, _ := got.Function("q")
				if q.TriggerBinding().QueueName != "q1" || got.Host.Arguments[1] != "--x=1" {
					t.Errorf("expanded = %+v %+v", q.TriggerBinding(), got.Host.Arguments)
				}
				if orig, _ := app.Function("Q"); orig.TriggerBinding().QueueName != "%QUEUE%" {
					t.Error("Expand modified the original app")
				}
				return
			}
			if err == nil {
				t.Fatal("Expand succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseTimeSpan(t *testing.T) {
	cases := map[string]struct {
		in   string
		want time.Duration
		err  bool
	}{
		"hours minutes seconds":          {in: "00:10:00", want: 10 * time.Minute},
		"fractional seconds":             {in: "00:00:00.80", want: 800 * time.Millisecond},
		"seven fractional digits":        {in: "00:00:01.0000001", want: time.Second + 100},
		"days before the hours":          {in: "1.02:00:00", want: 26 * time.Hour},
		"single-digit fields":            {in: "0:5:0", want: 5 * time.Minute},
		"Go syntax is not a time span":   {in: "10m", err: true},
		"minutes out of range are wrong": {in: "00:60:00", err: true},
		"empty is wrong":                 {in: "", err: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseTimeSpan(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("ParseTimeSpan(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func FuzzParseHostJSON(f *testing.F) {
	raw, err := os.ReadFile("../../../host.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(minimalHost))
	f.Add([]byte(`{"version":"2.0","functionTimeout":"-1","customHandler":{"description":{"defaultExecutablePath":"x","arguments":[1]}}}`))
	f.Add([]byte("\xef\xbb\xbf{}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseHostJSON(raw)
		if err != nil {
			return
		}
		if cfg.Executable == "" || cfg.ServiceBus.MaxConcurrentCalls < 1 || cfg.ServiceBus.MaxConcurrentSessions < 1 || cfg.FunctionTimeout < 0 {
			t.Fatalf("accepted an invalid config: %+v", cfg)
		}
	})
}

func FuzzParseFunctionJSON(f *testing.F) {
	for _, name := range []string{"RotateNow", "Rotate", "Sweep", "KeyVaultEvents"} {
		raw, err := os.ReadFile(filepath.Join("../../../functions", name, "function.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"{*all}"}]}`))
	f.Add([]byte(`{"bindings":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fn, err := ParseFunctionJSON("F", raw)
		if err != nil {
			return
		}
		if fn.Trigger < 0 || fn.Trigger >= len(fn.Bindings) {
			t.Fatalf("accepted a function without a valid trigger index: %+v", fn)
		}
		b := fn.TriggerBinding()
		if b.Type == TypeHTTPTrigger {
			if _, err := parseRoute(b.Route); err != nil {
				t.Fatalf("accepted an unparsable route %q: %v", b.Route, err)
			}
		}
		if b.Type == TypeServiceBusTrigger && b.Entity() == "" {
			t.Fatal("accepted a Service Bus trigger without an entity")
		}
	})
}
