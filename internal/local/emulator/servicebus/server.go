// Package servicebus is the Service Bus emulator: an AMQP 1.0 broker that the unmodified
// azservicebus (Go) and @azure/service-bus (JavaScript) clients use with a connection
// string carrying UseDevelopmentEmulator=true (plain TCP, SASL ANONYMOUS or PLAIN, then
// CBS put-token with SAS tokens validated against the configured keys).
//
// The wire layer lives here; the frame and type codec is in package amqp (hand-written,
// see its doc for why) and the entity semantics in package store. The broker:
//   - negotiates SASL (ANONYMOUS, PLAIN, MSSBCBS), open, sessions and links, keeps
//     connections alive with empty frames and enforces its max-frame-size;
//   - answers CBS put-token on $cbs, and refuses an entity link (amqp:unauthorized-access)
//     unless the connection holds a valid token covering that entity, signed by a key
//     whose Rights grant the claim the link needs (Send to send or schedule, Listen to
//     receive, peek or settle; Manage both), as Azure checks a SAS rule's claims or a
//     principal's Data Sender / Data Receiver role per entity;
//   - accepts messages and batches (format 0x80013700) with link credit and session
//     windows, and pushes messages to receivers as their credit allows, with the lock
//     token as a 16-byte .NET-order delivery tag;
//   - settles by disposition (accepted/modified/rejected/released) and answers every
//     management operation of <entity>/$management with the AMQP types the SDKs check;
//   - accepts named and next-available sessions through the session filter;
//   - survives bad peers: a connection that sends garbage, oversize frames or vanishes is
//     logged and dropped alone.
//
// Usage:
//
//	b, err := servicebus.New(servicebus.Options{Config: store.PatrolConfig(), Clock: clk})
//	err = b.Start("127.0.0.1:0")
//	connStr := b.ConnectionString() // for azservicebus.NewClientFromConnectionString
//	defer b.Close()
//
// Fault operations (package fault): "attach", "send", "put-token" and each management
// operation name (e.g. "com.microsoft:renew-lock"). Status answers a send with a
// rejected outcome and a management or CBS request with that status code; Drop closes
// the connection; Latency delays the answer.
package servicebus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/fault"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

// DefaultKeyName and DefaultKey are the SAS key Microsoft's emulator documents
// ("SAS_KEY_VALUE"), used when Options.Keys is empty so existing emulator connection
// strings keep working.
const (
	DefaultKeyName = "RootManageSharedAccessKey"
	DefaultKey     = "SAS_KEY_VALUE"
)

// MaxMessageSize is the largest message (or batch) the broker accepts, the official
// emulator's 256 KB quota. It is advertised on every attach: a client that sees 0 cannot
// build batches.
const MaxMessageSize = 262144

// Options configure an Emulator.
type Options struct {
	Config store.Config      // entities; store.PatrolConfig() for patrol's own
	Clock  *clock.Clock      // default clock.New()
	Keys   map[string]string // SAS key name → key; default {DefaultKeyName: DefaultKey}
	// Rights limit what a key's tokens (or a PLAIN login with it) may do, per entity;
	// a key not named here may do everything.
	Rights map[string]Rights
	Logger *slog.Logger    // default: discard
	Faults *fault.Injector // optional
}

// Emulator is a running (or ready to run) Service Bus emulator.
type Emulator struct {
	store  *store.Store
	clk    *clock.Clock
	keys   map[string]string
	rights map[string]Rights
	log    *slog.Logger
	faults *fault.Injector

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
	nextID atomic.Uint64
}

// New builds a broker and its store from opts; Start makes it listen.
func New(opts Options) (*Emulator, error) {
	clk := opts.Clock
	if clk == nil {
		clk = clock.New()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	keys := opts.Keys
	if len(keys) == 0 {
		keys = map[string]string{DefaultKeyName: DefaultKey}
	}
	for name, key := range keys {
		if name == "" || key == "" {
			return nil, fmt.Errorf("servicebus: SAS key name and key must not be empty")
		}
	}
	for name := range opts.Rights {
		if _, ok := keys[name]; !ok {
			return nil, fmt.Errorf("servicebus: rights for %q, which is not a configured key", name)
		}
	}
	st, err := store.New(opts.Config, clk, store.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("servicebus: %w", err)
	}
	return &Emulator{store: st, clk: clk, keys: keys, rights: opts.Rights, log: log, faults: opts.Faults, conns: map[*conn]struct{}{}}, nil
}

// Start listens on addr ("127.0.0.1:0" for any free port) and serves connections in the
// background until Close.
func (b *Emulator) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("servicebus: listen %s: %w", addr, err)
	}
	b.mu.Lock()
	if b.closed || b.ln != nil {
		b.mu.Unlock()
		ln.Close()
		return fmt.Errorf("servicebus: broker already started or closed")
	}
	b.ln = ln
	b.mu.Unlock()
	b.log.Info("servicebus: listening", "addr", ln.Addr().String())
	b.wg.Add(1)
	go b.accept(ln)
	return nil
}

func (b *Emulator) accept(ln net.Listener) {
	defer b.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				b.log.Error("servicebus: accept", "err", err)
			}
			return
		}
		c := newConn(b, nc)
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			nc.Close()
			return
		}
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			c.serve()
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
		}()
	}
}

// Addr is the listening address (nil before Start).
func (b *Emulator) Addr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln == nil {
		return nil
	}
	return b.ln.Addr()
}

// ConnectionString is an emulator connection string for the first key (by name) that
// has every right:
// Endpoint=sb://localhost:PORT;SharedAccessKeyName=…;SharedAccessKey=…;UseDevelopmentEmulator=true.
func (b *Emulator) ConnectionString() string {
	names := make([]string, 0, len(b.keys))
	for n := range b.keys {
		if _, limited := b.rights[n]; !limited {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		for n := range b.keys {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return b.KeyConnectionString(names[0])
}

// KeyConnectionString is an emulator connection string for the named key (one with
// Rights, for a principal that may do only what they say), or "" if there is no such key.
func (b *Emulator) KeyConnectionString(name string) string {
	key, ok := b.keys[name]
	if !ok {
		return ""
	}
	port := 5672
	if a, ok := b.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	return fmt.Sprintf("Endpoint=sb://localhost:%d;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true",
		port, name, key)
}

// Store is the broker's entity store, for inspection.
func (b *Emulator) Store() *store.Store { return b.store }

// Counts returns an entity's message counts.
func (b *Emulator) Counts(entity string) (store.Counts, error) { return b.store.Counts(entity) }

// WaitIdle waits until the entity has no active or locked messages.
func (b *Emulator) WaitIdle(ctx context.Context, entity string) error {
	return b.store.WaitIdle(ctx, entity)
}

// Close stops listening, drops every connection and closes the store.
func (b *Emulator) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ln := b.ln
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range conns {
		c.shutdown()
	}
	b.wg.Wait()
	b.store.Close()
	return nil
}

// fault consumes a matching fault rule for op, if any.
func (b *Emulator) fault(op string) (fault.Fault, bool) {
	if b.faults == nil {
		return fault.Fault{}, false
	}
	return b.faults.Take(op)
}
