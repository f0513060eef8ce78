package servicebus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/contract"
)

// The operator's day-2 work on the broker: read outcomes from a pat-events
// subscription, inspect, resubmit or discard dead-lettered messages, list and cancel
// scheduled revocations. Each needs exactly the roles infra/ grants the operator: Data
// Receiver on the queues (their dead-letter queues and peeking belong to it; Azure has
// no narrower scope) and on pat-events, Data Sender on the queues.

// Message is a message as the operator sees it, settled or not.
type Message struct {
	SequenceNumber int64
	MessageID      string
	SessionID      string
	Subject        string
	CorrelationID  string
	EnqueuedAt     time.Time
	// ScheduledAt is when a scheduled message becomes active; zero otherwise.
	ScheduledAt   time.Time
	Scheduled     bool
	DeliveryCount uint32
	// DeadLetterReason and DeadLetterDescription say why Service Bus (or a receiver)
	// dead-lettered it; DeadLetterSource the entity it came from.
	DeadLetterReason      string
	DeadLetterDescription string
	DeadLetterSource      string
	Properties            map[string]any
	Body                  []byte
}

func messageOf(m *azservicebus.ReceivedMessage) Message {
	out := Message{MessageID: m.MessageID, DeliveryCount: m.DeliveryCount, Body: m.Body,
		Scheduled: m.State == azservicebus.MessageStateScheduled, Properties: maps.Clone(m.ApplicationProperties)}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	out.SessionID, out.Subject, out.CorrelationID = str(m.SessionID), str(m.Subject), str(m.CorrelationID)
	out.DeadLetterReason, out.DeadLetterDescription, out.DeadLetterSource = str(m.DeadLetterReason), str(m.DeadLetterErrorDescription), str(m.DeadLetterSource)
	if m.SequenceNumber != nil {
		out.SequenceNumber = *m.SequenceNumber
	}
	if m.EnqueuedTime != nil {
		out.EnqueuedAt = *m.EnqueuedTime
	}
	if m.ScheduledEnqueueTime != nil && out.Scheduled {
		out.ScheduledAt = *m.ScheduledEnqueueTime
	}
	// The dead-letter reason travels as application properties too; shown once.
	delete(out.Properties, "DeadLetterReason")
	delete(out.Properties, "DeadLetterErrorDescription")
	return out
}

// DeadLetterQueues are the queues whose dead letters the operator may work on: the
// queues patrol's functions consume (pat-replies dead-letters nothing: its copies expire).
var DeadLetterQueues = []string{contract.QueueOffboarding, contract.QueueRotations, contract.QueueRevocations}

// ErrNoSuchMessage: no dead-lettered message has the id asked for.
var ErrNoSuchMessage = errors.New("no such message")

// peekAll peeks up to max messages of an entity's receiver, oldest first.
func peekAll(ctx context.Context, r *azservicebus.Receiver, max int, op, entity string) ([]Message, error) {
	var out []Message
	for max <= 0 || len(out) < max {
		n := 100
		if max > 0 {
			n = min(n, max-len(out))
		}
		page, err := r.PeekMessages(ctx, n, nil)
		if err != nil {
			return nil, translate(op, entity, err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			out = append(out, messageOf(m))
		}
	}
	return out, nil
}

func closeReceiver(ctx context.Context, r *azservicebus.Receiver) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = r.Close(cctx)
}

func (b *Bus) deadLetterReceiver(queue string) (*azservicebus.Receiver, error) {
	r, err := b.c.NewReceiverForQueue(queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		return nil, translate("open dead-letter receiver", queue, err)
	}
	return r, nil
}

// PeekDeadLetters returns up to max (0: every) messages of queue's dead-letter queue
// without settling them.
func (b *Bus) PeekDeadLetters(ctx context.Context, queue string, max int) ([]Message, error) {
	r, err := b.deadLetterReceiver(queue)
	if err != nil {
		return nil, err
	}
	defer closeReceiver(ctx, r)
	return peekAll(ctx, r, max, "peek dead letters", queue+"/$DeadLetterQueue")
}

// takeDeadLetter locks the dead-lettered message with MessageId id and hands it to
// settle, which must complete it (through the receiver it gets) or return an error;
// every other message locked on the way is abandoned, so it stays where it was.
func (b *Bus) takeDeadLetter(ctx context.Context, queue, id string, settle func(*azservicebus.Receiver, *azservicebus.ReceivedMessage) error) (Message, error) {
	entity := queue + "/$DeadLetterQueue"
	// Peek first: how many there are bounds the search, and an id that is not there
	// fails without locking anything.
	all, err := b.PeekDeadLetters(ctx, queue, 0)
	if err != nil {
		return Message{}, err
	}
	found := false
	for _, m := range all {
		found = found || m.MessageID == id
	}
	if !found {
		return Message{}, fmt.Errorf("servicebus: %s: message %q: %w", entity, id, ErrNoSuchMessage)
	}
	r, err := b.deadLetterReceiver(queue)
	if err != nil {
		return Message{}, err
	}
	defer closeReceiver(ctx, r)
	var held []*azservicebus.ReceivedMessage
	defer func() {
		for _, m := range held {
			_ = r.AbandonMessage(context.WithoutCancel(ctx), m, nil)
		}
	}()
	for len(held) <= len(all) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := r.ReceiveMessages(rctx, min(len(all), 100), nil)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return Message{}, translate("receive dead letter", entity, err)
		}
		if len(got) == 0 {
			break
		}
		for i, m := range got {
			if m.MessageID != id {
				held = append(held, m)
				continue
			}
			held = append(held, got[i+1:]...)
			if err := settle(r, m); err != nil {
				_ = r.AbandonMessage(context.WithoutCancel(ctx), m, nil)
				return messageOf(m), err
			}
			return messageOf(m), nil
		}
	}
	return Message{}, fmt.Errorf("servicebus: %s: message %q is locked by another receiver: %w", entity, id, ErrNoSuchMessage)
}

// DiscardDeadLetter removes the dead-lettered message with MessageId id from queue's
// dead-letter queue and returns it.
func (b *Bus) DiscardDeadLetter(ctx context.Context, queue, id string) (Message, error) {
	return b.takeDeadLetter(ctx, queue, id, func(r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
		if err := r.CompleteMessage(ctx, m, nil); err != nil {
			return translate("complete dead letter", queue+"/$DeadLetterQueue", err)
		}
		return nil
	})
}

// ResubmitDeadLetter sends a copy of the dead-lettered message with MessageId id back
// to queue — body, content type, subject, correlation id, application properties and
// session id (pat-rotations is session-enabled) — under a new MessageId, so duplicate
// detection does not drop it as the original it is a copy of, then completes the
// dead-lettered one. It returns the message and the copy's MessageId. Should the
// completion fail after the copy was sent, the error says so: the original is still
// dead-lettered and must not be resubmitted again.
func (b *Bus) ResubmitDeadLetter(ctx context.Context, queue, id string) (Message, string, error) {
	newID := ResubmittedID(id, b.clock.Now())
	m, err := b.takeDeadLetter(ctx, queue, id, func(r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
		props := maps.Clone(m.ApplicationProperties)
		delete(props, "DeadLetterReason")
		delete(props, "DeadLetterErrorDescription")
		cp := &azservicebus.Message{Body: m.Body, ContentType: m.ContentType, Subject: m.Subject, CorrelationID: m.CorrelationID,
			SessionID: m.SessionID, ApplicationProperties: props, MessageID: to(newID)}
		if err := b.send(ctx, "resubmit dead letter", queue, cp); err != nil {
			return err
		}
		if err := r.CompleteMessage(ctx, m, nil); err != nil {
			return fmt.Errorf("servicebus: resubmitted %s as %s, but the dead-lettered original is still there (do not resubmit it again; discard it): %w",
				id, newID, translate("complete dead letter", queue+"/$DeadLetterQueue", err))
		}
		return nil
	})
	return m, newID, err
}

// ResubmittedID is the MessageId of a resubmitted copy: new, so the queue's duplicate
// detection keeps it, and naming the original; within Service Bus's 128 characters.
func ResubmittedID(original string, now time.Time) string {
	return clip("resubmit-"+strconv.FormatInt(now.UTC().Unix(), 36)+"-"+original, 128)
}

// PeekScheduled returns the scheduled (not yet active) messages of queue.
func (b *Bus) PeekScheduled(ctx context.Context, queue string) ([]Message, error) {
	r, err := b.c.NewReceiverForQueue(queue, nil)
	if err != nil {
		return nil, translate("open receiver", queue, err)
	}
	defer closeReceiver(ctx, r)
	all, err := peekAll(ctx, r, 0, "peek scheduled messages", queue)
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, m := range all {
		if m.Scheduled {
			out = append(out, m)
		}
	}
	return out, nil
}

// CancelScheduled cancels scheduled messages of queue by sequence number.
func (b *Bus) CancelScheduled(ctx context.Context, queue string, seqs ...int64) error {
	s, err := b.sender(queue)
	if err != nil {
		return err
	}
	if err := s.CancelScheduledMessages(ctx, seqs, nil); err != nil {
		return translate("cancel scheduled messages", queue, err)
	}
	return nil
}

// FollowOptions shape FollowSubscription.
type FollowOptions struct {
	// Peek reads without settling (others reading the subscription still get every
	// message); otherwise each message handled is completed.
	Peek bool
	// Idle ends the follow when nothing arrives for this long; zero follows until ctx
	// ends.
	Idle time.Duration
}

// FollowSubscription hands every message of a topic subscription to handle, oldest
// first, until ctx ends, o.Idle passes without one, or handle says stop.
func (b *Bus) FollowSubscription(ctx context.Context, topic, subscription string, o FollowOptions, handle func(Message) (stop bool)) error {
	entity := topic + "/Subscriptions/" + subscription
	r, err := b.c.NewReceiverForSubscription(topic, subscription, nil)
	if err != nil {
		return translate("open receiver", entity, err)
	}
	defer closeReceiver(ctx, r)
	poll := time.Second
	lastSeen := time.Now()
	for ctx.Err() == nil {
		var got []*azservicebus.ReceivedMessage
		if o.Peek {
			got, err = r.PeekMessages(ctx, 50, nil)
			if err != nil {
				return translate("peek", entity, err)
			}
		} else {
			rctx, cancel := context.WithTimeout(ctx, poll)
			got, err = r.ReceiveMessages(rctx, 50, nil)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return translate("receive", entity, err)
			}
		}
		if len(got) == 0 {
			if o.Idle > 0 && time.Since(lastSeen) >= o.Idle {
				return nil
			}
			if o.Peek {
				select {
				case <-ctx.Done():
				case <-time.After(poll):
				}
			}
			continue
		}
		lastSeen = time.Now()
		for i, m := range got {
			stop := handle(messageOf(m))
			if !o.Peek {
				if err := r.CompleteMessage(ctx, m, nil); err != nil {
					return translate("complete", entity, err)
				}
			}
			if stop {
				if !o.Peek {
					for _, rest := range got[i+1:] {
						_ = r.AbandonMessage(context.WithoutCancel(ctx), rest, nil)
					}
				}
				return nil
			}
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
