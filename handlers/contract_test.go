package handlers

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every functions/<Name>/function.json has exactly one entry in the function table, and
// every entry has a function.json and its own invoke: a function the table lacks (or
// holds twice) cannot be routed to some other function's App method.
func TestEveryFunctionHasExactlyOneTableEntry(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "functions", "*", "function.json"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no functions/*/function.json: %v", err)
	}
	entries := map[string]int{}
	for _, fn := range Functions() {
		entries[fn.Name]++
		if fn.invoke == nil {
			t.Errorf("table entry %s has no invoke", fn.Name)
		}
	}
	onDisk := map[string]bool{}
	for _, p := range dirs {
		name := filepath.Base(filepath.Dir(p))
		onDisk[name] = true
		if n := entries[name]; n != 1 {
			t.Errorf("functions/%s/function.json has %d table entries, want 1", name, n)
		}
	}
	for name, n := range entries {
		if !onDisk[name] {
			t.Errorf("table entry %s has no functions/%s/function.json", name, name)
		}
		if n != 1 {
			t.Errorf("table holds %s %d times", name, n)
		}
	}
}

// The handler routes by function name and reads Data by binding name, so the
// function.json files and Functions() must agree exactly.
func TestFunctionJSONAgreesWithTheHandler(t *testing.T) {
	type binding struct {
		Type, Direction, Name, QueueName, Connection, AuthLevel, Route, Schedule string
		Methods                                                                  []string
		IsSessionsEnabled, AutoComplete                                          *bool
		Cardinality, DataType                                                    string
	}
	dirs, err := filepath.Glob(filepath.Join("..", "functions", "*", "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, p := range dirs {
		onDisk = append(onDisk, filepath.Base(filepath.Dir(p)))
	}
	var want []string
	for _, fn := range Functions() {
		want = append(want, fn.Name)
	}
	slices.Sort(onDisk)
	slices.Sort(want)
	if !slices.Equal(onDisk, want) {
		t.Fatalf("functions/ holds %v, the handler serves %v", onDisk, want)
	}
	for _, fn := range Functions() {
		t.Run(fn.Name, func(t *testing.T) {
			var doc struct{ Bindings []binding }
			if err := json.Unmarshal(mustRead(t, filepath.Join("..", "functions", fn.Name, "function.json")), &doc); err != nil {
				t.Fatal(err)
			}
			var trig *binding
			var outs []binding
			for i, b := range doc.Bindings {
				switch {
				case strings.HasSuffix(b.Type, "Trigger"):
					if trig != nil {
						t.Fatal("two triggers")
					}
					trig = &doc.Bindings[i]
				case b.Direction == "out":
					outs = append(outs, b)
				}
			}
			if trig == nil {
				t.Fatal("no trigger binding")
			}
			if trig.Type != fn.Trigger || trig.Name != fn.Binding || trig.Direction != "in" {
				t.Errorf("trigger %s %q (%s), want %s %q (in)", trig.Type, trig.Name, trig.Direction, fn.Trigger, fn.Binding)
			}
			switch fn.Trigger {
			case BindingServiceBusTrigger:
				if trig.QueueName != fn.Queue || trig.Connection != "ServiceBusConnection" {
					t.Errorf("queue %q via %q, want %q via ServiceBusConnection", trig.QueueName, trig.Connection, fn.Queue)
				}
				if trig.IsSessionsEnabled == nil || *trig.IsSessionsEnabled != fn.Sessions {
					t.Errorf("isSessionsEnabled must be stated and %v", fn.Sessions)
				}
				if trig.AutoComplete == nil || !*trig.AutoComplete {
					t.Error("autoComplete must be true: non-C# handlers cannot settle through the host")
				}
				if trig.Cardinality != "one" {
					t.Error(`cardinality must be "one": the handler decodes a single message`)
				}
			case BindingHTTPTrigger:
				if trig.AuthLevel != "function" || trig.Route != fn.Route || !slices.Equal(trig.Methods, fn.Methods) {
					t.Errorf("http %s %v %q, want function %v %q", trig.AuthLevel, trig.Methods, trig.Route, fn.Methods, fn.Route)
				}
				if len(outs) != 1 || outs[0].Type != "http" || outs[0].Name != fn.Output {
					t.Errorf("outputs %+v, want one http output %q", outs, fn.Output)
				}
			case BindingTimerTrigger:
				if trig.Schedule != fn.Schedule {
					t.Errorf("schedule %q, want %q", trig.Schedule, fn.Schedule)
				}
			}
			if fn.Trigger != BindingHTTPTrigger && len(outs) != 0 {
				t.Errorf("outputs %+v: patrol sends with azservicebus itself, not output bindings", outs)
			}
		})
	}
}

func TestHostJSON(t *testing.T) {
	var h struct {
		Version       string
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string
				Arguments             []string
			}
			EnableForwardingHttpRequest bool
		}
		ExtensionBundle struct{ ID, Version string }
		FunctionTimeout string
		Extensions      struct {
			HTTP       struct{ RoutePrefix string }
			ServiceBus struct {
				AutoCompleteMessages       bool
				MaxAutoLockRenewalDuration string
			}
		}
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join("..", "host.json")), &h); err != nil {
		t.Fatal(err)
	}
	checks := map[string]struct{ got, want any }{
		"version is 2.0":                           {h.Version, "2.0"},
		"the handler is the patrol binary":         {h.CustomHandler.Description.DefaultExecutablePath, "patrol"},
		"it runs the serve command":                {strings.Join(h.CustomHandler.Description.Arguments, " "), "serve"},
		"HTTP is not forwarded (JSON envelope)":    {h.CustomHandler.EnableForwardingHttpRequest, false},
		"the extension bundle is 4.x":              {h.ExtensionBundle.ID + " " + h.ExtensionBundle.Version, "Microsoft.Azure.Functions.ExtensionBundle [4.*, 5.0.0)"},
		"the function timeout is ten minutes":      {h.FunctionTimeout, "00:10:00"},
		"routes sit under /api":                    {h.Extensions.HTTP.RoutePrefix, "api"},
		"messages complete automatically":          {h.Extensions.ServiceBus.AutoCompleteMessages, true},
		"locks are renewed for a whole invocation": {h.Extensions.ServiceBus.MaxAutoLockRenewalDuration, h.FunctionTimeout},
	}
	for name, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", name, c.got, c.want)
		}
	}
}

// Every setting of docs/architecture.md appears in local.settings.json.example and is
// explained in docs/settings.md.
func TestSettingsAreDocumented(t *testing.T) {
	arch := string(mustRead(t, filepath.Join("..", "docs", "architecture.md")))
	_, table, ok := strings.Cut(arch, "## Settings")
	if !ok {
		t.Fatal("docs/architecture.md has no Settings section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	names := regexp.MustCompile("(?m)^\\| `([A-Za-z_]+)` \\|").FindAllStringSubmatch(table, -1)
	if len(names) < 10 {
		t.Fatalf("found only %d settings in docs/architecture.md", len(names))
	}
	var example struct{ Values map[string]string }
	if err := json.Unmarshal(mustRead(t, filepath.Join("..", "local.settings.json.example")), &example); err != nil {
		t.Fatal(err)
	}
	doc := string(mustRead(t, filepath.Join("..", "docs", "settings.md")))
	required := []string{"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
	for _, m := range names {
		required = append(required, m[1])
	}
	for _, name := range required {
		if _, ok := example.Values[name]; !ok {
			t.Errorf("local.settings.json.example lacks %s", name)
		}
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/settings.md does not explain %s", name)
		}
	}
	if example.Values["FUNCTIONS_WORKER_RUNTIME"] != "Custom" {
		t.Error("FUNCTIONS_WORKER_RUNTIME must be Custom")
	}
}
