package devhost

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// HostVersion is what devhost reports in X-Azure-Functions-HostVersion and User-Agent.
// It is a 4.x version like the hosts patrol runs on, so a handler that checks it sees a
// plausible value.
const HostVersion = "4.1044.0.0"

// Defaults for Options.
const (
	DefaultReadyTimeout = 30 * time.Second // the host's InitializationTimeout
	DefaultStopTimeout  = 10 * time.Second
	readyPollInterval   = 25 * time.Millisecond // DefaultHttpWorkerService.IsWorkerReady
)

// Options configures Start.
type Options struct {
	Definition *AppDefinition // from LoadAppDefinition; %SETTING% references are expanded from Settings

	// Settings are the app settings: they become the handler's environment (on top of
	// this process's), resolve %SETTING% references, and name the Service Bus
	// connection strings (a binding's "connection").
	Settings map[string]string

	// Command overrides customHandler.description entirely (executable and arguments),
	// e.g. []string{os.Args[0], "serve"} or a test-built binary. Empty: host.json's.
	Command []string

	// ServiceBusOptions are passed to azservicebus.NewClientFromConnectionString for
	// every connection (tests add retry settings here). Optional.
	ServiceBusOptions *azservicebus.ClientOptions

	Clock  *clock.Clock // timers and lock renewal; default clock.New()
	Logger *slog.Logger // host, handler output and invocation logs; default discard
	// HTTPAddr is where HTTP triggers and the Event Grid webhook are served; default
	// 127.0.0.1:0.
	HTTPAddr string

	// ManagedIdentity, when set, is served on a plain-HTTP loopback listener whose URL
	// becomes IDENTITY_ENDPOINT, with IdentityHeader as IDENTITY_HEADER (required with
	// it), so the app's ManagedIdentityCredential works as on App Service. See
	// entra.Emulator.ManagedIdentityHandler.
	ManagedIdentity http.Handler
	IdentityHeader  string

	// Keys: FunctionKey is accepted by every function-level HTTP trigger, MasterKey by
	// every trigger and the admin API, EventGridKey ("eventgrid_extension" system key)
	// by the Event Grid webhook. Empty: generated.
	FunctionKey, MasterKey, EventGridKey string

	// DisableTriggers lists functions whose Service Bus receivers and timers are not
	// started (they can still be invoked with Invoke or TriggerTimer).
	DisableTriggers []string

	// OneProcess runs every function in one handler process. By default each scale
	// group gets its own process, as Flex Consumption runs each on its own instances:
	// the HTTP functions together, every other function alone (ScaleGroup), so a
	// handler that keeps state in memory for another function fails here as in Azure.
	OneProcess bool

	// RestartOnExit restarts the handler when it exits on its own (a crash), as the host
	// does; Kill, Restart and Close are not crashes.
	RestartOnExit bool

	ReadyTimeout time.Duration // default DefaultReadyTimeout
	StopTimeout  time.Duration // SIGTERM → SIGKILL grace; default DefaultStopTimeout
}

// Counts are the invocations of one function by outcome.
type Counts struct {
	Succeeded int
	Failed    int
}

// Host is a running devhost.
type Host struct {
	def      *AppDefinition
	opts     Options
	log      *slog.Logger
	clk      *clock.Clock
	keys     keys
	settings map[string]string

	httpLn   net.Listener
	httpSrv  *http.Server
	msiLn    net.Listener
	msiSrv   *http.Server
	identity map[string]string // IDENTITY_ENDPOINT/IDENTITY_HEADER, when served

	workers    []*worker          // one per scale group; the HTTP group first
	byFunction map[string]*worker // by lower-case function name
	out        *outputs

	client *http.Client

	statsMu  sync.Mutex
	stats    map[string]*Counts
	inflight int
	idle     *sync.Cond

	ctx    context.Context // cancelled by Close: stops triggers
	cancel context.CancelFunc
	wg     sync.WaitGroup // trigger goroutines

	sb     *serviceBusTriggers
	timers *timerTriggers

	closeOnce sync.Once
	closeErr  error
}

type keys struct{ function, master, eventGrid string }

// Start expands the app's settings, serves the HTTP endpoints (and the managed-identity
// endpoint), starts the handler and waits until it answers GET /, then starts the
// Service Bus receivers and timers. ctx bounds the start only; everything runs until
// Close.
func Start(ctx context.Context, opts Options) (*Host, error) {
	if opts.Definition == nil {
		return nil, errors.New("devhost: Options.Definition is nil (use devhost.LoadAppDefinition)")
	}
	if opts.ManagedIdentity != nil && opts.IdentityHeader == "" {
		return nil, errors.New("devhost: Options.IdentityHeader is required with ManagedIdentity (the handler checks X-IDENTITY-HEADER against it)")
	}
	settings := map[string]string{}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	app, err := opts.Definition.Expand(settings)
	if err != nil {
		return nil, err
	}
	h := &Host{
		def: app, opts: opts, settings: settings, log: opts.Logger, clk: opts.Clock,
		stats: map[string]*Counts{},
		keys:  keys{function: opts.FunctionKey, master: opts.MasterKey, eventGrid: opts.EventGridKey},
	}
	h.idle = sync.NewCond(&h.statsMu)
	h.out = &outputs{h: h, clients: map[string]*azservicebus.Client{}, senders: map[string]*azservicebus.Sender{}}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if h.clk == nil {
		h.clk = clock.New()
	}
	h.planWorkers()
	for _, k := range []*string{&h.keys.function, &h.keys.master, &h.keys.eventGrid} {
		if *k == "" {
			*k = newKey()
		}
	}
	if h.opts.ReadyTimeout <= 0 {
		h.opts.ReadyTimeout = DefaultReadyTimeout
	}
	if h.opts.StopTimeout <= 0 {
		h.opts.StopTimeout = DefaultStopTimeout
	}
	var timeout time.Duration
	if app.Host.FunctionTimeout > 0 {
		timeout = app.Host.FunctionTimeout + time.Minute // the host's HttpClient timeout
	}
	h.client = &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // the handler is on loopback; never via a proxy
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		// The host follows redirects for non-forwarded invocations.
	}
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))

	if err := h.serveHTTP(); err != nil {
		h.cancel()
		return nil, err
	}
	if opts.ManagedIdentity != nil {
		if err := h.serveMSI(); err != nil {
			_ = h.Close(context.Background())
			return nil, err
		}
	}
	// Triggers are prepared before the handler starts so configuration errors
	// (a missing connection setting) surface before a process is spawned.
	h.sb, err = newServiceBusTriggers(h)
	if err != nil {
		_ = h.Close(context.Background())
		return nil, err
	}
	h.timers, err = newTimerTriggers(h)
	if err != nil {
		_ = h.Close(context.Background())
		return nil, err
	}
	if err := h.checkOutputs(); err != nil {
		_ = h.Close(context.Background())
		return nil, err
	}
	err = h.eachWorker(func(w *worker) error {
		w.lifecycle.Lock()
		defer w.lifecycle.Unlock()
		return w.startProcess(ctx)
	})
	if err != nil {
		_ = h.Close(context.Background())
		return nil, err
	}
	h.sb.start()
	h.timers.start()
	h.log.Info("devhost: started", "url", h.URL(), "functions", len(app.Functions), "processes", len(h.workers))
	return h, nil
}

func newKey() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *Host) serveHTTP() error {
	addr := h.opts.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("devhost: listen %s: %w", addr, err)
	}
	h.httpLn = ln
	h.httpSrv = &http.Server{Handler: h.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := h.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("devhost: http serve", "err", err)
		}
	}()
	return nil
}

func (h *Host) serveMSI() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("devhost: managed identity: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/msi/token", h.opts.ManagedIdentity)
	h.msiLn = ln
	h.msiSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	h.identity = map[string]string{
		"IDENTITY_ENDPOINT": "http://" + ln.Addr().String() + "/msi/token",
		"IDENTITY_HEADER":   h.opts.IdentityHeader,
	}
	go func() {
		if err := h.msiSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("devhost: managed identity serve", "err", err)
		}
	}()
	return nil
}

// Definition returns the app definition as devhost runs it (settings expanded).
func (h *Host) Definition() *AppDefinition { return h.def }

// URL is the base URL of the HTTP endpoints, e.g. http://127.0.0.1:7071 (HTTP triggers
// are under URL()+"/api/…", the Event Grid webhook at
// URL()+"/runtime/webhooks/eventgrid").
func (h *Host) URL() string { return "http://" + h.httpLn.Addr().String() }

// FunctionURL is the URL of an HTTP-triggered function's route with parameters
// filled in from params, without the key.
func (h *Host) FunctionURL(function string, params map[string]string) (string, error) {
	f, ok := h.def.Function(function)
	if !ok || f.TriggerBinding().Type != TypeHTTPTrigger {
		return "", fmt.Errorf("devhost: %q is not an HTTP-triggered function", function)
	}
	path, err := fillRoute(routeOf(f), params)
	if err != nil {
		return "", fmt.Errorf("devhost: function %s: %w", function, err)
	}
	prefix := ""
	if h.def.Host.RoutePrefix != "" {
		prefix = "/" + h.def.Host.RoutePrefix
	}
	return h.URL() + prefix + "/" + path, nil
}

// EventGridURL is the webhook URL an Event Grid subscription for function would use,
// system key included.
func (h *Host) EventGridURL(function string) string {
	return h.URL() + "/runtime/webhooks/eventgrid?functionName=" + function + "&code=" + h.keys.eventGrid
}

// FunctionKey is the key function-level HTTP triggers accept (x-functions-key or ?code=).
func (h *Host) FunctionKey() string { return h.keys.function }

// MasterKey is the admin key.
func (h *Host) MasterKey() string { return h.keys.master }

// EventGridKey is the eventgrid_extension system key the webhook requires.
func (h *Host) EventGridKey() string { return h.keys.eventGrid }

// IdentityEnv returns IDENTITY_ENDPOINT and IDENTITY_HEADER as given to the handler
// (empty without Options.ManagedIdentity).
func (h *Host) IdentityEnv() map[string]string {
	out := map[string]string{}
	for k, v := range h.identity {
		out[k] = v
	}
	return out
}

// Counts returns the invocation counts of one function.
func (h *Host) Counts(function string) Counts {
	h.statsMu.Lock()
	defer h.statsMu.Unlock()
	if c, ok := h.stats[function]; ok {
		return *c
	}
	return Counts{}
}

// AllCounts returns the invocation counts of every function invoked so far.
func (h *Host) AllCounts() map[string]Counts {
	h.statsMu.Lock()
	defer h.statsMu.Unlock()
	out := make(map[string]Counts, len(h.stats))
	for k, c := range h.stats {
		out[k] = *c
	}
	return out
}

// WaitIdle blocks until no invocation is in flight (Service Bus messages count until
// settled), or ctx ends. Pair it with the
// broker's WaitIdle to wait for a queue to drain.
func (h *Host) WaitIdle(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		h.statsMu.Lock()
		h.idle.Broadcast()
		h.statsMu.Unlock()
	})
	defer stop()
	h.statsMu.Lock()
	defer h.statsMu.Unlock()
	for h.inflight > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("devhost: wait idle: %d invocation(s) in flight: %w", h.inflight, err)
		}
		h.idle.Wait()
	}
	return nil
}

func (h *Host) begin() {
	h.statsMu.Lock()
	h.inflight++
	h.statsMu.Unlock()
}

// hold keeps WaitIdle waiting around work that surrounds an invocation (settling a
// Service Bus message after it); release ends it.
func (h *Host) hold() { h.begin() }

func (h *Host) release() {
	h.statsMu.Lock()
	h.inflight--
	if h.inflight == 0 {
		h.idle.Broadcast()
	}
	h.statsMu.Unlock()
}

func (h *Host) end(function string, ok bool) {
	h.statsMu.Lock()
	c := h.stats[function]
	if c == nil {
		c = &Counts{}
		h.stats[function] = c
	}
	if ok {
		c.Succeeded++
	} else {
		c.Failed++
	}
	h.inflight--
	if h.inflight == 0 {
		h.idle.Broadcast()
	}
	h.statsMu.Unlock()
}

// Close stops the triggers (letting invocations in flight finish, bounded by ctx), the
// HTTP endpoints and the handler (SIGTERM, then SIGKILL after StopTimeout).
func (h *Host) Close(ctx context.Context) error {
	h.closeOnce.Do(func() {
		h.cancel()
		if h.timers != nil {
			h.timers.stop()
		}
		done := make(chan struct{})
		go func() { h.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
		if h.sb != nil {
			h.sb.close(ctx)
		}
		var errs []error
		if h.httpSrv != nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := h.httpSrv.Shutdown(sctx); err != nil {
				_ = h.httpSrv.Close()
			}
			cancel()
		}
		if h.msiSrv != nil {
			_ = h.msiSrv.Close()
		}
		h.out.close(ctx)
		errs = append(errs, h.eachWorker(func(w *worker) error {
			w.lifecycle.Lock()
			defer w.lifecycle.Unlock()
			w.procMu.Lock()
			p := w.proc
			w.proc = nil
			w.procMu.Unlock()
			if p != nil {
				return p.stop(h.opts.StopTimeout)
			}
			return nil
		}))
		h.client.CloseIdleConnections()
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}
