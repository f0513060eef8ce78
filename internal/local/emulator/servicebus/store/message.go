package store

import (
	"encoding/hex"
	"fmt"
	"maps"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"
)

// MessageState is the service's x-opt-message-state value.
type MessageState int32

// Message states, numbered as on the wire (x-opt-message-state).
const (
	StateActive    MessageState = 0
	StateDeferred  MessageState = 1
	StateScheduled MessageState = 2
)

func (s MessageState) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateDeferred:
		return "deferred"
	case StateScheduled:
		return "scheduled"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// ReceiveMode is how Receive hands a message out.
type ReceiveMode int

// Receive modes.
const (
	PeekLock         ReceiveMode = iota // lock the message until settled or the lock expires
	ReceiveAndDelete                    // remove the message as it is handed out
)

// Message is a client's AMQP message plus the broker's metadata. On Send only AMQP is
// needed: MessageID, SessionID, ScheduledEnqueueTime and the TTL are read from it (an
// explicitly set field wins). The store keeps its own copy, and every message it hands
// out is a copy too, so callers may change the maps and pointers of AMQP freely (the
// body byte slices are shared: do not write into them).
type Message struct {
	AMQP *amqp.Message

	SequenceNumber       int64
	EnqueuedTime         time.Time
	LockToken            uuid.UUID // zero unless locked (peek-lock); RFC byte order
	LockedUntil          time.Time
	DeliveryCount        uint32 // earlier failed deliveries (abandoned or lock expired): the AMQP header value; the SDK shows +1
	State                MessageState
	DeadLetterSource     string    // entity path the message was dead-lettered from (DLQ messages only)
	ExpiresAt            time.Time // zero = never
	SessionID            string    // properties.group-id
	MessageID            string    // properties.message-id as text
	ScheduledEnqueueTime time.Time // zero unless scheduled
}

// Delivery is a message handed out by Receive or ReceiveDeferred.
type Delivery struct {
	Message
	// Path is the canonical path of the entity the message came from, e.g.
	// "orders/$DeadLetterQueue".
	Path string
}

// Annotation keys the store reads from a sent message.
const (
	annScheduledEnqueueTime = "x-opt-scheduled-enqueue-time"
)

// annotation returns a message annotation by key, whether the decoder produced a
// string or an amqp.Symbol key.
func annotation(a amqp.Annotations, key string) (any, bool) {
	if v, ok := a[key]; ok {
		return v, true
	}
	v, ok := a[amqp.Symbol(key)]
	return v, ok
}

// idString renders a message-id or correlation-id (string, uint64, UUID or binary) as
// the service's text form.
func idString(v any) string {
	switch id := v.(type) {
	case nil:
		return ""
	case string:
		return id
	case amqp.UUID:
		return uuid.UUID(id).String()
	case [16]byte:
		return uuid.UUID(id).String()
	case []byte:
		return hex.EncodeToString(id)
	default:
		return fmt.Sprint(id)
	}
}

// fromClient copies a sent message and fills the metadata the store derives from it.
func fromClient(in *Message) *Message {
	m := &Message{AMQP: cloneAMQP(in.AMQP), MessageID: in.MessageID, SessionID: in.SessionID, ScheduledEnqueueTime: in.ScheduledEnqueueTime}
	a := m.AMQP
	// Transfer-level details belong to the sender's hop, not to the stored message.
	a.Format, a.DeliveryTag, a.DeliveryAnnotations = 0, nil, nil
	if a.Properties != nil {
		if m.MessageID == "" {
			m.MessageID = idString(a.Properties.MessageID)
		}
		if m.SessionID == "" && a.Properties.GroupID != nil {
			m.SessionID = *a.Properties.GroupID
		}
	}
	if m.ScheduledEnqueueTime.IsZero() {
		if v, ok := annotation(a.Annotations, annScheduledEnqueueTime); ok {
			if t, ok := v.(time.Time); ok {
				m.ScheduledEnqueueTime = t
			}
		}
	}
	return m
}

// ttl is the message's time to live: its header TTL capped by the entity default, as
// the service does.
func (m *Message) ttl(entityDefault time.Duration) time.Duration {
	if m.AMQP.Header != nil && m.AMQP.Header.TTL > 0 && m.AMQP.Header.TTL < entityDefault {
		return m.AMQP.Header.TTL
	}
	return entityDefault
}

// clone copies m deeply enough that neither side's changes reach the other.
func (m *Message) clone() *Message {
	c := *m
	c.AMQP = cloneAMQP(m.AMQP)
	return &c
}

// cloneAMQP copies the message struct, its header and properties and every map. Body
// slices are shared: nothing in the broker writes into them.
func cloneAMQP(in *amqp.Message) *amqp.Message {
	if in == nil {
		return &amqp.Message{}
	}
	out := *in
	if in.Header != nil {
		h := *in.Header
		out.Header = &h
	}
	if in.Properties != nil {
		p := *in.Properties
		out.Properties = &p
	}
	out.DeliveryAnnotations = maps.Clone(in.DeliveryAnnotations)
	out.Annotations = maps.Clone(in.Annotations)
	out.ApplicationProperties = maps.Clone(in.ApplicationProperties)
	out.Footer = maps.Clone(in.Footer)
	out.Data = append([][]byte(nil), in.Data...)
	out.Sequence = append([][]any(nil), in.Sequence...)
	return &out
}

// setProperties applies a settlement's properties-to-modify and dead-letter fields to
// the application properties.
func (m *Message) setProperties(props map[string]any) {
	if len(props) == 0 {
		return
	}
	if m.AMQP.ApplicationProperties == nil {
		m.AMQP.ApplicationProperties = map[string]any{}
	}
	maps.Copy(m.AMQP.ApplicationProperties, props)
}
