package keyvault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// Schema is the event delivery schema of a subscription.
type Schema int

const (
	// EventGridSchema posts a JSON array of Event Grid events.
	EventGridSchema Schema = iota
	// CloudEventSchema posts one CloudEvents 1.0 event (structured mode).
	CloudEventSchema
)

func (s Schema) String() string {
	if s == CloudEventSchema {
		return "CloudEventSchemaV1_0"
	}
	return "EventGridSchema"
}

// Subscription is an Event Grid event subscription with a webhook endpoint on a
// vault's system topic.
type Subscription struct {
	Name     string // 3–64 letters, digits, hyphens; sent upper-cased in aeg-subscription-name
	Endpoint string // http or https webhook URL (the query may carry a function key)
	Schema   Schema
	// Vault limits the subscription to one vault's topic; empty means every vault.
	Vault string
	// EventTypes filters by type; empty means all Key Vault secret events.
	EventTypes        []string
	SubjectBeginsWith string
	SubjectEndsWith   string
	// MaxAttempts is the delivery attempts before dead-lettering (default 30, max 30).
	MaxAttempts int
	// EventTTL bounds retrying (default 24h).
	EventTTL time.Duration
}

// DeliveryAttempt records one POST of an event to a subscription.
type DeliveryAttempt struct {
	Subscription string
	EventID      string
	EventType    string
	Subject      string
	Attempt      int // 1 for the first delivery
	Status       int // 0 when no response arrived
	Err          string
	Time         time.Time // emulator clock
}

// Succeeded reports whether Event Grid counts the attempt as delivered (200–204).
func (a DeliveryAttempt) Succeeded() bool { return a.Status >= 200 && a.Status <= 204 }

// DeadLetter is an event Event Grid gave up on.
type DeadLetter struct {
	Subscription string
	Event        Event
	Attempts     int
	LastStatus   int
	Reason       string // MaxDeliveryAttemptsExceeded, TimeToLiveExceeded or DeliveryFailed (400/413)
}

// retrySchedule is Event Grid's documented back-off; after the last step it retries
// hourly. Azure randomises it; the emulator keeps it exact so tests can advance to it.
var retrySchedule = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}

// retryDelay is the wait after the n-th failed attempt that got status (0: no
// response), with Event Grid's per-status minimums.
func retryDelay(failed, status int) time.Duration {
	d := retrySchedule[min(max(failed, 1)-1, len(retrySchedule)-1)]
	switch status {
	case 400, 401, 403, 404:
		d = max(d, 5*time.Minute)
	case 408:
		d = max(d, 2*time.Minute)
	case 503:
		d = max(d, 30*time.Second)
	}
	return d
}

// nextStep decides what follows a failed attempt: retry after a delay, or dead-letter
// with a reason. Event Grid dead-letters 400 and 413 at once (the request itself is
// wrong), and otherwise when attempts or the event's time to live run out.
func nextStep(failed, status, maxAttempts int, first, now time.Time, ttl time.Duration) (time.Duration, string) {
	if status == 400 || status == 413 {
		return 0, "DeliveryFailed"
	}
	if failed >= maxAttempts {
		return 0, "MaxDeliveryAttemptsExceeded"
	}
	d := retryDelay(failed, status)
	if now.Add(d).After(first.Add(ttl)) {
		return 0, "TimeToLiveExceeded"
	}
	return d, ""
}

// logCap bounds the inspection logs (events, attempts, dead letters) so a long-running
// local stack does not grow without limit; the oldest entries go first.
const logCap = 10000

func appendCapped[T any](s []T, v T) []T {
	if len(s) >= logCap {
		s = slices.Delete(s, 0, len(s)-logCap+1)
	}
	return append(s, v)
}

type dispatcher struct {
	clk    *clock.Clock
	client *http.Client
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	subs      map[string]*Subscription
	published []Event
	attempts  []DeliveryAttempt
	dead      []DeadLetter
	inflight  int
	idle      chan struct{} // closed whenever inflight is 0
	timers    map[*clock.Timer]struct{}
}

func newDispatcher(clk *clock.Clock, client *http.Client, log *slog.Logger) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &dispatcher{clk: clk, client: client, log: log, ctx: ctx, cancel: cancel,
		subs: map[string]*Subscription{}, idle: idle, timers: map[*clock.Timer]struct{}{}}
}

func (s *Subscription) matches(vault string, ev Event) bool {
	if s.Vault != "" && !strings.EqualFold(s.Vault, vault) {
		return false
	}
	if len(s.EventTypes) > 0 && !slices.Contains(s.EventTypes, ev.Type) {
		return false
	}
	return strings.HasPrefix(ev.Subject, s.SubjectBeginsWith) && strings.HasSuffix(ev.Subject, s.SubjectEndsWith)
}

// publish records ev and starts its delivery to every matching subscription. It never
// blocks on the network, so it may be called with the emulator lock held.
func (d *dispatcher) publish(vault string, ev Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.published = appendCapped(d.published, ev)
	if d.ctx.Err() != nil {
		return
	}
	for _, s := range d.subs {
		if s.matches(vault, ev) {
			d.startLocked(s.Name, ev, 1, ev.Time)
		}
	}
}

func (d *dispatcher) startLocked(sub string, ev Event, attempt int, first time.Time) {
	if d.inflight == 0 {
		d.idle = make(chan struct{})
	}
	d.inflight++
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.deliver(sub, ev, attempt, first)
	}()
}

func (d *dispatcher) doneLocked() {
	d.inflight--
	if d.inflight == 0 {
		close(d.idle)
	}
}

func (d *dispatcher) deliver(name string, ev Event, attempt int, first time.Time) {
	d.mu.Lock()
	sub, ok := d.subs[name]
	var s Subscription
	if ok {
		s = *sub
	}
	d.mu.Unlock()
	if !ok { // unsubscribed meanwhile
		d.mu.Lock()
		d.doneLocked()
		d.mu.Unlock()
		return
	}
	status, err := d.post(s, ev, attempt)
	now := d.clk.Now()
	rec := DeliveryAttempt{Subscription: s.Name, EventID: ev.ID, EventType: ev.Type, Subject: ev.Subject,
		Attempt: attempt, Status: status, Time: now}
	if err != nil {
		rec.Err = err.Error()
	}
	var delay time.Duration
	var reason string
	if !rec.Succeeded() {
		delay, reason = nextStep(attempt, status, s.MaxAttempts, first, now, s.EventTTL)
		d.log.Info("keyvault: event delivery failed", "subscription", s.Name, "event", ev.Type, "subject", ev.Subject,
			"attempt", attempt, "status", status, "err", rec.Err, "retryIn", delay, "deadLetter", reason)
	}
	// Arm the retry before this delivery counts as finished, so a test that waits for
	// deliveries and then advances the clock always finds the retry armed.
	if !rec.Succeeded() && reason == "" && d.ctx.Err() == nil {
		var t *clock.Timer
		t = d.clk.AfterFunc(delay, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			delete(d.timers, t)
			if d.ctx.Err() == nil {
				d.startLocked(name, ev, attempt+1, first)
			}
		})
		d.mu.Lock()
		d.timers[t] = struct{}{}
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.attempts = appendCapped(d.attempts, rec)
	if reason != "" {
		d.dead = appendCapped(d.dead, DeadLetter{Subscription: s.Name, Event: ev, Attempts: attempt, LastStatus: status, Reason: reason})
	}
	d.doneLocked()
	d.mu.Unlock()
}

// post sends one delivery and returns the status (0 when no response arrived).
func (d *dispatcher) post(s Subscription, ev Event, attempt int) (int, error) {
	var body []byte
	ctype := "application/json; charset=utf-8"
	if s.Schema == CloudEventSchema {
		body, _ = json.Marshal(cloudEvent(ev)) // strings and numbers always marshal
		ctype = "application/cloudevents+json; charset=utf-8"
	} else {
		body, _ = json.Marshal([]gridEvent{eventGridEvent(ev)})
	}
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, s.Endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request to %s: %v", redactURL(s.Endpoint), err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("aeg-subscription-name", strings.ToUpper(s.Name))
	// Attempts before this one: Event Grid sends 0 on the first delivery.
	req.Header.Set("aeg-delivery-count", strconv.Itoa(attempt-1))
	req.Header.Set("aeg-output-event-id", ev.ID)
	if s.Schema == CloudEventSchema {
		// For CloudEvents the metadata version is the spec version and there is no
		// data version.
		req.Header.Set("aeg-metadata-version", "1.0")
	} else {
		req.Header.Set("aeg-data-version", "1")
		req.Header.Set("aeg-metadata-version", "1")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post to %s: %v", redactURL(s.Endpoint), unwrapURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// redactURL drops the query and user info, which may hold a function key.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

type gridEvent struct {
	ID              string `json:"id"`
	Topic           string `json:"topic"`
	Subject         string `json:"subject"`
	EventType       string `json:"eventType"`
	EventTime       string `json:"eventTime"`
	Data            any    `json:"data"`
	DataVersion     string `json:"dataVersion"`
	MetadataVersion string `json:"metadataVersion"`
}

func eventGridEvent(ev Event) gridEvent {
	return gridEvent{ID: ev.ID, Topic: ev.Topic, Subject: ev.Subject, EventType: ev.Type,
		EventTime: ev.Time.UTC().Format(time.RFC3339Nano), Data: ev.Data, DataVersion: "1", MetadataVersion: "1"}
}

type cloudEventJSON struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Subject     string `json:"subject"`
	Type        string `json:"type"`
	Time        string `json:"time"`
	Data        any    `json:"data"`
	SpecVersion string `json:"specversion"`
}

func cloudEvent(ev Event) cloudEventJSON {
	return cloudEventJSON{ID: ev.ID, Source: ev.Topic, Subject: ev.Subject, Type: ev.Type,
		Time: ev.Time.UTC().Format(time.RFC3339Nano), Data: ev.Data, SpecVersion: "1.0"}
}

func validSubscriptionName(n string) bool {
	return len(n) >= 3 && len(n) <= 64 && validName(n)
}

// Subscribe creates an event subscription. Like Event Grid it first proves the
// endpoint wants the events — the validation handshake (Event Grid schema: a
// SubscriptionValidationEvent answered with its validationCode; CloudEvents: an
// OPTIONS request answered with WebHook-Allowed-Origin) — and fails if it does not.
// A subscription with the same name is replaced.
func (e *Emulator) Subscribe(ctx context.Context, s Subscription) error {
	if !validSubscriptionName(s.Name) {
		return fmt.Errorf("keyvault: subscribe: name %q must be 3-64 letters, digits or hyphens", s.Name)
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("keyvault: subscribe %q: endpoint %s is not an http(s) URL", s.Name, redactURL(s.Endpoint))
	}
	if s.Schema != EventGridSchema && s.Schema != CloudEventSchema {
		return fmt.Errorf("keyvault: subscribe %q: unknown schema %d", s.Name, s.Schema)
	}
	for _, t := range s.EventTypes {
		if !strings.HasPrefix(t, "Microsoft.KeyVault.") {
			return fmt.Errorf("keyvault: subscribe %q: event type %q is not a Key Vault event", s.Name, t)
		}
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = 30
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > 30 {
		return fmt.Errorf("keyvault: subscribe %q: MaxAttempts %d must be from 1 to 30", s.Name, s.MaxAttempts)
	}
	if s.EventTTL == 0 {
		s.EventTTL = 24 * time.Hour
	}
	if s.EventTTL < time.Minute || s.EventTTL > 24*time.Hour {
		return fmt.Errorf("keyvault: subscribe %q: EventTTL %v must be from 1m to 24h", s.Name, s.EventTTL)
	}
	if s.Vault != "" {
		e.mu.Lock()
		_, ok := e.vaults[strings.ToLower(s.Vault)]
		e.mu.Unlock()
		if !ok {
			return fmt.Errorf("keyvault: subscribe %q: no vault %q", s.Name, s.Vault)
		}
	}
	s.EventTypes = slices.Clone(s.EventTypes)
	if err := e.events.handshake(ctx, s, e.clk.Now()); err != nil {
		return fmt.Errorf("keyvault: subscribe %q: validation handshake with %s: %w", s.Name, redactURL(s.Endpoint), err)
	}
	e.events.mu.Lock()
	e.events.subs[s.Name] = &s
	e.events.mu.Unlock()
	return nil
}

// Unsubscribe deletes a subscription; pending retries for it are dropped.
func (e *Emulator) Unsubscribe(name string) bool {
	e.events.mu.Lock()
	defer e.events.mu.Unlock()
	_, ok := e.events.subs[name]
	delete(e.events.subs, name)
	return ok
}

// Subscriptions lists the subscriptions by name.
func (e *Emulator) Subscriptions() []Subscription {
	e.events.mu.Lock()
	defer e.events.mu.Unlock()
	var out []Subscription
	for _, s := range e.events.subs {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (d *dispatcher) handshake(ctx context.Context, s Subscription, now time.Time) error {
	if s.Schema == CloudEventSchema {
		req, err := http.NewRequestWithContext(ctx, http.MethodOptions, s.Endpoint, nil)
		if err != nil {
			return err
		}
		req.Header.Set("WebHook-Request-Origin", "eventgrid.azure.net")
		resp, err := d.client.Do(req)
		if err != nil {
			return unwrapURLError(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("OPTIONS answered %d, want 200", resp.StatusCode)
		}
		if o := resp.Header.Get("WebHook-Allowed-Origin"); o != "eventgrid.azure.net" && o != "*" {
			return fmt.Errorf("OPTIONS answered WebHook-Allowed-Origin %q, want eventgrid.azure.net or *", truncate(o, 80))
		}
		return nil
	}
	code := uuid.NewString()
	ev := []map[string]any{{
		"id": uuid.NewString(), "topic": "", "subject": "",
		"data":      map[string]string{"validationCode": code},
		"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": now.UTC().Format(time.RFC3339Nano),
		"metadataVersion": "1", "dataVersion": "2",
	}}
	body, _ := json.Marshal(ev) // maps of strings always marshal
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("aeg-event-type", "SubscriptionValidation")
	req.Header.Set("aeg-subscription-name", strings.ToUpper(s.Name))
	req.Header.Set("aeg-delivery-count", "0")
	req.Header.Set("aeg-data-version", "2")
	req.Header.Set("aeg-metadata-version", "1")
	resp, err := d.client.Do(req)
	if err != nil {
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("validation event answered %d, want 200 with the validationResponse", resp.StatusCode)
	}
	var got struct {
		ValidationResponse string `json:"validationResponse"`
	}
	if err := json.Unmarshal(b, &got); err != nil || got.ValidationResponse != code {
		return errors.New(`validation event answer did not echo the validationCode as {"validationResponse": "<code>"}`)
	}
	return nil
}

// WaitDeliveries waits until no delivery is in flight. Retries waiting on the clock
// are not in flight: advance the clock to release them, then wait again.
func (e *Emulator) WaitDeliveries(ctx context.Context) error {
	for {
		e.events.mu.Lock()
		if e.events.inflight == 0 {
			e.events.mu.Unlock()
			return nil
		}
		idle := e.events.idle
		e.events.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("keyvault: wait for event deliveries: %w", ctx.Err())
		}
	}
}

// Events lists every event the vaults raised, in order, whether or not anyone was
// subscribed.
func (e *Emulator) Events() []Event {
	e.events.mu.Lock()
	defer e.events.mu.Unlock()
	return slices.Clone(e.events.published)
}

// Deliveries lists every delivery attempt, in order of completion.
func (e *Emulator) Deliveries() []DeliveryAttempt {
	e.events.mu.Lock()
	defer e.events.mu.Unlock()
	return slices.Clone(e.events.attempts)
}

// DeadLetters lists the events delivery gave up on.
func (e *Emulator) DeadLetters() []DeadLetter {
	e.events.mu.Lock()
	defer e.events.mu.Unlock()
	return slices.Clone(e.events.dead)
}

func (d *dispatcher) close() {
	d.cancel()
	d.mu.Lock()
	for t := range d.timers {
		t.Stop()
	}
	d.timers = map[*clock.Timer]struct{}{}
	d.mu.Unlock()
	d.wg.Wait()
}
