package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/functionapp"
	"github.com/patrol-dev/patrol/internal/identity"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// The fault campaign: for each seed, a schedule drawn over the whole path — Key Vault
// near-expiry and expiry events delivered by the Key Vault emulator through its Event
// Grid dispatcher (with Event Grid's retries), HR offboarding messages, emergency
// rotations (RotateNow), sweeps, wake-ups and revocations arriving through Service Bus
// — run by the real function app (internal/functionapp) over the real adapters and
// SDKs against the emulators, in this process. A small stand-in for the Functions host
// (campaign.pump) receives every queue with the real azservicebus client and settles
// each message the way the handlers do (complete on success; otherwise fail the
// invocation, recording a permanent failure once, and let the broker redeliver and
// dead-letter at MaxDeliveryCount). Into that it injects: crashes right after every
// protocol step and in the middle of a request (the server acted, the answer was lost),
// 429 with short and long Retry-After, 5xx, dropped connections, duplicate deliveries,
// sessions delivered late and out of order, locks that expire under the handler,
// failed and repeated Event Grid deliveries, and clock jumps across renew windows,
// grace periods and lock durations. Then every fault stops, the clock runs on past
// grace, and the invariants are checked.
//
// PATROL_FAULT_SEEDS=N runs seeds 1..N (default defaultFaultSeeds: 16, or 6 under the
// race detector); PATROL_FAULT_SEED=S replays one, PATROL_FAULT_STEPS=1,4 only those
// steps of it (a shrunk schedule), PATROL_FAULT_TRACE=1 prints every schedule, and
// PATROL_FAULT_SHRINK=0 skips shrinking a failing one. A failing seed is reported with
// its schedule and a replay line, then shrunk: steps are dropped one at a time while the
// seed still fails. The schedule is a function of the seed (each step draws from its own
// stream); goroutine timing inside the emulators is not, so a replay repeats the
// schedule, not necessarily every interleaving.

const (
	campaignPerson = stack.Person
)

func TestFaultCampaign(t *testing.T) {
	seeds, err := campaignSeeds(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := campaignSteps(os.Getenv("PATROL_FAULT_STEPS"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var (
		mu         sync.Mutex
		violations int
		total      campaignStats
	)
	// Seeds run in parallel (-parallel, default GOMAXPROCS), each in a world of its own.
	t.Run("seeds", func(t *testing.T) {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				c := newCampaign(t, seed)
				c.keep = keep
				vs := c.run()
				if os.Getenv("PATROL_FAULT_TRACE") != "" {
					t.Logf("schedule:\n  %s", strings.Join(c.trace, "\n  "))
				}
				c.mu.Lock()
				stats := c.stats
				c.mu.Unlock()
				mu.Lock()
				total.add(stats)
				violations += len(vs)
				mu.Unlock()
				if len(vs) == 0 {
					return
				}
				t.Errorf("seed %d: %d violations:\n  %s\nschedule:\n  %s\nreplay: %s",
					seed, len(vs), strings.Join(vs, "\n  "), strings.Join(c.trace, "\n  "), replay(seed, nil))
				if os.Getenv("PATROL_FAULT_SHRINK") == "0" {
					return
				}
				steps, svs, trace := shrink(t, seed, c.steps, vs, c.trace)
				t.Errorf("seed %d shrunk to steps %v (of %v): %d violations:\n  %s\nschedule:\n  %s\nreplay: %s",
					seed, steps, c.steps, len(svs), strings.Join(svs, "\n  "), strings.Join(trace, "\n  "), replay(seed, steps))
			})
		}
	})
	took := time.Since(start)
	t.Logf("%d seeds in %v (%.0f seeds/minute); %s", len(seeds), took.Round(time.Millisecond),
		float64(len(seeds))/took.Minutes(), total)
	t.Logf("%d seeds, %d violations", len(seeds), violations)
}

// campaignSeeds reads PATROL_FAULT_SEED (one seed) or PATROL_FAULT_SEEDS (seeds 1..N).
func campaignSeeds(getenv func(string) string) ([]uint64, error) {
	if s := getenv("PATROL_FAULT_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("PATROL_FAULT_SEED=%q: %w", s, err)
		}
		return []uint64{seed}, nil
	}
	n := defaultFaultSeeds
	if s := getenv("PATROL_FAULT_SEEDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("PATROL_FAULT_SEEDS=%q: want a positive number", s)
		}
		n = v
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	return seeds, nil
}

// campaignSteps reads PATROL_FAULT_STEPS, the steps of a shrunk schedule to replay
// ("1,4,7"); empty plays every step.
func campaignSteps(v string) (map[int]bool, error) {
	if v == "" {
		return nil, nil
	}
	keep := map[int]bool{}
	for _, f := range strings.Split(v, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || i < 0 {
			return nil, fmt.Errorf("PATROL_FAULT_STEPS=%q: want step numbers separated by commas", v)
		}
		keep[i] = true
	}
	return keep, nil
}

// replay is the one-line command that replays a seed (shrunk to steps, when given).
func replay(seed uint64, steps []int) string {
	env := fmt.Sprintf("PATROL_FAULT_SEED=%d", seed)
	if steps != nil {
		s := make([]string, len(steps))
		for i, n := range steps {
			s[i] = strconv.Itoa(n)
		}
		env += " PATROL_FAULT_STEPS=" + strings.Join(s, ",")
	}
	return env + " go test ./internal/e2e -run 'TestFaultCampaign$' -count=1 -v"
}

func TestCampaignSeeds(t *testing.T) {
	for name, tc := range map[string]struct {
		env     map[string]string
		want    []uint64
		wantErr bool
	}{
		"by default a few seeds from 1":    {want: seedsUpTo(defaultFaultSeeds)},
		"PATROL_FAULT_SEEDS sets how many": {env: map[string]string{"PATROL_FAULT_SEEDS": "3"}, want: []uint64{1, 2, 3}},
		"PATROL_FAULT_SEED replays one, whatever PATROL_FAULT_SEEDS says": {
			env: map[string]string{"PATROL_FAULT_SEED": "77", "PATROL_FAULT_SEEDS": "3"}, want: []uint64{77}},
		"a count that is not a positive number is refused": {env: map[string]string{"PATROL_FAULT_SEEDS": "0"}, wantErr: true},
		"a seed that is not a number is refused":           {env: map[string]string{"PATROL_FAULT_SEED": "x"}, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := campaignSeeds(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Errorf("campaignSeeds = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func seedsUpTo(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// campaignStats counts what the schedules exercised, so a campaign that stopped
// reaching the paths it is meant to test shows it.
type campaignStats struct {
	steps, rotated, crashes, midRequest, faults, rescheduled, duplicates, lockExpiries, gridFailures, rejected int
}

func (s *campaignStats) add(o campaignStats) {
	s.steps += o.steps
	s.rotated += o.rotated
	s.crashes += o.crashes
	s.midRequest += o.midRequest
	s.faults += o.faults
	s.rescheduled += o.rescheduled
	s.duplicates += o.duplicates
	s.lockExpiries += o.lockExpiries
	s.gridFailures += o.gridFailures
	s.rejected += o.rejected
}

func (s campaignStats) String() string {
	return fmt.Sprintf("%d steps, %d rotations, %d crashes at a step, %d mid-request, %d injected faults, %d throttled reschedules, "+
		"%d duplicate deliveries, %d lock expiries, %d failed Event Grid deliveries, %d messages rejected",
		s.steps, s.rotated, s.crashes, s.midRequest, s.faults, s.rescheduled, s.duplicates, s.lockExpiries, s.gridFailures, s.rejected)
}

// campaign is one seed's world.
type campaign struct {
	t     *testing.T
	e     *env
	seed  uint64
	rng   *rand.Rand
	rngMu sync.Mutex
	app   *functionapp.App
	cp    *crashPoint
	mid   *midCrash
	sbc   *azservicebus.Client
	grid  *gridHook

	secrets []string
	began   time.Time
	// keep, when set, is the only steps of the schedule to play (a shrunk schedule).
	keep  map[int]bool
	steps []int // the steps played
	// quiet turns every injected fault off (the final drain).
	quiet  bool
	jumped time.Duration

	mu     sync.Mutex
	ledger map[string]*received // queue/sequence number → what happened to it
	hrSent []string             // HR event ids sent
	bodies []string             // HTTP bodies answered (RotateNow, SecretStatus)
	trace  []string
	stats  campaignStats
}

// received is one message the stand-in host received, and how it ended.
type received struct {
	queue, id string
	seq       int64
	final     string // "completed" once the function succeeded and the message was completed
}

func newCampaign(t *testing.T, seed uint64) *campaign {
	e := newEnv(t, envOptions{})
	// A connection the client dialed but never used holds the emulators' Shutdown for
	// its full 5s grace; closing idle connections first lets each seed end at once.
	t.Cleanup(e.st.HTTP.CloseIdleConnections)
	c := &campaign{began: time.Now(), t: t, e: e, seed: seed, rng: rand.New(rand.NewPCG(seed, 0)), ledger: map[string]*received{}}
	c.cp = &crashPoint{}
	c.mid = &midCrash{next: e.seen.next}
	e.seen.next = c.mid

	r := e.rotator(crashStore{e.svc.Store, c.cp}, crashPATs{e.svc.PATs, c.cp}, crashIDs{e.svc.Identities, c.cp}, crashFX{e.svc.Effects, c.cp})
	app, err := functionapp.New(functionapp.Options{
		Rotator: r, Inventory: e.svc.Store, Commands: e.svc.Bus, Publisher: e.svc.Bus, Reschedule: e.svc.Bus,
		PATs: campaignPATLister{e}, Defaults: e.svc.Defaults, Vault: stack.Vault, Clock: e.svc.Clock,
		Logger: e.opts.Logger.With("component", "functionapp"), CommandKeys: e.svc.Store.CommandKeys(), History: e.svc.Store,
		PollInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.app = app
	c.sbc, err = azservicebus.NewClientFromConnectionString(e.cfg.ServiceBusConnection,
		&azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.sbc.Close(context.Background()) })

	c.grid = &gridHook{c: c, rng: rand.New(rand.NewPCG(seed, 0x9e1d))}
	srv := httptest.NewServer(c.grid)
	t.Cleanup(srv.Close)
	if err := e.st.KV.Subscribe(e.ctx, kvemu.Subscription{
		Name: "campaign", Endpoint: srv.URL + "/runtime/webhooks/eventgrid?functionName=KeyVaultEvents", Schema: kvemu.EventGridSchema,
		Vault: stack.Vault, EventTypes: []string{kvemu.EventSecretNearExpiry, kvemu.EventSecretExpired},
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *campaign) intn(n int) int {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	return c.rng.IntN(n)
}

// count updates the stats (the Event Grid hook runs on the dispatcher's goroutines).
func (c *campaign) count(f func(*campaignStats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.stats)
}

func (c *campaign) say(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trace = append(c.trace, fmt.Sprintf("[%s +%.2fs] ", c.e.st.Clock.Now().UTC().Format("01-02 15:04:05"), time.Since(c.began).Seconds())+fmt.Sprintf(format, a...))
}

// run plays the seed's schedule, drains, and returns the invariants' violations.
func (c *campaign) run() []string {
	c.setRNG(0)
	c.seedSecrets()
	steps := 10 + c.intn(15)
	for i := range steps {
		if c.keep != nil && !c.keep[i] {
			continue
		}
		// Each step draws from a stream of its own, so a schedule shrunk to some of its
		// steps plays those steps exactly as the whole schedule did.
		c.setRNG(uint64(i) + 1)
		c.say("step %d", i)
		c.steps = append(c.steps, i)
		c.count(func(s *campaignStats) { s.steps++ })
		c.step()
		c.pump()
	}
	c.setRNG(1 << 40)
	c.drain()
	vs := c.check()
	c.say("checked: %d violations", len(vs))
	return vs
}

func (c *campaign) setRNG(stream uint64) {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	c.rng = rand.New(rand.NewPCG(c.seed, stream))
}

// shrink looks for a smaller schedule that still violates an invariant: it drops one
// step at a time and keeps each drop after which a fresh run of the seed still fails.
// It returns the steps kept and the violations and trace of the last failing run.
func shrink(t *testing.T, seed uint64, steps []int, vs, trace []string) ([]int, []string, []string) {
	kept := slices.Clone(steps)
	for i := 0; i < len(kept); {
		try := slices.Delete(slices.Clone(kept), i, i+1)
		c := newCampaign(t, seed)
		c.keep = map[int]bool{}
		for _, s := range try {
			c.keep[s] = true
		}
		if got := c.run(); len(got) > 0 {
			kept, vs, trace = try, got, c.trace
			continue
		}
		i++
	}
	return kept, vs, trace
}

// seedSecrets adopts two to four secrets under the service account (some with a
// 7-day lifetime, whose renew window is short) and plants one or two holding the
// departing person's PAT.
func (c *campaign) seedSecrets() {
	e := c.e
	n := 2 + c.intn(3)
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		extra := map[string]string{}
		if c.intn(2) == 0 {
			extra[rotation.TagLifetime] = "7d"
		}
		if o, err := e.adopt(name, rotation.NewOpID(), extra); err != nil || o.Status != rotation.StatusRotated {
			c.t.Fatalf("adopt %s: %s %v", name, o.Status, err)
		}
		c.secrets = append(c.secrets, name)
	}
	tok := e.personToken()
	for i := range 1 + c.intn(2) {
		name := fmt.Sprintf("alice-%d", i)
		e.plantPersonal(tok, name)
		c.secrets = append(c.secrets, name)
	}
	c.say("seeded %v", c.secrets)
}

// step draws and performs one action of the schedule.
func (c *campaign) step() {
	switch r := c.intn(100); {
	case r < 25:
		c.advance(c.drawJump())
	case r < 35:
		c.offboard()
	case r < 47:
		c.emergency()
	case r < 55:
		c.sweep()
	case r < 60:
		c.status()
	default:
		c.injectFault()
	}
}

// drawJump picks a clock jump: past a lock, a few minutes, past a long Retry-After,
// past the grace period, into a 7-day PAT's renew window, or (once) into a 90-day
// PAT's. The total stays well inside the service account's sign-in lifetime.
func (c *campaign) drawJump() time.Duration {
	jumps := []time.Duration{61 * time.Second, 5 * time.Minute, 11 * time.Minute, 25 * time.Hour, 3 * 24 * time.Hour, 5 * 24 * time.Hour}
	if c.jumped < 24*time.Hour*10 {
		jumps = append(jumps, 61*24*time.Hour)
	}
	return jumps[c.intn(len(jumps))]
}

func (c *campaign) advance(d time.Duration) {
	c.jumped += d
	c.say("clock +%v", d)
	c.e.st.Clock.Advance(d)
}

// offboard sends an HR message for the person; the event id comes from a pool of two,
// so HR repeating an event is part of the schedule.
func (c *campaign) offboard() {
	id := fmt.Sprintf("hr-%d-%d", c.seed, c.intn(2))
	u, _ := c.e.st.Entra.User(campaignPerson)
	msg := contract.OffboardingMessage{SchemaVersion: contract.SchemaVersion, EventID: id, Person: contract.Person{UPN: campaignPerson, ObjectID: u.ObjectID}}
	c.say("HR offboards %s (event %s)", campaignPerson, id)
	if err := c.e.svc.Bus.SendOffboarding(c.e.ctx, msg); err != nil {
		c.say("  send failed: %v", err) // HR's system would retry; not a message patrol holds
		return
	}
	c.mu.Lock()
	c.hrSent = append(c.hrSent, id)
	c.mu.Unlock()
}

// emergency is RotateNow for a random secret; operation ids come from a small pool so a
// caller repeating its request is part of the schedule.
func (c *campaign) emergency() {
	s := c.secrets[c.intn(len(c.secrets))]
	req := handlers.RotateNowRequest{Secret: s, OperationID: fmt.Sprintf("op-%d-%d", c.seed, c.intn(4)), RevokeNow: c.intn(4) == 0,
		RequestedBy: "campaign", Reason: "fault campaign"}
	res, err := c.app.RotateNow(c.e.ctx, req)
	c.say("RotateNow %s op %s revokeNow=%v: %v", s, req.OperationID, req.RevokeNow, errString(err))
	c.keepBody(res)
}

func (c *campaign) sweep() {
	err := c.app.Sweep(c.e.ctx, handlers.SweepTick{Now: c.e.st.Clock.Now()})
	c.say("sweep: %v", errString(err))
}

func (c *campaign) status() {
	res, err := c.app.Status(c.e.ctx, handlers.StatusRequest{})
	c.say("status: %v", errString(err))
	c.keepBody(res)
}

func (c *campaign) keepBody(v any) {
	b, _ := json.Marshal(v)
	c.mu.Lock()
	c.bodies = append(c.bodies, string(b))
	c.mu.Unlock()
}

// injectFault arms one emulator fault for the next few matching requests.
func (c *campaign) injectFault() {
	type target struct{ emulator, op string }
	targets := []target{
		{"keyvault", kvemu.OpGetSecret}, {"keyvault", kvemu.OpSetSecret}, {"keyvault", kvemu.OpListSecrets},
		{"devops", devopsemu.OpCreatePat}, {"devops", devopsemu.OpListPats}, {"devops", devopsemu.OpRevokePat},
		{"devops", devopsemu.OpConnectionData}, {"devops", devopsemu.OpAdminRevoke}, {"servicebus", "send"},
	}
	tg := targets[c.intn(len(targets))]
	var f fault.Fault
	switch r := c.intn(5); {
	case r == 0:
		f = fault.Fault{Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second}
	case r == 1 && tg.emulator != "servicebus":
		f = fault.Fault{Status: http.StatusTooManyRequests, RetryAfter: 10 * time.Minute} // longer than the core waits: rescheduled
	case r == 2:
		f = fault.Fault{Status: http.StatusServiceUnavailable}
	case r == 3:
		f = fault.Fault{Status: http.StatusInternalServerError}
	default:
		f = fault.Fault{Drop: true}
	}
	f.Times = 1 + c.intn(3)
	c.count(func(s *campaignStats) { s.faults++ })
	c.say("fault %s %s: status %d retry-after %v drop %v ×%d", tg.emulator, tg.op, f.Status, f.RetryAfter, f.Drop, f.Times)
	c.e.allFaults()[tg.emulator].Set(tg.op, f)
}

// pump is the stand-in Functions host: it lets Event Grid deliver, then receives every
// available message of the three queues and runs the function for it, until nothing is
// left to do now. Sessions are taken in a random order, and a session may be left for
// a later pump (a late delivery).
func (c *campaign) pump() {
	late := map[string]bool{}
	for range 60 {
		c.waitGrid()
		did := false
		for _, q := range []string{contract.QueueOffboarding, contract.QueueRevocations} {
			if c.available(q, "") > 0 {
				did = c.receiveQueue(q) || did
			}
		}
		sessions := c.sessions()
		c.rngMu.Lock()
		c.rng.Shuffle(len(sessions), func(i, j int) { sessions[i], sessions[j] = sessions[j], sessions[i] })
		c.rngMu.Unlock()
		for _, s := range sessions {
			if late[s] {
				continue
			}
			if !c.quiet && c.intn(10) == 0 {
				late[s] = true
				c.say("session %s delivered late", s)
				continue
			}
			did = c.receiveSession(s) || did
		}
		if !did {
			return
		}
	}
	c.say("pump: still busy after 60 rounds")
}

func (c *campaign) waitGrid() {
	ctx, cancel := context.WithTimeout(c.e.ctx, 20*time.Second)
	defer cancel()
	if err := c.e.st.KV.WaitDeliveries(ctx); err != nil {
		c.t.Fatalf("Event Grid deliveries did not settle: %v", err)
	}
}

// available counts the messages of queue (and session, when set) that a receiver can
// take now: active and not locked.
func (c *campaign) available(queue, session string) int {
	n := 0
	for _, ent := range c.e.st.SB.Store().Snapshot() {
		if ent.Path != queue {
			continue
		}
		for _, m := range ent.Messages {
			if m.State == "active" && !m.Locked && (session == "" || m.SessionID == session) {
				n++
			}
		}
	}
	return n
}

// sessions lists the sessions of pat-rotations with a message to take and no lock held.
func (c *campaign) sessions() []string {
	now := c.e.st.Clock.Now()
	locked := map[string]bool{}
	seen := map[string]bool{}
	var out []string
	for _, ent := range c.e.st.SB.Store().Snapshot() {
		if ent.Path != contract.QueueRotations {
			continue
		}
		for _, s := range ent.Sessions {
			if s.Owner != "" && s.LockedUntil.After(now) {
				locked[s.ID] = true
			}
		}
		for _, m := range ent.Messages {
			if m.State == "active" && !m.Locked && !locked[m.SessionID] && !seen[m.SessionID] {
				seen[m.SessionID] = true
				out = append(out, m.SessionID)
			}
		}
	}
	slices.Sort(out)
	return out
}

// settler is what both receiver kinds offer.
type settler interface {
	ReceiveMessages(ctx context.Context, max int, o *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.AbandonMessageOptions) error
	DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error
	Close(ctx context.Context) error
}

func (c *campaign) receiveQueue(queue string) bool {
	r, err := c.sbc.NewReceiverForQueue(queue, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer r.Close(c.e.ctx)
	return c.receive(r, queue, "")
}

func (c *campaign) receiveSession(session string) bool {
	ctx, cancel := context.WithTimeout(c.e.ctx, 5*time.Second)
	defer cancel()
	r, err := c.sbc.AcceptSessionForQueue(ctx, contract.QueueRotations, session, nil)
	if err != nil {
		c.say("session %s not accepted: %v", session, err)
		return false
	}
	defer r.Close(c.e.ctx)
	return c.receive(r, contract.QueueRotations, session)
}

// receive takes the available messages one at a time and handles each; it stops at a
// "crash" (the receiver goes away with the message unsettled).
func (c *campaign) receive(r settler, queue, session string) bool {
	did := false
	for c.available(queue, session) > 0 {
		ctx, cancel := context.WithTimeout(c.e.ctx, 5*time.Second)
		msgs, err := r.ReceiveMessages(ctx, 1, nil)
		cancel()
		if err != nil || len(msgs) == 0 {
			return did
		}
		did = true
		if !c.handle(r, queue, msgs[0]) {
			return did
		}
	}
	return did
}

// handle runs the function for one message, with the delivery fault drawn for it, and
// settles it as the handlers do. It returns false when the handler "crashed".
func (c *campaign) handle(r settler, queue string, m *azservicebus.ReceivedMessage) bool {
	key := fmt.Sprintf("%s/%d", queue, *m.SequenceNumber)
	c.mu.Lock()
	rec, ok := c.ledger[key]
	if !ok {
		rec = &received{queue: queue, id: m.MessageID, seq: *m.SequenceNumber}
		c.ledger[key] = rec
	}
	c.mu.Unlock()

	kind := "normal"
	if !c.quiet {
		switch r := c.intn(100); {
		case r < 8:
			kind = "duplicate"
		case r < 16 && queue == contract.QueueRotations:
			kind = "crash-at-step"
		case r < 20 && queue == contract.QueueRotations:
			kind = "crash-mid-request"
		case r < 26:
			kind = "handler-fails"
		case r < 32:
			kind = "lock-expires"
		case r < 36:
			kind = "crash-before-settling"
		}
	}
	c.say("%s %s (delivery %d): %s", queue, m.MessageID, m.DeliveryCount, kind)
	ctx, cancel := context.WithCancel(c.e.ctx)
	defer cancel()
	switch kind {
	case "handler-fails":
		_ = r.AbandonMessage(c.e.ctx, m, nil)
		return true
	case "crash-at-step":
		steps := []string{"sign in", "cleanup", "create", "verify", "store", "schedule revocation", "schedule wake-up", "publish"}
		c.cp.arm(steps[c.intn(len(steps))], cancel)
		c.count(func(s *campaignStats) { s.crashes++ })
	case "crash-mid-request":
		c.mid.arm([]string{"create", "store", "revoke"}[c.intn(3)], cancel)
		c.count(func(s *campaignStats) { s.midRequest++ })
	case "duplicate":
		c.count(func(s *campaignStats) { s.duplicates++ })
		_ = c.invoke(ctx, queue, m)
	}
	err := c.invoke(ctx, queue, m)
	crashed := c.cp.disarm() || c.mid.disarm()
	if crashed || kind == "crash-before-settling" {
		c.say("  handler died (%v); message left locked", errString(err))
		return false
	}
	if kind == "lock-expires" {
		// The handler outlived its lock: its settlement would fail (lock lost), and the
		// broker hands the message out again.
		c.count(func(s *campaignStats) { s.lockExpiries++ })
		c.advance(61 * time.Second)
		return false
	}
	if err != nil {
		c.say("  error: %v", err)
	}
	c.settle(r, queue, m, rec, err)
	return true
}

// invoke decodes the message and calls the function as the handler would.
func (c *campaign) invoke(ctx context.Context, queue string, m *azservicebus.ReceivedMessage) error {
	switch queue {
	case contract.QueueOffboarding:
		msg, err := contract.DecodeOffboardingMessage(m.Body)
		if err != nil {
			return err
		}
		return c.app.Offboard(ctx, msg)
	case contract.QueueRevocations:
		cmd, err := contract.DecodeRevocationCommand(m.Body)
		if err != nil {
			return err
		}
		return c.app.Revoke(ctx, cmd)
	default:
		cmd, err := contract.DecodeRotationCommand(m.Body)
		if err != nil {
			return err
		}
		if m.SessionID == nil || *m.SessionID != cmd.Secret {
			return contract.Malformed("rotation command", "secret", "does not match the SessionId")
		}
		if cmd.Attempt > 0 {
			c.count(func(s *campaignStats) { s.rescheduled++ })
		}
		return c.app.Rotate(ctx, cmd)
	}
}

// settle mirrors handlers' serviceBusTrigger: complete on success; otherwise fail the
// invocation, so the host abandons the message and the broker redelivers it, then
// dead-letters it at MaxDeliveryCount. A permanent failure is recorded once, at its
// first delivery: a failed outcome, unless the app published one itself.
func (c *campaign) settle(r settler, queue string, m *azservicebus.ReceivedMessage, rec *received, err error) {
	ctx := c.e.ctx
	if err == nil {
		if serr := r.CompleteMessage(ctx, m, nil); serr != nil {
			c.say("  settlement failed (%v); the broker redelivers", serr)
			return
		}
		c.mu.Lock()
		rec.final = "completed"
		c.mu.Unlock()
		return
	}
	switch class := handlers.Classify(err); {
	case class == handlers.Transient || class == handlers.Conflict || class == handlers.TooManyRequests:
	case m.DeliveryCount > 1 || errors.Is(err, handlers.ErrRecorded):
	default:
		reason := contract.DeadLetterRejected
		switch {
		case errors.Is(err, contract.ErrMalformed):
			reason = contract.DeadLetterMalformed
		case errors.Is(err, contract.ErrUnauthenticated):
			reason = contract.DeadLetterUnauthenticated
		}
		f := contract.Failure{Function: map[string]string{contract.QueueOffboarding: "Offboarding", contract.QueueRotations: "Rotate", contract.QueueRevocations: "Revoke"}[queue],
			Queue: queue, MessageID: m.MessageID, SessionID: deref(m.SessionID), Reason: reason, Description: err.Error()}
		if serr := c.e.svc.Bus.ReportFailure(ctx, f); serr != nil {
			c.say("  failed outcome not published: %v", serr)
		}
		c.count(func(s *campaignStats) { s.rejected++ })
	}
	if serr := r.AbandonMessage(ctx, m, nil); serr != nil {
		c.say("  abandon failed (%v); the lock runs out", serr)
	}
}

// drain stops every fault and lets the system run past every grace period, with
// sweeps, so that the invariants can be checked on a settled system.
func (c *campaign) drain() {
	c.quiet = true
	c.grid.quiet.Store(true)
	for _, f := range c.e.allFaults() {
		f.Reset()
	}
	c.say("drain: faults off")
	c.pump()
	grace := c.e.svc.Defaults.Grace + time.Hour
	for _, d := range []time.Duration{2 * time.Minute, 11 * time.Minute, grace, rotation.OrphanMinAge + time.Minute, grace} {
		c.advance(d)
		c.pump()
		c.sweep()
		c.pump()
	}
}

// check returns every invariant violation.
func (c *campaign) check() []string {
	e := c.e
	var out []string
	now := e.st.Clock.Now()
	pats := e.st.DevOps.PATs(org)
	byID := map[string]devopsemu.PATInfo{}
	for _, p := range pats {
		byID[strings.ToLower(p.AuthorizationID)] = p
	}
	infos, err := e.st.KV.Secrets(stack.Vault)
	if err != nil {
		c.t.Fatal(err)
	}

	// 1. The current version of every managed secret holds a working PAT.
	referenced := map[string]bool{}
	var managed []string
	for _, s := range infos {
		tags := s.Current.Tags
		if s.Deleted || !rotation.IsManaged(tags) {
			continue
		}
		managed = append(managed, s.Name)
		referenced[strings.ToLower(tags[rotation.TagPATID])] = true
		value, err := e.st.KV.SecretValue(stack.Vault, s.Name, "")
		if err != nil {
			out = append(out, fmt.Sprintf("working PAT: %s: %v", s.Name, err))
			continue
		}
		user, err := e.st.DevOps.ValidateToken(org, value)
		if err != nil {
			out = append(out, fmt.Sprintf("working PAT: %s (version %s, op %s): Azure DevOps refuses its PAT: %v", s.Name, s.Current.Version, tags[rotation.TagOp], err))
			continue
		}
		if want, _ := e.st.Entra.User(tags[rotation.TagOwner]); want.ObjectID != user.ObjectID {
			out = append(out, fmt.Sprintf("working PAT: %s: its PAT authenticates as %s, patrol-owner says %s", s.Name, user.ObjectID, tags[rotation.TagOwner]))
		}
	}
	if len(managed) != len(c.secrets) {
		out = append(out, fmt.Sprintf("working PAT: %d managed secrets, want %d", len(managed), len(c.secrets)))
	}

	// 2. At most one new PAT per operation still unrevoked.
	live := map[string][]string{}
	for _, p := range pats {
		if s, op, ok := rotation.ParseDisplayName(p.DisplayName); ok && p.Status == devopsemu.StatusActive {
			live[s+"/"+op] = append(live[s+"/"+op], p.AuthorizationID)
		}
	}
	for k, ids := range live {
		if len(ids) > 1 {
			out = append(out, fmt.Sprintf("one PAT per operation: %s has %d active PATs", k, len(ids)))
		}
	}

	// 3. Nothing patrol created or replaced stays active, unreferenced, past its grace.
	inGrace := map[string]bool{}
	for _, name := range managed {
		versions, err := e.st.KV.Versions(stack.Vault, name)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, v := range versions {
			prev := strings.ToLower(v.Tags[rotation.TagPreviousPATID])
			if prev == "" {
				continue
			}
			grace := e.svc.Defaults.Grace
			if pol, err := rotation.ParsePolicy(v.Tags, e.svc.Defaults); err == nil {
				grace = pol.Grace
			}
			if now.Before(v.Created.Add(grace)) {
				inGrace[prev] = true
				continue
			}
			if p, ok := byID[prev]; ok && p.Status == devopsemu.StatusActive && !referenced[prev] {
				out = append(out, fmt.Sprintf("no leftovers: %s: PAT %s (%q) replaced at %s is active %v after its grace",
					name, p.AuthorizationID, p.DisplayName, v.Created.Format(time.RFC3339), now.Sub(v.Created.Add(grace)).Round(time.Minute)))
			}
		}
	}
	for _, p := range pats {
		id := strings.ToLower(p.AuthorizationID)
		if _, _, ok := rotation.ParseDisplayName(p.DisplayName); !ok || p.Status != devopsemu.StatusActive || referenced[id] || inGrace[id] {
			continue
		}
		if now.Sub(p.ValidFrom) > rotation.OrphanMinAge+e.svc.Defaults.Grace {
			out = append(out, fmt.Sprintf("no leftovers: PAT %s (%q) is active and no secret holds it", p.AuthorizationID, p.DisplayName))
		}
	}

	// 4. No token value in a log, an event, an HTTP body or a dead-lettered message.
	texts := map[string]string{
		"logs":        e.logs.String(),
		"HTTP bodies": strings.Join(c.bodies, "\n"),
		"Event Grid":  c.grid.text(),
		"pat-events":  c.events(),
		"dead-letter": c.deadLetters(),
	}
	secrets := append(e.seen.values(), e.st.ServiceAccountPassword, e.st.WorkloadSecret)
	for where, text := range texts {
		for _, v := range secrets {
			if len(v) >= 8 && strings.Contains(text, v) {
				out = append(out, fmt.Sprintf("no token leaked: %s contain a credential (%d characters)", where, len(v)))
			}
		}
	}

	// 5. Every HR message and command accounted for: acted on (completed), ended with a
	// recorded reason (a failed outcome, a dead-letter reason), or still held by the
	// broker (scheduled, or waiting for its lock to pass).
	present := map[string]string{} // queue/seq → where
	ids := map[string]bool{}       // queue/messageId anywhere in the broker
	for _, ent := range e.st.SB.Store().Snapshot() {
		q, dl := ent.Path, false
		if i := strings.Index(strings.ToLower(q), "/$deadletterqueue"); i >= 0 {
			q, dl = q[:i], true
		}
		for _, m := range ent.Messages {
			where := m.State
			if dl {
				where = "dead-letter: " + m.DeadLetterReason
				if m.DeadLetterReason == "" {
					out = append(out, fmt.Sprintf("accounted for: %s %s dead-lettered without a reason", q, m.MessageID))
				}
			}
			present[fmt.Sprintf("%s/%d", q, m.SequenceNumber)] = where
			ids[q+"/"+m.MessageID] = true
		}
	}
	seenIDs := map[string]bool{}
	for key, rec := range c.ledger {
		seenIDs[rec.queue+"/"+rec.id] = true
		if rec.final == "" && present[key] == "" {
			out = append(out, fmt.Sprintf("accounted for: %s %s was received, never settled, and the broker no longer holds it", rec.queue, rec.id))
		}
	}
	for _, id := range c.hrSent {
		if !seenIDs[contract.QueueOffboarding+"/"+id] && !ids[contract.QueueOffboarding+"/"+id] {
			out = append(out, fmt.Sprintf("accounted for: HR message %s was sent and is nowhere", id))
		}
	}
	for _, ent := range e.st.SB.Store().Snapshot() {
		if ent.Path == contract.QueueOffboarding || ent.Path == contract.QueueRevocations {
			for _, m := range ent.Messages {
				if m.State == "active" {
					out = append(out, fmt.Sprintf("accounted for: %s %s is still waiting after the drain", ent.Path, m.MessageID))
				}
			}
		}
	}
	n := c.rotations()
	c.count(func(s *campaignStats) { s.rotated += n })
	slices.Sort(out)
	return out
}

// rotations counts the versions patrol wrote during the schedule.
func (c *campaign) rotations() int {
	n := 0
	for _, s := range c.secrets {
		n += c.e.versionCount(s) - 1
	}
	return n
}

// events renders everything published on pat-events (subscription all), peeked.
func (c *campaign) events() string {
	r, err := c.sbc.NewReceiverForSubscription(contract.TopicEvents, "all", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer r.Close(c.e.ctx)
	var b strings.Builder
	for {
		msgs, err := r.PeekMessages(c.e.ctx, 500, nil)
		if err != nil {
			c.t.Fatalf("peek pat-events: %v", err)
		}
		if len(msgs) == 0 {
			return b.String()
		}
		for _, m := range msgs {
			b.Write(m.Body)
			b.WriteByte('\n')
		}
	}
}

// deadLetters renders every dead-lettered message (reason, description, body).
func (c *campaign) deadLetters() string {
	var b strings.Builder
	for _, q := range []string{contract.QueueOffboarding, contract.QueueRotations, contract.QueueRevocations} {
		r, err := c.sbc.NewReceiverForQueue(q, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
		if err != nil {
			c.t.Fatal(err)
		}
		for {
			msgs, err := r.PeekMessages(c.e.ctx, 500, nil)
			if err != nil {
				c.t.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				fmt.Fprintf(&b, "%s: %s %s %s\n", q, deref(m.DeadLetterReason), deref(m.DeadLetterErrorDescription), m.Body)
			}
		}
		_ = r.Close(c.e.ctx)
	}
	return b.String()
}

// gridHook is the KeyVaultEvents webhook: it answers Event Grid's handshake and hands
// each event to the function app; a drawn share of deliveries fail before the event is
// looked at (Event Grid retries on its schedule) or after (a duplicate follows).
type gridHook struct {
	c     *campaign
	quiet atomic.Bool
	mu    sync.Mutex
	// rng is the hook's own stream: deliveries arrive on Event Grid's goroutines, and
	// drawing from the schedule's stream there would make the schedule depend on timing.
	rng  *rand.Rand
	body []string
}

func (h *gridHook) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.body, "\n")
}

func (h *gridHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.body = append(h.body, string(body))
	h.mu.Unlock()
	if r.Header.Get("aeg-event-type") == "SubscriptionValidation" {
		var evs []struct {
			Data struct {
				ValidationCode string `json:"validationCode"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &evs); err != nil || len(evs) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": evs[0].Data.ValidationCode})
		return
	}
	c := h.c
	before, after := false, false
	if !h.quiet.Load() {
		h.mu.Lock()
		r := h.rng.IntN(100)
		h.mu.Unlock()
		switch {
		case r < 10:
			before = true
		case r < 18:
			after = true
		}
	}
	if before {
		c.count(func(s *campaignStats) { s.gridFailures++ })
		c.say("Event Grid delivery fails before the handler runs")
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, one := range raw {
		ev, err := handlers.DecodeKeyVaultEvent(one)
		if err != nil {
			c.say("Event Grid: malformed event: %v", err)
			continue // Event Grid would get a 2xx: a malformed event is dropped, as the handler does
		}
		err = c.app.KeyVaultEvent(r.Context(), ev)
		c.say("Event Grid %s %s: %v", ev.Type, ev.Secret, errString(err))
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
	}
	if after {
		c.count(func(s *campaignStats) { s.gridFailures++ })
		c.say("Event Grid delivery fails after the handler ran")
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// midCrash is the HTTP transport under patrol's clients: when armed for a kind of
// request, it lets the request reach the server, then loses the answer and kills the
// invocation (its context), as a process dying mid-request would.
type midCrash struct {
	next http.RoundTripper
	mu   sync.Mutex
	what string
	kill context.CancelFunc
	hit  bool
}

func (m *midCrash) arm(what string, kill context.CancelFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.what, m.kill, m.hit = what, kill, false
}

// disarm reports whether the crash happened.
func (m *midCrash) disarm() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	hit := m.hit
	m.what, m.kill, m.hit = "", nil, false
	return hit
}

func (m *midCrash) matches(r *http.Request) bool {
	p := r.URL.Path
	switch m.what {
	case "create":
		return r.Method == http.MethodPost && strings.Contains(p, "/_apis/tokens/pats")
	case "store":
		return r.Method == http.MethodPut && strings.Contains(p, "/secrets/") && !strings.Contains(p, "patrol-")
	case "revoke":
		return r.Method == http.MethodDelete && strings.Contains(p, "/_apis/tokens/pats")
	}
	return false
}

func (m *midCrash) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := m.next.RoundTrip(r)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil || m.what == "" || m.hit || !m.matches(r) {
		return res, err
	}
	m.hit = true
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	m.kill()
	return nil, errors.New("connection reset: the process died mid-request")
}

// arm sets the crash point for one invocation.
func (c *crashPoint) arm(after string, cancel context.CancelFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.after, c.cancel, c.fired = after, cancel, false
}

// disarm reports whether the crash happened and clears the point.
func (c *crashPoint) disarm() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	fired := c.fired
	c.after, c.cancel, c.fired = "", nil, false
	return fired
}

// campaignPATLister is what `patrol serve` gives the sweep for orphans.
type campaignPATLister struct{ e *env }

func (p campaignPATLister) PatrolPATs(ctx context.Context, account, org string) ([]rotation.PATInfo, error) {
	tok, err := p.e.svc.Identities.AccessToken(ctx, account)
	if err != nil {
		return nil, err
	}
	return p.e.svc.PATs.PatrolPATs(ctx, tok, org)
}

// personToken signs the departing person in (device code approved at the emulator) for
// planting their PATs.
func (e *env) personToken() secret.Value {
	e.t.Helper()
	accounts, err := identity.NewServiceAccounts(identity.Options{
		Authority: strings.TrimSuffix(e.st.Entra.AuthorityHost(), "/") + "/" + stack.TenantID, ClientID: stack.PublicClientID,
		HTTPClient: e.st.HTTP, Store: &personCache{},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	err = accounts.Login(e.ctx, campaignPerson, func(dc identity.DeviceCode) {
		if err := e.st.Entra.ApproveDeviceCode(dc.UserCode, campaignPerson); err != nil {
			e.t.Error(err)
		}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := accounts.Token(e.ctx, campaignPerson)
	if err != nil {
		e.t.Fatal(err)
	}
	return secret.New(tok.Value())
}

// plantPersonal stores a PAT the person created as a managed secret, as if someone had
// tagged an old secret for patrol by hand, and returns the PAT's id.
func (e *env) plantPersonal(tok secret.Value, name string) string {
	e.t.Helper()
	dc, err := devops.NewClient(devops.Options{BaseURL: e.st.DevOpsURL, HTTPClient: e.st.HTTP,
		Token: func(context.Context) (string, error) { return tok.Reveal(), nil }})
	if err != nil {
		e.t.Fatal(err)
	}
	pat, err := dc.CreatePAT(e.ctx, org, devops.CreateRequest{DisplayName: "pipeline of " + campaignPerson, Scope: "vso.code",
		ValidTo: e.st.Clock.Now().Add(60 * 24 * time.Hour).Truncate(time.Second)})
	if err != nil {
		e.t.Fatal(err)
	}
	tags := rotation.Policy{Org: org, Scopes: []string{"vso.code"}, ServiceAccount: account}.Tags()
	tags[rotation.TagOwner], tags[rotation.TagPATID] = strings.ToLower(campaignPerson), pat.AuthorizationID
	exp := pat.ValidTo
	if _, err := e.st.KV.Put(stack.Vault, name, kvemu.NewSecret{Value: pat.Token.Reveal(), Tags: tags, Expires: &exp}); err != nil {
		e.t.Fatal(err)
	}
	e.seen.add(pat.Token.Reveal()) // a credential like any other: must never be printed
	return pat.AuthorizationID
}

type personCache struct {
	mu      sync.Mutex
	blob    []byte
	version int
}

func (m *personCache) LoadCache(context.Context, string) (identity.StoredCache, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.version == 0 {
		return identity.StoredCache{}, nil
	}
	return identity.StoredCache{Blob: m.blob, Version: strconv.Itoa(m.version)}, nil
}

func (m *personCache) SaveCache(_ context.Context, _ string, blob []byte, _ string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blob = append([]byte(nil), blob...)
	m.version++
	return strconv.Itoa(m.version), nil
}

func (m *personCache) Password(context.Context, string) (string, bool, error) { return "", false, nil }

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
