package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/functionapp"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/wiring"
)

func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the Azure Functions custom handler (the Functions host starts it)",
		Long: `Serve patrol's functions to the Azure Functions host (or devhost under
` + "`patrol-dev local`" + `) on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT. It answers the host's readiness
probe before anything connects; Azure clients are built on the first invocation. Logs
are JSON lines on stdout, each carrying the invocation id. SIGTERM drains invocations in
flight and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Listen first: the host's probe must succeed as soon as the process is up.
			addr, err := handlers.ListenAddr(os.Getenv)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("serve: listen %s: %w", addr, err)
			}
			// Serve first: the host's readiness probe is answered while the settings are
			// read and validated (handlers.Late holds any invocation until then).
			late := handlers.NewLate()
			serveCtx, stopServing := context.WithCancel(cmd.Context())
			defer stopServing()
			served := make(chan error, 1)
			go func() { served <- handlers.ServeListener(serveCtx, ln, late) }()
			// One JSON stream on stdout. The protocol layer adds invocationId and
			// function to its own records; everything below the App (functionapp, the
			// core, the adapters) logs with the invocation's context and gets them from
			// handlers.LogHandler.
			jsonOut := slog.NewJSONHandler(cmd.OutOrStdout(), &slog.HandlerOptions{Level: slog.LevelInfo})
			protoLog := slog.New(jsonOut)
			log := slog.New(handlers.LogHandler(jsonOut))
			cfg, err := loadSettings(cmd, sends)
			if err != nil {
				late.Fail(err)
				stopServing()
				<-served
				return err
			}
			log.Info("patrol handler listening", "addr", ln.Addr().String(), "version", Version(), "settings", cfg)
			app := newFunctionHost(cfg, log, os.Getenv(config.LocalClockURL), wiringOptions(cmd.Context()))
			if app.clock != nil {
				app.clock.token = os.Getenv(config.LocalAdminToken)
			}
			h := handlers.New(handlers.Options{Deps: app.deps, Logger: protoLog})
			late.Set(app.syncClock(h))
			err = <-served
			app.close()
			log.Info("patrol handler stopped")
			return err
		},
	}
}

// functionHost builds the handler's dependencies once, on the first invocation.
type functionHost struct {
	cfg   config.Config
	log   *slog.Logger
	clock *localClock // nil outside the local stack
	wo    wiring.Options

	mu  sync.Mutex
	svc *wiring.Services
}

func newFunctionHost(cfg config.Config, log *slog.Logger, clockURL string, wo wiring.Options) *functionHost {
	f := &functionHost{cfg: cfg, log: log, wo: wo}
	if clockURL != "" {
		f.clock = &localClock{url: clockURL, client: &http.Client{Timeout: 5 * time.Second}}
		f.wo.Clock = f.clock
	}
	return f
}

// syncClock is the local stack's one hook into the handler: it reads the emulated time
// before every invocation (not before the readiness probe), so each invocation decides
// with the time the emulators show. Outside the local stack it returns h.
func (f *functionHost) syncClock(h http.Handler) http.Handler {
	if f.clock == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Trim(r.URL.Path, "/") != "" {
			if err := f.clock.Sync(r.Context()); err != nil {
				f.log.WarnContext(r.Context(), "using the last known emulated time", "error", err)
			}
		}
		h.ServeHTTP(w, r)
	})
}

// deps is handlers.Options.Deps: it builds the adapters (no network call: every client
// connects on first use) and the App.
func (f *functionHost) deps(ctx context.Context) (handlers.Deps, error) {
	if f.clock != nil && !f.clock.synced.Load() {
		// Never run on the wall clock when the stack's time is another.
		if err := f.clock.Sync(ctx); err != nil {
			return handlers.Deps{}, err
		}
	}
	o := f.wo
	if o.Logger == nil {
		o.Logger = f.log
	}
	svc, err := wiring.Build(ctx, f.cfg, o)
	if err != nil {
		return handlers.Deps{}, err
	}
	if svc.Bus == nil {
		return handlers.Deps{}, errors.New("serve: no Service Bus connection configured")
	}
	cooldown := f.cfg.ManualCooldown
	if cooldown == 0 {
		cooldown = -1 // PATROL_MANUAL_COOLDOWN=0: off
	}
	app, err := functionapp.New(functionapp.Options{
		Rotator: svc.Rotator, Inventory: svc.Store, Commands: svc.Bus, Publisher: svc.Bus, Replies: svc.Bus, PATs: patLister{pats: svc.PATs, ids: svc.Identities},
		People:    wiring.People{PATs: svc.PATs, Identities: svc.Identities},
		Unmanaged: functionapp.UnmanagedPolicy(f.cfg.OffboardingUnmanaged),
		Defaults:  svc.Defaults, Vault: VaultName(f.cfg.KeyVaultURL), Clock: svc.Clock, Logger: f.log,
		CommandKeys: svc.IdentityStore.CommandKeys(), History: svc.Store, ManualCooldown: cooldown, Reschedule: svc.Bus,
	})
	if err != nil {
		return handlers.Deps{}, err
	}
	f.mu.Lock()
	f.svc = svc
	f.mu.Unlock()
	return handlers.Deps{App: app, Failures: svc.Bus}, nil
}

func (f *functionHost) close() {
	f.mu.Lock()
	svc := f.svc
	f.mu.Unlock()
	if svc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Close(ctx); err != nil {
		f.log.Warn("closing connections", "error", err)
	}
}

// VaultName is the vault's name from its URL (the first DNS label), as Key Vault events
// name it.
func VaultName(vaultURL string) string {
	u, err := url.Parse(vaultURL)
	if err != nil {
		return ""
	}
	host := u.Hostname()
	if i := strings.IndexByte(host, '.'); i > 0 {
		return host[:i]
	}
	return ""
}

// patLister lists the PATs patrol created under a service account (display names
// starting "patrol "), for the sweep's orphan clean-up, through wiring.PATs so a token
// Azure DevOps refuses is refreshed once like every other call.
type patLister struct {
	pats wiring.PATs
	ids  rotation.Identities
}

func (p patLister) PatrolPATs(ctx context.Context, account, org string) ([]rotation.PATInfo, error) {
	tok, err := p.ids.AccessToken(ctx, account)
	if err != nil {
		return nil, err
	}
	return p.pats.PatrolPATs(ctx, tok, org)
}

// localClock follows the local stack's emulated clock: wall time plus the offset last
// read from the stack's admin API. Its waits are real (rotation.NowFunc's): back-off is
// about the server, not the emulated calendar.
type localClock struct {
	url    string
	token  string // the admin API's bearer token (config.LocalAdminToken)
	client *http.Client
	offset atomic.Int64 // nanoseconds
	synced atomic.Bool
}

var _ rotation.Clock = (*localClock)(nil)

func (c *localClock) Now() time.Time { return time.Now().UTC().Add(time.Duration(c.offset.Load())) }

func (c *localClock) Sleep(ctx context.Context, d time.Duration) error {
	return rotation.SystemClock.Sleep(ctx, d)
}

// Sync reads the emulated time once.
func (c *localClock) Sync(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fmt.Errorf("serve: %s: %w", config.LocalClockURL, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("serve: read the emulated clock: %w", err)
	}
	defer res.Body.Close()
	var body struct {
		Now time.Time `json:"now"`
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("serve: read the emulated clock: %s", res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Now.IsZero() {
		return fmt.Errorf("serve: read the emulated clock: the answer has no \"now\"")
	}
	c.offset.Store(int64(time.Until(body.Now)))
	c.synced.Store(true)
	return nil
}
