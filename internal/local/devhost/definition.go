package devhost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Binding types devhost understands (function.json "type").
const (
	TypeHTTPTrigger       = "httpTrigger"
	TypeHTTP              = "http"
	TypeEventGridTrigger  = "eventGridTrigger"
	TypeServiceBusTrigger = "serviceBusTrigger"
	TypeServiceBus        = "serviceBus"
	TypeTimerTrigger      = "timerTrigger"
)

// Authorization levels of an HTTP trigger.
const (
	AuthAnonymous = "anonymous"
	AuthFunction  = "function"
	AuthAdmin     = "admin"
)

// Defaults the host applies when host.json says nothing (Service Bus extension 5.x,
// Functions host 4.x).
const (
	DefaultRoutePrefix                = "api"
	DefaultMaxConcurrentCalls         = 16
	DefaultMaxConcurrentSessions      = 8
	DefaultSessionIdleTimeout         = time.Minute
	DefaultMaxAutoLockRenewalDuration = 5 * time.Minute
	DefaultServiceBusConnection       = "AzureWebJobsServiceBus"
)

// AppDefinition is a function app's definition as it sits on disk: host.json plus one
// function.json per function. It is what the host loads, not the app (the custom
// handler it runs).
type AppDefinition struct {
	Root      string     // absolute app root (the folder holding host.json)
	Host      HostConfig // host.json
	Functions []Function // sorted by name
}

// HostConfig is the part of host.json devhost acts on.
type HostConfig struct {
	Executable        string   // customHandler.description.defaultExecutablePath
	Arguments         []string // customHandler.description.arguments (may hold %SETTING%)
	WorkingDirectory  string   // customHandler.description.workingDirectory (relative to Root)
	DefaultWorkerPath string   // customHandler.description.defaultWorkerPath
	// FunctionTimeout is host.json functionTimeout; 0 means none ("-1" or absent).
	FunctionTimeout time.Duration
	RoutePrefix     string // extensions.http.routePrefix; "" serves HTTP triggers at /
	ServiceBus      ServiceBusConfig
}

// ServiceBusConfig is host.json extensions.serviceBus.
type ServiceBusConfig struct {
	MaxConcurrentCalls         int
	MaxConcurrentSessions      int
	SessionIdleTimeout         time.Duration
	MaxAutoLockRenewalDuration time.Duration
}

// Function is one functions/<Name>/function.json.
type Function struct {
	Name     string    // folder name: the path the host POSTs to
	File     string    // function.json path relative to Root (for errors)
	Bindings []Binding // in file order
	Trigger  int       // index of the trigger binding in Bindings
}

// TriggerBinding returns the function's trigger binding.
func (f Function) TriggerBinding() Binding { return f.Bindings[f.Trigger] }

// Binding is one entry of function.json "bindings". Only the properties devhost uses
// are typed; every string property may hold %SETTING% until App.Expand.
type Binding struct {
	Type      string
	Direction string
	Name      string
	DataType  string

	// httpTrigger
	AuthLevel string
	Methods   []string // lower-case; empty = every method
	Route     string

	// serviceBusTrigger / serviceBus
	QueueName         string
	TopicName         string
	SubscriptionName  string
	Connection        string
	IsSessionsEnabled bool
	Cardinality       string

	// timerTrigger
	Schedule     string
	RunOnStartup bool
	UseMonitor   bool
}

// Entity returns the Service Bus entity path the binding names: the queue, or
// topic/Subscriptions/subscription.
func (b Binding) Entity() string {
	if b.QueueName != "" {
		return b.QueueName
	}
	if b.SubscriptionName == "" {
		return b.TopicName
	}
	return b.TopicName + "/Subscriptions/" + b.SubscriptionName
}

// Function returns the function called name (case-insensitive, as the host routes).
func (a *AppDefinition) Function(name string) (Function, bool) {
	for _, f := range a.Functions {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return Function{}, false
}

// LoadAppDefinition reads appRoot/host.json and every function.json under
// appRoot/functions/<Name>/ (the source layout) or appRoot/<Name>/ (the deployed layout,
// folders beside host.json). Errors name the file and the field.
func LoadAppDefinition(appRoot string) (*AppDefinition, error) {
	root, err := filepath.Abs(appRoot)
	if err != nil {
		return nil, fmt.Errorf("devhost: app root %q: %w", appRoot, err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		return nil, fmt.Errorf("devhost: %w", err)
	}
	host, err := ParseHostJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("devhost: %s: %w", filepath.Join(root, "host.json"), err)
	}
	app := &AppDefinition{Root: root, Host: host}
	seen := map[string]string{}
	for _, pattern := range []string{filepath.Join(root, "functions", "*", "function.json"), filepath.Join(root, "*", "function.json")} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("devhost: %w", err)
		}
		for _, file := range files {
			rel, _ := filepath.Rel(root, file)
			name := filepath.Base(filepath.Dir(file))
			if prev, dup := seen[strings.ToLower(name)]; dup {
				return nil, fmt.Errorf("devhost: %s: function %q is also defined by %s", rel, name, prev)
			}
			seen[strings.ToLower(name)] = rel
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("devhost: %w", err)
			}
			fn, err := ParseFunctionJSON(name, b)
			if err != nil {
				return nil, fmt.Errorf("devhost: %s: %w", rel, err)
			}
			fn.File = rel
			app.Functions = append(app.Functions, fn)
		}
	}
	if len(app.Functions) == 0 {
		return nil, fmt.Errorf("devhost: %s: no function.json under functions/<Name>/ or <Name>/", root)
	}
	sort.Slice(app.Functions, func(i, j int) bool { return app.Functions[i].Name < app.Functions[j].Name })
	if err := app.checkRoutes(); err != nil {
		return nil, err
	}
	return app, nil
}

// checkRoutes rejects two HTTP triggers that would answer the same path and method,
// which the host reports at start-up too.
func (a *AppDefinition) checkRoutes() error {
	type key struct{ route, method string }
	owner := map[key]string{}
	for _, f := range a.Functions {
		b := f.TriggerBinding()
		if b.Type != TypeHTTPTrigger {
			continue
		}
		route := strings.ToLower(canonicalRoute(routeOf(f)))
		methods := b.Methods
		if len(methods) == 0 {
			methods = []string{"*"}
		}
		for _, m := range methods {
			k := key{route, m}
			if prev, ok := owner[k]; ok {
				return fmt.Errorf("devhost: %s: route %q (%s) is already served by function %s", f.File, b.Route, m, prev)
			}
			owner[k] = f.Name
		}
	}
	return nil
}

// canonicalRoute drops parameter names so "a/{x}" and "a/{y}" compare equal.
func canonicalRoute(route string) string {
	return routeParamRE.ReplaceAllString(route, "{}")
}

var routeParamRE = regexp.MustCompile(`\{[^}]*\}`)

func routeOf(f Function) string {
	if r := f.TriggerBinding().Route; r != "" {
		return r
	}
	return f.Name
}

// hostJSON mirrors the parts of host.json devhost reads.
type hostJSON struct {
	Version       string `json:"version"`
	CustomHandler *struct {
		Description *struct {
			DefaultExecutablePath string   `json:"defaultExecutablePath"`
			Arguments             []string `json:"arguments"`
			WorkingDirectory      string   `json:"workingDirectory"`
			DefaultWorkerPath     string   `json:"defaultWorkerPath"`
		} `json:"description"`
		EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		EnableProxyingHTTPRequest   bool `json:"enableProxyingHttpRequest"`
	} `json:"customHandler"`
	FunctionTimeout *string `json:"functionTimeout"`
	Extensions      struct {
		HTTP *struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
		ServiceBus *struct {
			MaxConcurrentCalls         *int    `json:"maxConcurrentCalls"`
			MaxConcurrentSessions      *int    `json:"maxConcurrentSessions"`
			SessionIdleTimeout         *string `json:"sessionIdleTimeout"`
			MaxAutoLockRenewalDuration *string `json:"maxAutoLockRenewalDuration"`
		} `json:"serviceBus"`
	} `json:"extensions"`
}

// ParseHostJSON decodes host.json. Property names are matched case-insensitively, as
// the host's configuration binder does.
func ParseHostJSON(raw []byte) (HostConfig, error) {
	var h hostJSON
	if err := decodeJSON(raw, &h); err != nil {
		return HostConfig{}, err
	}
	if h.Version != "2.0" {
		return HostConfig{}, fmt.Errorf("version: %q, want \"2.0\"", h.Version)
	}
	if h.CustomHandler == nil || h.CustomHandler.Description == nil {
		return HostConfig{}, errors.New("customHandler.description: missing (devhost runs custom handlers only)")
	}
	d := h.CustomHandler.Description
	if strings.TrimSpace(d.DefaultExecutablePath) == "" {
		return HostConfig{}, errors.New("customHandler.description.defaultExecutablePath: missing")
	}
	if h.CustomHandler.EnableForwardingHTTPRequest || h.CustomHandler.EnableProxyingHTTPRequest {
		return HostConfig{}, errors.New("customHandler.enableForwardingHttpRequest/enableProxyingHttpRequest: not supported by devhost (patrol's HTTP functions take the JSON payload)")
	}
	cfg := HostConfig{
		Executable:        d.DefaultExecutablePath,
		Arguments:         d.Arguments,
		WorkingDirectory:  d.WorkingDirectory,
		DefaultWorkerPath: d.DefaultWorkerPath,
		RoutePrefix:       DefaultRoutePrefix,
		ServiceBus: ServiceBusConfig{
			MaxConcurrentCalls:         DefaultMaxConcurrentCalls,
			MaxConcurrentSessions:      DefaultMaxConcurrentSessions,
			SessionIdleTimeout:         DefaultSessionIdleTimeout,
			MaxAutoLockRenewalDuration: DefaultMaxAutoLockRenewalDuration,
		},
	}
	if h.FunctionTimeout != nil && *h.FunctionTimeout != "-1" {
		d, err := ParseTimeSpan(*h.FunctionTimeout)
		if err != nil || d <= 0 {
			return HostConfig{}, fmt.Errorf("functionTimeout: %q is not a positive hh:mm:ss time span or -1", *h.FunctionTimeout)
		}
		cfg.FunctionTimeout = d
	}
	if h.Extensions.HTTP != nil && h.Extensions.HTTP.RoutePrefix != nil {
		cfg.RoutePrefix = strings.Trim(*h.Extensions.HTTP.RoutePrefix, "/")
	}
	if sb := h.Extensions.ServiceBus; sb != nil {
		if sb.MaxConcurrentCalls != nil {
			if *sb.MaxConcurrentCalls < 1 {
				return HostConfig{}, fmt.Errorf("extensions.serviceBus.maxConcurrentCalls: %d, want at least 1", *sb.MaxConcurrentCalls)
			}
			cfg.ServiceBus.MaxConcurrentCalls = *sb.MaxConcurrentCalls
		}
		if sb.MaxConcurrentSessions != nil {
			if *sb.MaxConcurrentSessions < 1 {
				return HostConfig{}, fmt.Errorf("extensions.serviceBus.maxConcurrentSessions: %d, want at least 1", *sb.MaxConcurrentSessions)
			}
			cfg.ServiceBus.MaxConcurrentSessions = *sb.MaxConcurrentSessions
		}
		for _, f := range []struct {
			name string
			src  *string
			dst  *time.Duration
		}{
			{"sessionIdleTimeout", sb.SessionIdleTimeout, &cfg.ServiceBus.SessionIdleTimeout},
			{"maxAutoLockRenewalDuration", sb.MaxAutoLockRenewalDuration, &cfg.ServiceBus.MaxAutoLockRenewalDuration},
		} {
			if f.src == nil {
				continue
			}
			d, err := ParseTimeSpan(*f.src)
			if err != nil || d < 0 {
				return HostConfig{}, fmt.Errorf("extensions.serviceBus.%s: %q is not a [d.]hh:mm:ss[.fff] time span", f.name, *f.src)
			}
			*f.dst = d
		}
	}
	return cfg, nil
}

// bindingJSON mirrors one binding. Booleans may be JSON strings ("true") in files
// written by hand or tools; the host accepts both.
type bindingJSON struct {
	Type              *string   `json:"type"`
	Direction         *string   `json:"direction"`
	Name              *string   `json:"name"`
	DataType          string    `json:"dataType"`
	AuthLevel         string    `json:"authLevel"`
	Methods           []string  `json:"methods"`
	Route             string    `json:"route"`
	QueueName         string    `json:"queueName"`
	TopicName         string    `json:"topicName"`
	SubscriptionName  string    `json:"subscriptionName"`
	Connection        string    `json:"connection"`
	IsSessionsEnabled flexBool  `json:"isSessionsEnabled"`
	Cardinality       string    `json:"cardinality"`
	Schedule          string    `json:"schedule"`
	RunOnStartup      flexBool  `json:"runOnStartup"`
	UseMonitor        *flexBool `json:"useMonitor"`
}

type flexBool bool

func (b *flexBool) UnmarshalJSON(raw []byte) error {
	s := strings.Trim(string(raw), `"`)
	v, err := strconv.ParseBool(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "value " + string(raw), Type: reflect.TypeOf(true)}
	}
	*b = flexBool(v)
	return nil
}

var (
	bindingNameRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*|\$return)$`)
	httpMethods   = map[string]bool{"get": true, "post": true, "put": true, "delete": true, "patch": true, "head": true, "options": true, "trace": true}
)

// ParseFunctionJSON decodes and validates one function.json for the function called
// name (its folder name).
func ParseFunctionJSON(name string, raw []byte) (Function, error) {
	if !functionNameRE.MatchString(name) {
		return Function{}, fmt.Errorf("function name %q: must start with a letter and hold only letters, digits, '_' and '-'", name)
	}
	var doc struct {
		Bindings *[]bindingJSON `json:"bindings"`
		Disabled flexBool       `json:"disabled"`
	}
	if err := decodeJSON(raw, &doc); err != nil {
		return Function{}, err
	}
	if doc.Bindings == nil || len(*doc.Bindings) == 0 {
		return Function{}, errors.New("bindings: missing or empty")
	}
	fn := Function{Name: name, Trigger: -1}
	names := map[string]bool{}
	for i, bj := range *doc.Bindings {
		at := fmt.Sprintf("bindings[%d]", i)
		b, err := bindingFrom(bj, at)
		if err != nil {
			return Function{}, err
		}
		if names[strings.ToLower(b.Name)] {
			return Function{}, fmt.Errorf("%s.name: %q is used by another binding", at, b.Name)
		}
		names[strings.ToLower(b.Name)] = true
		if strings.HasSuffix(b.Type, "Trigger") {
			if fn.Trigger >= 0 {
				return Function{}, fmt.Errorf("%s.type: a second trigger (%s); a function has exactly one", at, b.Type)
			}
			fn.Trigger = i
		}
		fn.Bindings = append(fn.Bindings, b)
	}
	if fn.Trigger < 0 {
		return Function{}, errors.New("bindings: no trigger binding (type ending in \"Trigger\")")
	}
	return fn, nil
}

var functionNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,127}$`)

func bindingFrom(bj bindingJSON, at string) (Binding, error) {
	if bj.Type == nil || *bj.Type == "" {
		return Binding{}, fmt.Errorf("%s.type: missing", at)
	}
	if bj.Direction == nil || *bj.Direction == "" {
		return Binding{}, fmt.Errorf("%s.direction: missing", at)
	}
	if bj.Name == nil || !bindingNameRE.MatchString(*bj.Name) {
		got := "missing"
		if bj.Name != nil {
			got = strconv.Quote(*bj.Name)
		}
		return Binding{}, fmt.Errorf("%s.name: %s; want an identifier (or $return for an output)", at, got)
	}
	b := Binding{
		Type: *bj.Type, Direction: strings.ToLower(*bj.Direction), Name: *bj.Name, DataType: bj.DataType,
		AuthLevel: strings.ToLower(bj.AuthLevel), Route: strings.Trim(bj.Route, "/"),
		QueueName: bj.QueueName, TopicName: bj.TopicName, SubscriptionName: bj.SubscriptionName,
		Connection: bj.Connection, IsSessionsEnabled: bool(bj.IsSessionsEnabled), Cardinality: strings.ToLower(bj.Cardinality),
		Schedule: bj.Schedule, RunOnStartup: bool(bj.RunOnStartup), UseMonitor: bj.UseMonitor == nil || bool(*bj.UseMonitor),
	}
	if b.Direction != "in" && b.Direction != "out" && b.Direction != "inout" {
		return Binding{}, fmt.Errorf("%s.direction: %q, want in, out or inout", at, *bj.Direction)
	}
	isTrigger := strings.HasSuffix(b.Type, "Trigger")
	if isTrigger && b.Direction != "in" {
		return Binding{}, fmt.Errorf("%s.direction: %q, a trigger's direction is \"in\"", at, b.Direction)
	}
	if b.Name == "$return" && b.Direction != "out" {
		return Binding{}, fmt.Errorf("%s.name: $return is for output bindings only", at)
	}
	switch b.DataType {
	case "", "string", "binary", "stream":
	default:
		return Binding{}, fmt.Errorf("%s.dataType: %q, want string, binary or stream", at, b.DataType)
	}
	switch b.Type {
	case TypeHTTPTrigger:
		if b.AuthLevel == "" {
			b.AuthLevel = AuthFunction
		}
		if b.AuthLevel != AuthAnonymous && b.AuthLevel != AuthFunction && b.AuthLevel != AuthAdmin {
			return Binding{}, fmt.Errorf("%s.authLevel: %q, want anonymous, function or admin", at, bj.AuthLevel)
		}
		for j, m := range bj.Methods {
			lm := strings.ToLower(m)
			if !httpMethods[lm] {
				return Binding{}, fmt.Errorf("%s.methods[%d]: %q is not an HTTP method", at, j, m)
			}
			b.Methods = append(b.Methods, lm)
		}
		if _, err := parseRoute(b.Route); err != nil {
			return Binding{}, fmt.Errorf("%s.route: %w", at, err)
		}
	case TypeHTTP:
		if b.Direction != "out" {
			return Binding{}, fmt.Errorf("%s.direction: %q, an http binding is an output (\"out\")", at, b.Direction)
		}
	case TypeEventGridTrigger:
	case TypeServiceBusTrigger, TypeServiceBus:
		if b.Connection == "" {
			b.Connection = DefaultServiceBusConnection
		}
		switch {
		case b.QueueName != "" && (b.TopicName != "" || b.SubscriptionName != ""):
			return Binding{}, fmt.Errorf("%s.queueName: set together with topicName/subscriptionName; use one", at)
		case b.QueueName == "" && b.TopicName == "":
			return Binding{}, fmt.Errorf("%s.queueName: missing (or topicName)", at)
		case b.Type == TypeServiceBusTrigger && b.TopicName != "" && b.SubscriptionName == "":
			return Binding{}, fmt.Errorf("%s.subscriptionName: missing (a topic trigger needs one)", at)
		}
		switch b.Cardinality {
		case "", "one":
		case "many":
			return Binding{}, fmt.Errorf("%s.cardinality: \"many\" (batched triggers) is not supported by devhost", at)
		default:
			return Binding{}, fmt.Errorf("%s.cardinality: %q, want one or many", at, bj.Cardinality)
		}
	case TypeTimerTrigger:
		if strings.TrimSpace(b.Schedule) == "" {
			return Binding{}, fmt.Errorf("%s.schedule: missing", at)
		}
		if !strings.Contains(b.Schedule, "%") {
			if _, err := ParseSchedule(b.Schedule); err != nil {
				return Binding{}, fmt.Errorf("%s.schedule: %w", at, err)
			}
		}
	default:
		return Binding{}, fmt.Errorf("%s.type: %q is not supported by devhost (want httpTrigger, http, eventGridTrigger, serviceBusTrigger, serviceBus or timerTrigger)", at, b.Type)
	}
	return b, nil
}

// decodeJSON decodes a host configuration document. The host tolerates a UTF-8 BOM and
// a trailing newline; anything after the one top-level object is an error.
func decodeJSON(raw []byte, v any) error {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s: %s is not a valid %s", te.Field, te.Value, te.Type)
		}
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if dec.More() {
		return errors.New("not valid JSON: data after the top-level object")
	}
	return nil
}

// settingRE matches %NAME% in binding properties and arguments.
var settingRE = regexp.MustCompile(`%([^%\s]+)%`)

// ExpandSettings replaces every %NAME% in s with settings[NAME]; a name without a value
// is an error naming it, as the host refuses to index such a function.
func ExpandSettings(s string, settings map[string]string) (string, error) {
	var missing []string
	out := settingRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := settings[name]
		if !ok || v == "" {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%%%s%% does not resolve to a value (app setting %s is not set)", missing[0], missing[0])
	}
	return out, nil
}

// Expand returns a copy of the app with %SETTING% references in binding properties and
// customHandler arguments replaced from settings, and every timer schedule parsed.
// Errors name the file and the field.
func (a *AppDefinition) Expand(settings map[string]string) (*AppDefinition, error) {
	out := &AppDefinition{Root: a.Root, Host: a.Host, Functions: make([]Function, len(a.Functions))}
	out.Host.Arguments = nil
	for i, arg := range a.Host.Arguments {
		v, err := ExpandSettings(arg, settings)
		if err != nil {
			return nil, fmt.Errorf("devhost: host.json: customHandler.description.arguments[%d]: %w", i, err)
		}
		out.Host.Arguments = append(out.Host.Arguments, v)
	}
	for i, f := range a.Functions {
		nf := f
		nf.Bindings = make([]Binding, len(f.Bindings))
		for j, b := range f.Bindings {
			fields := []struct {
				name string
				p    *string
			}{
				{"route", &b.Route}, {"queueName", &b.QueueName}, {"topicName", &b.TopicName},
				{"subscriptionName", &b.SubscriptionName}, {"connection", &b.Connection}, {"schedule", &b.Schedule},
			}
			for _, fl := range fields {
				v, err := ExpandSettings(*fl.p, settings)
				if err != nil {
					return nil, fmt.Errorf("devhost: %s: bindings[%d].%s: %w", f.File, j, fl.name, err)
				}
				*fl.p = v
			}
			if b.Type == TypeTimerTrigger {
				if _, err := ParseSchedule(b.Schedule); err != nil {
					return nil, fmt.Errorf("devhost: %s: bindings[%d].schedule: function %s: %w", f.File, j, f.Name, err)
				}
			}
			nf.Bindings[j] = b
		}
		out.Functions[i] = nf
	}
	return out, nil
}

// ParseTimeSpan parses a .NET TimeSpan as host.json writes them: "hh:mm:ss",
// "hh:mm:ss.fffffff" or "d.hh:mm:ss[.fff]".
func ParseTimeSpan(s string) (time.Duration, error) {
	m := timeSpanRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("time span %q: want [d.]hh:mm:ss[.fffffff]", s)
	}
	days, _ := strconv.Atoi(orZero(m[1]))
	h, _ := strconv.Atoi(m[2])
	mi, _ := strconv.Atoi(m[3])
	sec, _ := strconv.Atoi(m[4])
	if h > 23 || mi > 59 || sec > 59 {
		return 0, fmt.Errorf("time span %q: hours, minutes or seconds out of range", s)
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(sec)*time.Second
	if frac := m[5]; frac != "" {
		ns, _ := strconv.Atoi((frac + "000000000")[:9])
		d += time.Duration(ns)
	}
	if m[0] != "" && strings.HasPrefix(strings.TrimSpace(s), "-") {
		d = -d
	}
	return d, nil
}

var timeSpanRE = regexp.MustCompile(`^-?(?:(\d{1,7})\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$`)

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}
