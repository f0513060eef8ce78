package devhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
)

// settleTimeout bounds complete/abandon/renew calls; they are independent of the
// invocation's context so a host shutting down still settles what it ran.
const settleTimeout = 30 * time.Second

// renewTimeout bounds one lock renewal; it runs inside the clock's timer callback.
const renewTimeout = 5 * time.Second

// receiveBackoff is the pause after a receive error that is not a shutdown, so a broken
// connection does not spin.
const receiveBackoff = 250 * time.Millisecond

// serviceBusTriggers drives every serviceBusTrigger function with azservicebus
// receivers in peek-lock mode, the way the Service Bus extension's message pump does.
type serviceBusTriggers struct {
	h       *Host
	clients map[string]*azservicebus.Client // by connection setting name
	info    map[string]ServiceBusClientInfo
	fns     []Function

	mu        sync.Mutex
	receivers []interface{ Close(context.Context) error }
}

// settlement is the part of a receiver devhost settles with; Receiver and
// SessionReceiver both have it.
type settlement interface {
	CompleteMessage(context.Context, *azservicebus.ReceivedMessage, *azservicebus.CompleteMessageOptions) error
	AbandonMessage(context.Context, *azservicebus.ReceivedMessage, *azservicebus.AbandonMessageOptions) error
}

func newServiceBusTriggers(h *Host) (*serviceBusTriggers, error) {
	t := &serviceBusTriggers{h: h, clients: map[string]*azservicebus.Client{}, info: map[string]ServiceBusClientInfo{}}
	for _, f := range h.def.Functions {
		b := f.TriggerBinding()
		if b.Type != TypeServiceBusTrigger {
			continue
		}
		if slices.ContainsFunc(h.opts.DisableTriggers, func(n string) bool { return strings.EqualFold(n, f.Name) }) {
			continue
		}
		if _, ok := t.clients[b.Connection]; !ok {
			cs := h.settings[b.Connection]
			if cs == "" {
				if h.settings[b.Connection+"__fullyQualifiedNamespace"] != "" {
					return nil, fmt.Errorf("devhost: %s: connection %q: identity-based connections (%s__fullyQualifiedNamespace) are not supported by devhost; set %s to a connection string", f.File, b.Connection, b.Connection, b.Connection)
				}
				return nil, fmt.Errorf("devhost: %s: connection %q: app setting %s is not set (a Service Bus connection string)", f.File, b.Connection, b.Connection)
			}
			c, err := azservicebus.NewClientFromConnectionString(cs, h.opts.ServiceBusOptions)
			if err != nil {
				// The SDK's message may quote the string; say only which setting.
				return nil, fmt.Errorf("devhost: %s: connection %q: app setting %s is not a valid Service Bus connection string", f.File, b.Connection, b.Connection)
			}
			ns := namespaceOf(cs)
			t.clients[b.Connection] = c
			t.info[b.Connection] = ServiceBusClientInfo{FullyQualifiedNamespace: ns, Identifier: ns + "-" + uuid.NewString()}
		}
		t.fns = append(t.fns, f)
	}
	return t, nil
}

// namespaceOf returns the host of a connection string's Endpoint (never the key).
func namespaceOf(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Endpoint") {
			if u, err := url.Parse(strings.TrimSpace(v)); err == nil {
				return u.Hostname()
			}
		}
	}
	return ""
}

func (t *serviceBusTriggers) start() {
	sbc := t.h.def.Host.ServiceBus
	for _, f := range t.fns {
		b := f.TriggerBinding()
		if b.IsSessionsEnabled {
			for i := 0; i < sbc.MaxConcurrentSessions; i++ {
				t.h.wg.Add(1)
				go t.sessionLoop(f)
			}
			continue
		}
		t.h.wg.Add(1)
		go t.receiveLoop(f)
	}
}

func (t *serviceBusTriggers) track(r interface{ Close(context.Context) error }) {
	t.mu.Lock()
	t.receivers = append(t.receivers, r)
	t.mu.Unlock()
}

func (t *serviceBusTriggers) untrack(r interface{ Close(context.Context) error }) {
	t.mu.Lock()
	t.receivers = slices.DeleteFunc(t.receivers, func(x interface{ Close(context.Context) error }) bool { return x == r })
	t.mu.Unlock()
}

func (t *serviceBusTriggers) logFor(f Function) *slog.Logger {
	return t.h.log.With("function", f.Name, "entity", f.TriggerBinding().Entity())
}

// pause waits d or until the host closes; it reports whether to go on.
func (t *serviceBusTriggers) pause(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-t.h.ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// receiveLoop pumps a non-session entity with up to maxConcurrentCalls invocations
// in flight.
func (t *serviceBusTriggers) receiveLoop(f Function) {
	defer t.h.wg.Done()
	ctx := t.h.ctx
	b := f.TriggerBinding()
	log := t.logFor(f)
	client := t.clients[b.Connection]
	opts := &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock}
	var (
		r   *azservicebus.Receiver
		err error
	)
	if b.QueueName != "" {
		r, err = client.NewReceiverForQueue(b.QueueName, opts)
	} else {
		r, err = client.NewReceiverForSubscription(b.TopicName, b.SubscriptionName, opts)
	}
	if err != nil {
		log.Error("devhost: service bus receiver", "err", err)
		return
	}
	t.track(r)
	max := t.h.def.Host.ServiceBus.MaxConcurrentCalls
	slots := make(chan struct{}, max)
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	fill:
		for n < max {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break fill
			}
		}
		if t.h.workerFor(f).waitHandler(ctx) != nil {
			return
		}
		msgs, err := r.ReceiveMessages(ctx, n, nil)
		for i := len(msgs); i < n; i++ {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("devhost: service bus receive", "err", err)
			if !t.pause(receiveBackoff) {
				return
			}
			continue
		}
		for _, m := range msgs {
			t.h.wg.Add(1)
			go func() {
				defer t.h.wg.Done()
				defer func() { <-slots }()
				t.process(f, r, r, m, nil)
			}()
		}
	}
}

// sessionLoop is one of maxConcurrentSessions session pumps: accept the next
// available session, run its messages one at a time in order, release it after
// sessionIdleTimeout without a message.
func (t *serviceBusTriggers) sessionLoop(f Function) {
	defer t.h.wg.Done()
	ctx := t.h.ctx
	b := f.TriggerBinding()
	log := t.logFor(f)
	client := t.clients[b.Connection]
	opts := &azservicebus.SessionReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock}
	for ctx.Err() == nil {
		var (
			sr  *azservicebus.SessionReceiver
			err error
		)
		if t.h.workerFor(f).waitHandler(ctx) != nil {
			return
		}
		if b.QueueName != "" {
			sr, err = client.AcceptNextSessionForQueue(ctx, b.QueueName, opts)
		} else {
			sr, err = client.AcceptNextSessionForSubscription(ctx, b.TopicName, b.SubscriptionName, opts)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var sbErr *azservicebus.Error
			if errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeTimeout {
				// No session available right now; the service already waited.
				if !t.pause(receiveBackoff) {
					return
				}
				continue
			}
			log.Warn("devhost: accept next session", "err", err)
			if !t.pause(receiveBackoff) {
				return
			}
			continue
		}
		t.track(sr)
		t.runSession(f, sr, log.With("sessionId", sr.SessionID()))
		t.untrack(sr)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		_ = sr.Close(cctx)
		cancel()
	}
}

func (t *serviceBusTriggers) runSession(f Function, sr *azservicebus.SessionReceiver, log *slog.Logger) {
	ctx := t.h.ctx
	sbc := t.h.def.Host.ServiceBus
	stop := t.renewSession(sr, log)
	defer stop()
	for ctx.Err() == nil {
		if t.h.workerFor(f).waitHandler(ctx) != nil {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, sbc.SessionIdleTimeout)
		msgs, err := sr.ReceiveMessages(rctx, 1, nil)
		cancel()
		if err != nil || len(msgs) == 0 {
			if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("devhost: session receive", "err", err)
			}
			return // idle (or lost): release the session for another pump
		}
		for _, m := range msgs {
			t.process(f, sr, renewerFunc(func(ctx context.Context, m *azservicebus.ReceivedMessage) error {
				// A session message's lock is the session lock.
				return sr.RenewSessionLock(ctx, nil)
			}), m, &ServiceBusSession{LockedUntil: sr.LockedUntil()})
		}
	}
}

type lockRenewer interface {
	RenewMessageLock(context.Context, *azservicebus.ReceivedMessage, *azservicebus.RenewMessageLockOptions) error
}

type renewerFunc func(context.Context, *azservicebus.ReceivedMessage) error

func (f renewerFunc) RenewMessageLock(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.RenewMessageLockOptions) error {
	return f(ctx, m)
}

// process invokes the function for one message and settles it: complete on success,
// abandon on failure (DeliveryCount+1; the entity dead-letters at MaxDeliveryCount).
func (t *serviceBusTriggers) process(f Function, settle settlement, renew lockRenewer, m *azservicebus.ReceivedMessage, session *ServiceBusSession) {
	t.h.hold()
	defer t.h.release()
	b := f.TriggerBinding()
	id := uuid.NewString()
	log := t.logFor(f).With("invocationId", id, "messageId", m.MessageID, "deliveryCount", m.DeliveryCount)
	var stopRenew func()
	if session == nil {
		stopRenew = t.renewMessage(renew, m, log)
	} else {
		stopRenew = func() {}
	}
	// A message received just as the handler died waits (under a renewed lock) for
	// the restarted one rather than failing against nothing.
	if err := t.h.workerFor(f).waitHandler(t.h.ctx); err != nil {
		stopRenew()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(t.h.ctx), settleTimeout)
		defer cancel()
		_ = settle.AbandonMessage(sctx, m, nil)
		return
	}
	req := BuildServiceBus(f, m, session, t.info[b.Connection], NewStamp(t.h.clk.Now()))
	ictx, cancel := t.h.invocationContext(context.WithoutCancel(t.h.ctx))
	_, err := t.h.invoke(ictx, f, id, req)
	cancel()
	stopRenew()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(t.h.ctx), settleTimeout)
	defer scancel()
	// A failed settlement is an error, as the Functions host logs it: the message comes
	// back (or was settled by someone else, which a handler must not do: the host owns
	// the lock), so it is never quietly ignored.
	if err == nil {
		if serr := settle.CompleteMessage(sctx, m, nil); serr != nil {
			log.Error("devhost: complete message", "err", serr, "lockLost", isLockLost(serr))
		}
		return
	}
	if serr := settle.AbandonMessage(sctx, m, nil); serr != nil {
		log.Error("devhost: abandon message", "err", serr, "lockLost", isLockLost(serr))
	}
}

func isLockLost(err error) bool {
	var sbErr *azservicebus.Error
	return errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeLockLost
}

// renewMessage renews a message's lock at half its remaining time, on the host clock
// (the broker's), until stopped or maxAutoLockRenewalDuration has passed since receipt.
func (t *serviceBusTriggers) renewMessage(r lockRenewer, m *azservicebus.ReceivedMessage, log *slog.Logger) func() {
	if m.LockedUntil == nil || t.h.def.Host.ServiceBus.MaxAutoLockRenewalDuration <= 0 {
		return func() {}
	}
	return t.renewLoop(*m.LockedUntil, func(ctx context.Context) (time.Time, error) {
		if err := r.RenewMessageLock(ctx, m, nil); err != nil {
			return time.Time{}, err
		}
		if m.LockedUntil == nil {
			return time.Time{}, errors.New("no lock expiry after renewal")
		}
		return *m.LockedUntil, nil
	}, log)
}

func (t *serviceBusTriggers) renewSession(sr *azservicebus.SessionReceiver, log *slog.Logger) func() {
	if t.h.def.Host.ServiceBus.MaxAutoLockRenewalDuration <= 0 {
		return func() {}
	}
	return t.renewLoop(sr.LockedUntil(), func(ctx context.Context) (time.Time, error) {
		if err := sr.RenewSessionLock(ctx, nil); err != nil {
			return time.Time{}, err
		}
		return sr.LockedUntil(), nil
	}, log)
}

// renewLoop arms a clock timer at the midpoint between now and lockedUntil; each
// renewal re-arms from the new expiry until stop or the renewal budget runs out.
func (t *serviceBusTriggers) renewLoop(lockedUntil time.Time, renew func(context.Context) (time.Time, error), log *slog.Logger) func() {
	clk := t.h.clk
	start := clk.Now()
	budget := t.h.def.Host.ServiceBus.MaxAutoLockRenewalDuration
	var (
		mu      sync.Mutex
		stopped bool
		timer   interface{ Stop() bool }
	)
	var arm func(until time.Time)
	arm = func(until time.Time) {
		now := clk.Now()
		at := now.Add(until.Sub(now) / 2)
		if until.Sub(now) <= 0 || at.Sub(start) > budget {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		timer = clk.At(at, func() {
			// Renew synchronously: when the clock is advanced past several lock
			// periods at once, the renewal must land before the broker's expiry
			// timer, which fires later in the same Advance.
			mu.Lock()
			s := stopped
			mu.Unlock()
			if s {
				return
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(t.h.ctx), renewTimeout)
			next, err := renew(ctx)
			cancel()
			if err != nil {
				log.Debug("devhost: lock renewal", "err", err)
				return
			}
			log.Debug("devhost: lock renewed", "until", next)
			arm(next)
		})
	}
	arm(lockedUntil)
	return func() {
		mu.Lock()
		stopped = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
	}
}

// close closes the receivers (releasing sessions) and the clients.
func (t *serviceBusTriggers) close(ctx context.Context) {
	t.mu.Lock()
	rs := t.receivers
	t.receivers = nil
	t.mu.Unlock()
	for _, r := range rs {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = r.Close(cctx)
		cancel()
	}
	for _, c := range t.clients {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = c.Close(cctx)
		cancel()
	}
}
