// Package servicebus is patrol's Service Bus adapter on azservicebus. One Bus
// implements the core's side effects (rotation.Effects: scheduled revocations on
// pat-revocations, wake-ups on the session queue pat-rotations, outcomes on the topic
// pat-events), sends commands for triggers and the CLI (SendRotation, SendOffboarding),
// and reports messages the handler gives up on (its FailureReporter, a published failed
// outcome). It never settles a message the Functions host holds: the host owns the lock.
//
// Idempotency comes from the broker, not from bookkeeping here: every message carries a
// MessageId derived from what it means (revoke-<patId>, the operation id, the wake-up's
// operation and time), and the queues have duplicate detection, so the core may repeat
// an effect after a redelivery and the queue still holds it once. Message bodies,
// subjects and properties are the message contract's (internal/contract), validated
// before sending so a bad command fails here, naming the field, rather than being
// dead-lettered later.
//
// Decision: Service Bus operations are retried by the azservicebus client and by no one
// else: MaxRetries (3) retries with the SDK's back-off, for the rotation core's effects
// and for every other send or settlement alike; the core calls its Effects once
// (rotation's retry.go, docs/architecture.md "Retries"). The SDK's loop is the only place
// that recovers a lost AMQP connection or link, since it recovers from the previous
// attempt's error; with no SDK retries (MaxRetries -1) one dropped connection left every
// later send failing on the dead connection.
package servicebus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

const contentJSON = "application/json"

// Options configure a Bus.
type Options struct {
	Logger *slog.Logger
	// Clock decides whether a time is in the future (scheduled) or not and dates
	// commands; default rotation.SystemClock.
	Clock rotation.Clock
	// RetryDelay is the SDK's first back-off, doubling after each retry; zero keeps its
	// default (4s). Tests shorten it.
	RetryDelay time.Duration
	// CommandKeys sign a revocation scheduled before the replaced PAT's grace period
	// ends (revokeNow); without them it is sent unsigned, and Revoke defers it to the
	// grace end.
	CommandKeys SigningKeys
	// NoReplies sends outcomes to pat-events only, never to pat-replies: for the
	// operator's CLI, whose operations no HTTP function waits for.
	NoReplies bool
}

// SigningKeys hands out the command-signing key (the Key Vault adapter's CommandKeys).
type SigningKeys interface {
	SigningKey(ctx context.Context) (contract.CommandKey, error)
}

// MaxRetries is how often the SDK retries one failed operation (see the Decision in the
// package doc).
const MaxRetries = 3

func clientOptions(o Options) *azservicebus.ClientOptions {
	return &azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{MaxRetries: MaxRetries, RetryDelay: o.RetryDelay}}
}

// Bus sends and settles patrol's messages. It connects lazily (the first send opens the
// AMQP connection), so building one makes no network call. Safe for concurrent use.
type Bus struct {
	c     *azservicebus.Client
	log   *slog.Logger
	clock rotation.Clock
	keys  SigningKeys
	// noReplies: Options.NoReplies.
	noReplies bool

	mu      sync.Mutex
	senders map[string]*azservicebus.Sender
}

var _ rotation.Effects = (*Bus)(nil)

// NewFromConnectionString connects with a connection string (the ServiceBusConnection
// setting; the local broker's carries UseDevelopmentEmulator=true).
func NewFromConnectionString(cs string, o Options) (*Bus, error) {
	c, err := azservicebus.NewClientFromConnectionString(cs, clientOptions(o))
	if err != nil {
		// azservicebus's parse errors quote the Endpoint, and in a malformed string (a
		// ',' instead of ';') the key runs into it: name the setting, never the text.
		return nil, errors.New("servicebus: ServiceBusConnection is not a valid Service Bus connection string (want Endpoint=sb://<namespace>/;SharedAccessKeyName=…;SharedAccessKey=…)")
	}
	return newBus(c, o), nil
}

// New connects to a namespace (ServiceBusConnection__fullyQualifiedNamespace) with the
// workload credential.
func New(namespace string, cred azcore.TokenCredential, o Options) (*Bus, error) {
	c, err := azservicebus.NewClient(namespace, cred, clientOptions(o))
	if err != nil {
		return nil, fmt.Errorf("servicebus: namespace %q: %w", namespace, err)
	}
	return newBus(c, o), nil
}

func newBus(c *azservicebus.Client, o Options) *Bus {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = rotation.SystemClock
	}
	return &Bus{c: c, log: o.Logger, clock: o.Clock, keys: o.CommandKeys, noReplies: o.NoReplies, senders: map[string]*azservicebus.Sender{}}
}

// Close closes every link and the connection.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	b.senders = map[string]*azservicebus.Sender{}
	b.mu.Unlock()
	return b.c.Close(ctx) // closes the links it created too
}

// ScheduleRevocation enqueues the revocation on pat-revocations at `at`. MessageId is
// Revocation.MessageID (one per PAT), so a repeat inside the duplicate-detection window
// is dropped by the broker. A revocation due before r.GraceEnd (revokeNow) does more
// than the schedule would, so it is signed with the command key.
func (b *Bus) ScheduleRevocation(ctx context.Context, r rotation.Revocation, at time.Time) error {
	cmd := contract.RevocationCommand{SchemaVersion: contract.SchemaVersion, Secret: r.Secret, Org: r.Org, PATID: r.PATID,
		Owner: r.Owner, Account: r.Account, OperationID: r.Op}
	if err := cmd.Validate(); err != nil {
		return &Error{Op: "schedule revocation", Entity: contract.QueueRevocations, Err: err, permanent: true}
	}
	if at.Before(r.GraceEnd) {
		if err := b.signRevocation(ctx, &cmd); err != nil {
			return err
		}
	}
	return b.SendRevocation(ctx, cmd, r.MessageID(), at)
}

// signRevocation signs an early revocation. Without a key (none configured, or one this
// identity may not read) it leaves the revocation unsigned — Revoke then defers it to
// the grace end — rather than fail for good a rotation that already stored its new
// version; a key that cannot be read just now is a transient error, retried.
func (b *Bus) signRevocation(ctx context.Context, cmd *contract.RevocationCommand) error {
	var key contract.CommandKey
	err := errors.New("no command key configured")
	if b.keys != nil {
		key, err = b.keys.SigningKey(ctx)
	}
	switch {
	case err != nil && b.keys != nil && !rotation.IsPermanent(err):
		return fmt.Errorf("servicebus: sign the revocation of %s: read the command key: %w", cmd.PATID, err)
	case err != nil:
		b.log.WarnContext(ctx, "the early revocation is sent unsigned and will wait for the grace period",
			"secret", cmd.Secret, "patId", cmd.PATID, "error", err)
		return nil
	}
	cmd.RequestedAt = b.clock.Now().UTC()
	if err := cmd.Sign(key); err != nil {
		return &Error{Op: "schedule revocation", Entity: contract.QueueRevocations, Err: err, permanent: true}
	}
	return nil
}

// SendRevocation enqueues a revocation command as it is (signed or not) with MessageId
// id, now or at `at` when that is in the future.
func (b *Bus) SendRevocation(ctx context.Context, cmd contract.RevocationCommand, id string, at time.Time) error {
	if err := cmd.Validate(); err != nil {
		return &Error{Op: "schedule revocation", Entity: contract.QueueRevocations, Err: err, permanent: true}
	}
	m, err := b.message(cmd, id, "", at)
	if err != nil {
		return err
	}
	m.Subject = to("revoke")
	return b.send(ctx, "schedule revocation", contract.QueueRevocations, m)
}

// ScheduleWakeup enqueues a wake-up rotation command for the secret's session at `at`.
// Its MessageId is the wake-up's operation id plus the time: a repeat of the same
// wake-up collapses, while a wake-up re-planned for another time (a wake-up that finds
// it is early schedules its own successor, with the same operation id) is not mistaken
// for a duplicate of the command being handled.
func (b *Bus) ScheduleWakeup(ctx context.Context, w rotation.Wakeup, at time.Time) error {
	cmd := contract.RotationCommand{SchemaVersion: contract.SchemaVersion, Secret: w.Secret, OperationID: w.Op,
		Trigger: contract.TriggerWakeup, Version: w.Version, RequestedBy: "patrol", RequestedAt: b.clock.Now().UTC()}
	if err := cmd.Validate(); err != nil {
		return &Error{Op: "schedule wake-up", Entity: contract.QueueRotations, Err: err, permanent: true}
	}
	id := fmt.Sprintf("wake-%s-%d", w.Op, at.UTC().Unix())
	m, err := b.message(cmd, id, w.Secret, at)
	if err != nil {
		return err
	}
	m.Subject = to(string(contract.TriggerWakeup))
	return b.send(ctx, "schedule wake-up", contract.QueueRotations, m)
}

// Publish sends the core's outcome to pat-events.
func (b *Bus) Publish(ctx context.Context, o rotation.Outcome) error {
	return b.publish(ctx, o.Contract(), outcomeID(o))
}

// publish sends an outcome to pat-events as the contract says: the body, the status as
// Subject, and the properties subscription filters use. An outcome that ends a rotation
// operation goes to pat-replies first (session = operation id), so the HTTP functions,
// on other instances, can report it (Reply); a repeat after a failed topic send is
// dropped there by duplicate detection (same MessageId).
func (b *Bus) publish(ctx context.Context, o contract.Outcome, id string) error {
	body, err := json.Marshal(o)
	if err != nil {
		return &Error{Op: "publish outcome", Entity: contract.TopicEvents, Err: err, permanent: true}
	}
	if o.Replies() && !b.noReplies {
		r := &azservicebus.Message{Body: body, ContentType: to(contentJSON), Subject: to(o.Subject()), MessageID: to(id),
			SessionID: to(o.OperationID), TimeToLive: to(contract.ReplyTTL), ApplicationProperties: o.Properties()}
		if err := b.send(ctx, "reply", contract.QueueReplies, r); err != nil {
			return err
		}
	}
	m := &azservicebus.Message{
		Body: body, ContentType: to(contentJSON), Subject: to(o.Subject()),
		MessageID: to(id), ApplicationProperties: o.Properties(),
	}
	if o.OperationID != "" {
		m.CorrelationID = to(o.OperationID)
	}
	return b.send(ctx, "publish outcome", contract.TopicEvents, m)
}

// Reply returns the outcome that ended operation op, from pat-replies: it accepts the
// operation's session, peeks (replies are never consumed, so every reader sees them)
// and lets the session go. ok is false while there is none. When several ended it
// (a redelivered command that found its work done), the latest counts.
func (b *Bus) Reply(ctx context.Context, op string) (contract.Outcome, bool, error) {
	sr, err := b.c.AcceptSessionForQueue(ctx, contract.QueueReplies, op, nil)
	if err != nil {
		return contract.Outcome{}, false, translate("accept reply session", contract.QueueReplies, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = sr.Close(cctx)
	}()
	msgs, err := sr.PeekMessages(ctx, 32, nil)
	if err != nil {
		return contract.Outcome{}, false, translate("peek replies", contract.QueueReplies, err)
	}
	var last contract.Outcome
	found := false
	for _, m := range msgs {
		var o contract.Outcome
		if err := json.Unmarshal(m.Body, &o); err != nil || o.OperationID != op || !o.Ends() {
			continue
		}
		if !found || !o.Time.Before(last.Time) {
			last, found = o, true
		}
	}
	return last, found, nil
}

// outcomeID keys an outcome by what it reports, so subscribers can drop repeats.
func outcomeID(o rotation.Outcome) string {
	return rotation.DeriveOpID("outcome", o.Secret, o.Op, string(o.Status), string(o.Reason), o.Version, string(o.Step))
}

// SendRotation enqueues a rotation command on pat-rotations (session = secret,
// MessageId = operation id), now or at `at` when that is in the future.
func (b *Bus) SendRotation(ctx context.Context, cmd contract.RotationCommand, at time.Time) error {
	if cmd.RequestedAt.IsZero() {
		cmd.RequestedAt = b.clock.Now().UTC()
	}
	return b.sendRotation(ctx, "send rotation command", cmd, cmd.OperationID, at)
}

// sendRotation validates cmd and enqueues it on the secret's session of pat-rotations
// under messageID, now or at `at` when that is in the future.
func (b *Bus) sendRotation(ctx context.Context, op string, cmd contract.RotationCommand, messageID string, at time.Time) error {
	if err := cmd.Validate(); err != nil {
		return &Error{Op: op, Entity: contract.QueueRotations, Err: err, permanent: true}
	}
	m, err := b.message(cmd, messageID, cmd.Secret, at)
	if err != nil {
		return err
	}
	m.Subject = to(string(cmd.Trigger))
	return b.send(ctx, op, contract.QueueRotations, m)
}

// SendOffboarding enqueues an HR-style offboarding message on hr-offboarding
// (MessageId = the event id), as HR's system would; for testing deployments.
func (b *Bus) SendOffboarding(ctx context.Context, msg contract.OffboardingMessage) error {
	if msg.SchemaVersion == "" {
		msg.SchemaVersion = contract.SchemaVersion
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return &Error{Op: "send offboarding", Entity: contract.QueueOffboarding, Err: err, permanent: true}
	}
	// Round-trip through the contract's decoder so what is sent is what the handler accepts.
	if _, err := contract.DecodeOffboardingMessage(body); err != nil {
		return &Error{Op: "send offboarding", Entity: contract.QueueOffboarding, Err: err, permanent: true}
	}
	m := &azservicebus.Message{Body: body, ContentType: to(contentJSON), MessageID: to(msg.EventID), Subject: to("offboarding")}
	return b.send(ctx, "send offboarding", contract.QueueOffboarding, m)
}

// ReportFailure publishes a failed outcome for a message patrol gave up on (the host
// abandons it until Service Bus dead-letters it), in the same shape as the core's
// outcomes.
func (b *Bus) ReportFailure(ctx context.Context, f contract.Failure) error {
	o := f.Outcome(b.clock.Now().UTC())
	return b.publish(ctx, o, outcomeID(rotation.OutcomeOf(o)))
}

func (b *Bus) message(body any, id, session string, at time.Time) (*azservicebus.Message, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, &Error{Op: "encode message", Err: err, permanent: true}
	}
	m := &azservicebus.Message{Body: raw, ContentType: to(contentJSON), MessageID: to(id)}
	if session != "" {
		m.SessionID = to(session)
	}
	if at.After(b.clock.Now()) {
		m.ScheduledEnqueueTime = to(at.UTC())
	}
	return m, nil
}

func (b *Bus) send(ctx context.Context, op, entity string, m *azservicebus.Message) error {
	s, err := b.sender(entity)
	if err != nil {
		return err
	}
	if err := s.SendMessage(ctx, m, nil); err != nil {
		return translate(op, entity, err)
	}
	attrs := []any{"entity", entity, "messageId", *m.MessageID}
	if m.ScheduledEnqueueTime != nil {
		attrs = append(attrs, "at", *m.ScheduledEnqueueTime)
	}
	b.log.DebugContext(ctx, "sent message", attrs...)
	return nil
}

func (b *Bus) sender(entity string) (*azservicebus.Sender, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.senders[entity]; ok {
		return s, nil
	}
	s, err := b.c.NewSender(entity, nil)
	if err != nil {
		return nil, translate("open sender", entity, err)
	}
	b.senders[entity] = s
	return s, nil
}

// Error is a failed Service Bus operation, classified for the core.
type Error struct {
	Op, Entity string
	Err        error
	permanent  bool
}

func (e *Error) Error() string {
	if e.Entity == "" {
		return fmt.Sprintf("servicebus: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("servicebus: %s on %s: %v", e.Op, e.Entity, e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

// Permanent: the entity does not exist or patrol may not use it; a retry cannot help.
func (e *Error) Permanent() bool { return e.permanent }

func translate(op, entity string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("servicebus: %s on %s: %w", op, entity, err)
	}
	var se *azservicebus.Error
	permanent := errors.As(err, &se) && (se.Code == azservicebus.CodeUnauthorizedAccess || se.Code == azservicebus.CodeNotFound)
	return &Error{Op: op, Entity: entity, Err: err, permanent: permanent}
}

func to[T any](v T) *T { return &v }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
