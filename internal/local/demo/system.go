// Package demo runs patrol's whole system on one machine — the emulators, the local
// Functions host (devhost) and the real `patrol serve` process — seeds a demo vault and
// organization, and plays the scripted tour of `patrol-dev local --demo`, checking the
// invariants of docs/design.md at the end.
//
// System is also what the end-to-end tests (internal/systemtest) start: the same
// assembly, so what the demo shows is what the tests exercise. Everything the demo does
// goes through a public interface of the system (Service Bus messages, the Event Grid
// webhook, the HTTP functions, Key Vault); the emulators' Go APIs are used only to seed
// what a person would have done by hand (approving a device sign-in, a PAT someone
// created long ago) and to inspect the result.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/identity"
	"github.com/patrol-dev/patrol/internal/local/devhost"
	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/wiring"
)

// Options configure Start.
type Options struct {
	// AppRoot is the folder holding host.json and functions/ (FindAppRoot finds it).
	AppRoot string
	// Dir receives ca.pem, patrol.env and handler.log; default ".patrol".
	Dir string
	// Command starts the handler, e.g. {os.Executable(), "serve"}.
	Command []string
	// ServiceBusConfig adds entities beside patrol's own.
	ServiceBusConfig *store.Config
	// Clock is the emulated clock; default clock.New() (wall time that can jump ahead).
	Clock *clock.Clock
	// Logger receives this process's own logs (emulators, operator-side patrol); nil
	// discards.
	Logger *slog.Logger
	// HandlerLog receives the devhost's and the handler's log lines as well as the
	// in-memory capture; nil: only the capture (and handler.log in Dir).
	HandlerLog io.Writer
	// Settings are extra app settings for the handler (they win over the stack's).
	Settings map[string]string
	// DisableTriggers is passed to devhost.
	DisableTriggers []string
	// OneProcess runs every function in one handler process (devhost.Options.OneProcess);
	// by default each Flex Consumption scale group has its own, as in Azure.
	OneProcess bool
	// Addrs pins emulator listen addresses (stack.Options.Addrs); HTTPAddr the
	// devhost's.
	Addrs    map[string]string
	HTTPAddr string
	// AdminAddr is the stack's inspection API address; default 127.0.0.1:0.
	AdminAddr string
	// Seed adopts the demo secrets (see Seed) after start.
	Seed bool
	// SessionIdleTimeout overrides host.json's serviceBus.sessionIdleTimeout when set:
	// how long the host holds a session with no message before taking the next one.
	// Fan-out tests with many one-message sessions shorten it.
	SessionIdleTimeout time.Duration
}

// System is patrol running locally.
type System struct {
	Stack    *stack.Stack
	Host     *devhost.Host
	Admin    string // base URL of the stack's inspection/control API
	CAFile   string
	EnvFile  string
	LogFile  string
	Settings map[string]string // the handler's app settings
	// Ops is patrol's operator side in this process (what `patrol adopt` and friends
	// build), on the emulated clock.
	Ops *wiring.Services
	// Capture holds every log line of the devhost and the handler.
	Capture *Capture
	// Outcomes collects the pat-events topic (subscription "all"), once WatchOutcomes ran.
	Outcomes *Outcomes

	log     *slog.Logger
	logFile *os.File
	sbc     *azservicebus.Client
	closers []func()
}

// FindAppRoot returns the nearest folder at or above dir holding host.json and
// functions/.
func FindAppRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if st, err := os.Stat(filepath.Join(d, "host.json")); err == nil && !st.IsDir() {
			if st, err := os.Stat(filepath.Join(d, "functions")); err == nil && st.IsDir() {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("demo: no host.json with a functions/ folder in %s or any parent: run from the patrol repository or pass --app-root", abs)
		}
	}
}

// Start starts the emulators, writes the dotenv and CA files, starts the devhost with
// the handler, subscribes the handler's Event Grid webhook to Key Vault's near-expiry
// and expiry events, and (with Seed) adopts the demo secrets.
func Start(ctx context.Context, o Options) (_ *System, err error) {
	if len(o.Command) == 0 {
		return nil, errors.New("demo: Options.Command is required (the handler to run, e.g. patrol serve)")
	}
	if o.Dir == "" {
		o.Dir = ".patrol"
	}
	if o.AdminAddr == "" {
		o.AdminAddr = "127.0.0.1:0"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sys := &System{log: log, Capture: &Capture{}}
	defer func() {
		if err != nil {
			sys.Close()
		}
	}()

	sys.Stack, err = stack.Start(ctx, stack.Options{Clock: o.Clock, Logger: log, ServiceBusConfig: o.ServiceBusConfig, Addrs: o.Addrs})
	if err != nil {
		return nil, err
	}
	sys.closers = append(sys.closers, sys.Stack.Close)
	if sys.Admin, err = sys.Stack.ServeAdmin(o.AdminAddr); err != nil {
		return nil, err
	}
	if sys.CAFile, sys.EnvFile, err = sys.Stack.WriteFiles(o.Dir); err != nil {
		return nil, err
	}
	sys.LogFile = filepath.Join(o.Dir, "handler.log")
	if sys.logFile, err = os.Create(sys.LogFile); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}

	sys.Settings = HandlerSettings(sys.Stack.Env(sys.CAFile), sys.Admin)
	maps.Copy(sys.Settings, o.Settings)

	if err := sys.startOps(ctx); err != nil {
		return nil, err
	}

	def, err := devhost.LoadAppDefinition(o.AppRoot)
	if err != nil {
		return nil, err
	}
	if o.SessionIdleTimeout > 0 {
		def.Host.ServiceBus.SessionIdleTimeout = o.SessionIdleTimeout
	}
	header := randomHex(16)
	mi, err := sys.Stack.Entra.ManagedIdentityHandler(header)
	if err != nil {
		return nil, err
	}
	outs := []io.Writer{sys.Capture, sys.logFile}
	if o.HandlerLog != nil {
		outs = append(outs, o.HandlerLog)
	}
	hostLog := slog.New(slog.NewTextHandler(io.MultiWriter(outs...), &slog.HandlerOptions{Level: slog.LevelInfo}))
	sys.Host, err = devhost.Start(ctx, devhost.Options{
		Definition: def, Settings: sys.Settings, Command: o.Command, Clock: sys.Stack.Clock, Logger: hostLog,
		HTTPAddr: o.HTTPAddr, ManagedIdentity: mi, IdentityHeader: header, DisableTriggers: o.DisableTriggers,
		OneProcess:    o.OneProcess,
		RestartOnExit: true, // as the Functions host does after a crash
	})
	if err != nil {
		return nil, err
	}
	sys.closers = append(sys.closers, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := sys.Host.Close(cctx); err != nil {
			log.Warn("stopping the devhost", "error", err)
		}
	})

	// Event Grid → the KeyVaultEvents webhook, near-expiry and expiry only (what the
	// Bicep subscription filters to).
	err = sys.Stack.KV.Subscribe(ctx, kvemu.Subscription{
		Name: "patrol-keyvault-events", Endpoint: sys.Host.EventGridURL("KeyVaultEvents"), Schema: kvemu.EventGridSchema,
		Vault: stack.Vault, EventTypes: []string{"Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"},
	})
	if err != nil {
		return nil, err
	}
	if o.Seed {
		if err := sys.Seed(ctx); err != nil {
			return nil, err
		}
	}
	return sys, nil
}

// HandlerSettings are the function app's settings under devhost: the stack's, minus
// the workload client's AZURE_* credentials (the app must authenticate as its managed
// identity, as in Azure, not with the operator's credentials), plus the emulated
// clock's URL and the admin API token that reading it needs. The handler also inherits this process's environment (as under the real
// host), so a caller that may have AZURE_* variables set — a shell that sourced
// patrol.env — must unset them first (`patrol-dev local` does).
func HandlerSettings(env map[string]string, admin string) map[string]string {
	out := map[string]string{}
	for _, k := range append(config.Names(),
		"PATROL_LOCAL_KEYVAULT_RESOURCE", "PATROL_LOCAL_ORGANIZATION") {
		if v, ok := env[k]; ok && !strings.HasPrefix(k, "AZURE_") {
			out[k] = v
		}
	}
	out[config.LocalClockURL] = admin + "/clock"
	out[config.LocalAdminToken] = env[config.LocalAdminToken]
	if _, ok := out[config.SettingSweepSchedule]; !ok {
		out[config.SettingSweepSchedule] = config.DefaultSweepSchedule
	}
	return out
}

// startOps builds patrol's operator side in this process, authenticated as the
// stack's workload app (Key Vault Secrets Officer), on the emulated clock.
func (s *System) startOps(ctx context.Context) error {
	env := s.Stack.Env(s.CAFile)
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	wo := identity.WorkloadOptions{AuthorityHost: cfg.AuthorityHost, HTTPClient: s.Stack.HTTP}
	cred, err := azidentity.NewClientSecretCredential(stack.TenantID, stack.WorkloadClientID, s.Stack.WorkloadSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: wo.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		return fmt.Errorf("demo: workload credential: %w", err)
	}
	s.Ops, err = wiring.Build(ctx, cfg, wiring.Options{
		Logger: s.log.With("side", "operator"), HTTPClient: s.Stack.HTTP, Credential: cred, Clock: rotation.NowFunc(s.Stack.Clock.Now),
	})
	if err != nil {
		return err
	}
	ops := s.Ops
	s.closers = append(s.closers, func() { _ = ops.Close(context.Background()) })
	s.sbc, err = azservicebus.NewClientFromConnectionString(env[config.SettingServiceBusConnection], nil)
	if err != nil {
		return fmt.Errorf("demo: service bus client: %w", err)
	}
	s.closers = append(s.closers, func() { _ = s.sbc.Close(context.Background()) })
	return nil
}

// RefreshCredentials rebuilds the operator side and restarts the handler, so that no
// access token cached before a clock jump is used after it. patrol copes with such tokens
// on its own (Key Vault's claims challenge, a refresh after Azure DevOps refuses one);
// tests call this when they must not depend on that recovery path.
// The service accounts' MSAL caches live in the identity vault; sign them in again with SignIn
// after calling this.
func (s *System) RefreshCredentials(ctx context.Context) error {
	if err := s.startOps(ctx); err != nil {
		return err
	}
	return s.Host.Restart(ctx)
}

// ServiceBus is a client of the local broker (the operator's view).
func (s *System) ServiceBus() *azservicebus.Client { return s.sbc }

// Close stops everything Start started, in reverse order.
func (s *System) Close() {
	for _, c := range slices.Backward(s.closers) {
		c()
	}
	s.closers = nil
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
}

// Capture is an in-memory copy of log output, safe for concurrent writes.
type Capture struct {
	mu  sync.Mutex
	buf []byte
}

func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// String returns everything written so far.
func (c *Capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// Outcomes collects the outcomes published on pat-events.
type Outcomes struct {
	mu   sync.Mutex
	cond *sync.Cond
	all  []rotation.Outcome
	raw  []string
	err  error
}

// WatchOutcomes starts receiving pat-events (subscription "all") until ctx ends.
func (s *System) WatchOutcomes(ctx context.Context) error {
	r, err := s.sbc.NewReceiverForSubscription("pat-events", "all", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		return fmt.Errorf("demo: receive pat-events: %w", err)
	}
	o := &Outcomes{}
	o.cond = sync.NewCond(&o.mu)
	s.Outcomes = o
	go func() {
		defer r.Close(context.Background())
		for ctx.Err() == nil {
			msgs, err := r.ReceiveMessages(ctx, 100, &azservicebus.ReceiveMessagesOptions{TimeAfterFirstMessage: 10 * time.Millisecond})
			if err != nil {
				if ctx.Err() == nil {
					o.mu.Lock()
					o.err = err
					o.mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			o.mu.Lock()
			for _, m := range msgs {
				var out rotation.Outcome
				o.raw = append(o.raw, string(m.Body))
				if json.Unmarshal(m.Body, &out) == nil {
					o.all = append(o.all, out)
				}
			}
			o.cond.Broadcast()
			o.mu.Unlock()
		}
		o.mu.Lock()
		o.cond.Broadcast()
		o.mu.Unlock()
	}()
	return nil
}

// All returns the outcomes received so far.
func (o *Outcomes) All() []rotation.Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.all)
}

// Raw returns the message bodies received so far.
func (o *Outcomes) Raw() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.raw)
}

// Wait returns the first outcome (from index from on) matching match, waiting up to
// ctx's deadline.
func (o *Outcomes) Wait(ctx context.Context, from int, match func(rotation.Outcome) bool) (rotation.Outcome, int, error) {
	stop := context.AfterFunc(ctx, func() {
		o.mu.Lock()
		o.cond.Broadcast()
		o.mu.Unlock()
	})
	defer stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		for i := from; i < len(o.all); i++ {
			if match(o.all[i]) {
				return o.all[i], i + 1, nil
			}
		}
		if err := ctx.Err(); err != nil {
			last := ""
			if o.err != nil {
				last = " (last receive error: " + o.err.Error() + ")"
			}
			return rotation.Outcome{}, from, fmt.Errorf("no matching outcome on pat-events: %w%s", err, last)
		}
		o.cond.Wait()
	}
}

// Len is how many outcomes arrived so far.
func (o *Outcomes) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.all)
}
