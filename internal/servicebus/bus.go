// Package servicebus is patrol's Service Bus adapter on azservicebus. One Bus
// implements the core's side effects (rotation.Effects: scheduled revocations on
// pat-revocations, wake-ups on the session queue pat-rotations, outcomes on the topic
// pat-events), sends commands for triggers and the CLI (SendRotation, SendOffboarding),
// and settles messages the Functions host holds (the custom handler's DeadLetterer by
// lock token, its FailureReporter as a published failed outcome).
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
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"

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

	mu        sync.Mutex
	senders   map[string]*azservicebus.Sender
	receivers map[string]*azservicebus.Receiver
}

var _ rotation.Effects = (*Bus)(nil)

// NewFromConnectionString connects with a connection string (the ServiceBusConnection
// setting; the local broker's carries UseDevelopmentEmulator=true).
func NewFromConnectionString(cs string, o Options) (*Bus, error) {
	c, err := azservicebus.NewClientFromConnectionString(cs, clientOptions(o))
	if err != nil {
		// azservicebus's parse errors do not echo the key, but say which setting it was.
		return nil, fmt.Errorf("servicebus: ServiceBusConnection: %w", err)
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
	return &Bus{c: c, log: o.Logger, clock: o.Clock, senders: map[string]*azservicebus.Sender{}, receivers: map[string]*azservicebus.Receiver{}}
}

// Close closes every link and the connection.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	b.senders, b.receivers = map[string]*azservicebus.Sender{}, map[string]*azservicebus.Receiver{}
	b.mu.Unlock()
	return b.c.Close(ctx) // closes the links it created too
}

// ScheduleRevocation enqueues the revocation on pat-revocations at `at`. MessageId is
// Revocation.MessageID (one per PAT), so a repeat inside the duplicate-detection window
// is dropped by the broker.
func (b *Bus) ScheduleRevocation(ctx context.Context, r rotation.Revocation, at time.Time) error {
	cmd := contract.RevocationCommand{SchemaVersion: contract.SchemaVersion, Secret: r.Secret, Org: r.Org, PATID: r.PATID,
		Owner: r.Owner, Account: r.Account, OperationID: r.Op}
	if err := cmd.Validate(); err != nil {
		return &Error{Op: "schedule revocation", Entity: contract.QueueRevocations, Err: err, permanent: true}
	}
	m, err := b.message(cmd, r.MessageID(), "", at)
	if err != nil {
		return err
	}
	m.Subject = to("revoke")
	return b.send(ctx, "schedule revocation", contract.QueueRevocations, m)
}

// SendRevocation enqueues a revocation command the caller built (an unmanaged PAT of a
// person who left, signed) on pat-revocations at `at` (zero: now). MessageId is its
// operation id, one per HR event and PAT.
func (b *Bus) SendRevocation(ctx context.Context, cmd contract.RevocationCommand, at time.Time) error {
	if err := cmd.Validate(); err != nil {
		return &Error{Op: "send revocation", Entity: contract.QueueRevocations, Err: err, permanent: true}
	}
	m, err := b.message(cmd, cmd.OperationID, "", at)
	if err != nil {
		return err
	}
	m.Subject = to("revoke")
	return b.send(ctx, "send revocation", contract.QueueRevocations, m)
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
// Subject, and the properties subscription filters use.
func (b *Bus) publish(ctx context.Context, o contract.Outcome, id string) error {
	body, err := json.Marshal(o)
	if err != nil {
		return &Error{Op: "publish outcome", Entity: contract.TopicEvents, Err: err, permanent: true}
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

// outcomeID keys an outcome by what it reports, so subscribers can drop repeats.
func outcomeID(o rotation.Outcome) string {
	return rotation.DeriveOpID("outcome", o.Secret, o.Op, string(o.Status), string(o.Reason), o.Version, string(o.Step))
}

// SendRotation enqueues a rotation command on pat-rotations (session = secret,
// MessageId = operation id), now or at `at` when that is in the future.
func (b *Bus) SendRotation(ctx context.Context, cmd contract.RotationCommand, at time.Time) error {
	if err := cmd.Validate(); err != nil {
		return &Error{Op: "send rotation command", Entity: contract.QueueRotations, Err: err, permanent: true}
	}
	if cmd.RequestedAt.IsZero() {
		cmd.RequestedAt = b.clock.Now().UTC()
	}
	m, err := b.message(cmd, cmd.OperationID, cmd.Secret, at)
	if err != nil {
		return err
	}
	m.Subject = to(string(cmd.Trigger))
	return b.send(ctx, "send rotation command", contract.QueueRotations, m)
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

// DeadLetter moves a message the Functions host holds to its queue's dead-letter
// queue. The host gives only the lock token (a GUID string); a ReceivedMessage holding
// just that token makes azservicebus settle through the queue's management link
// (update-disposition), which works whatever link received the message.
func (b *Bus) DeadLetter(ctx context.Context, queue, lockToken, reason, description string) error {
	tok, err := uuid.Parse(strings.Trim(strings.TrimSpace(lockToken), `"`))
	if err != nil {
		return &Error{Op: "dead-letter", Entity: queue, Err: fmt.Errorf("lock token %q is not a GUID", clip(lockToken, 40)), permanent: true}
	}
	r, err := b.receiver(queue)
	if err != nil {
		return err
	}
	err = r.DeadLetterMessage(ctx, &azservicebus.ReceivedMessage{LockToken: tok}, &azservicebus.DeadLetterOptions{
		Reason: to(clip(reason, 256)), ErrorDescription: to(clip(description, 1024)),
	})
	if err != nil {
		return translate("dead-letter", queue, err)
	}
	b.log.InfoContext(ctx, "dead-lettered message", "queue", queue, "reason", reason)
	return nil
}

// ReportFailure publishes a failed outcome for a message patrol gave up on without
// dead-lettering it (session queues), in the same shape as the core's outcomes.
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

func (b *Bus) receiver(queue string) (*azservicebus.Receiver, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.receivers[queue]; ok {
		return r, nil
	}
	r, err := b.c.NewReceiverForQueue(queue, nil)
	if err != nil {
		return nil, translate("open receiver", queue, err)
	}
	b.receivers[queue] = r
	return r, nil
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
