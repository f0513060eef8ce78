package servicebus

import (
	"encoding/hex"
	"fmt"
	"maps"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/amqp"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

// batchFormat is the message-format of a Service Bus batch: one transfer whose data
// sections each hold a complete encoded message.
const batchFormat uint32 = 0x80013700

// Message annotations the broker sets on outbound messages (reference §2.4).
const (
	annSequenceNumber   = "x-opt-sequence-number"
	annEnqueuedTime     = "x-opt-enqueued-time"
	annLockedUntil      = "x-opt-locked-until"
	annLockToken        = "x-opt-lock-token"
	annMessageState     = "x-opt-message-state"
	annDeadLetterSource = "x-opt-deadletter-source"
)

// decodeMessages turns an inbound delivery into store messages: one for format 0, one per
// data section for a batch.
func decodeMessages(format uint32, payload []byte) ([]*store.Message, error) {
	var env goamqp.Message
	if err := env.UnmarshalBinary(payload); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	if format != batchFormat {
		return []*store.Message{{AMQP: withMessageID(&env)}}, nil
	}
	out := make([]*store.Message, 0, len(env.Data))
	for i, d := range env.Data {
		var m goamqp.Message
		if err := m.UnmarshalBinary(d); err != nil {
			return nil, fmt.Errorf("decode batch message %d: %w", i, err)
		}
		out = append(out, &store.Message{AMQP: withMessageID(&m)})
	}
	return out, nil
}

// withMessageID gives a message without a message-id one, as the service does: clients
// key lock renewal and logs on it (rhea-based clients fail without one).
func withMessageID(m *goamqp.Message) *goamqp.Message {
	if m.Properties == nil {
		m.Properties = &goamqp.MessageProperties{}
	}
	if m.Properties.MessageID == nil {
		id := uuid.New()
		m.Properties.MessageID = hex.EncodeToString(id[:])
	}
	return m
}

// netOrder converts between an RFC 4122 UUID and .NET's GUID byte order (the first three
// groups little-endian). The conversion is its own inverse.
func netOrder(u [16]byte) [16]byte {
	o := u
	o[0], o[1], o[2], o[3] = u[3], u[2], u[1], u[0]
	o[4], o[5] = u[5], u[4]
	o[6], o[7] = u[7], u[6]
	return o
}

// outbound describes how one store message is written to a client.
type outbound struct {
	msg      *store.Message
	locked   bool // peek-lock: x-opt-locked-until is set
	tokenAnn bool // put x-opt-lock-token in the delivery annotations (receive-by-sequence-number)
}

// encodeOutbound writes a stored message the way the service sends it: a header that
// always carries delivery-count (go-amqp's encoder omits a zero, which rhea then reports
// as undefined), the broker's x-opt-* annotations, then the client's own sections.
func encodeOutbound(o outbound) ([]byte, error) {
	m := o.msg
	src := m.AMQP
	if src == nil {
		src = &goamqp.Message{}
	}
	hdr := goamqp.MessageHeader{Priority: 4}
	if src.Header != nil {
		hdr = *src.Header
	}
	var ttl any
	if hdr.TTL > 0 {
		ttl = uint32(hdr.TTL / time.Millisecond)
	}
	out, err := amqp.Encode(amqp.Described{Descriptor: amqp.CodeHeader, Value: []any{
		hdr.Durable, hdr.Priority, ttl, hdr.FirstAcquirer, m.DeliveryCount,
	}})
	if err != nil {
		return nil, err
	}
	rest := *src
	rest.Header = nil
	rest.Annotations = maps.Clone(src.Annotations)
	if rest.Annotations == nil {
		rest.Annotations = goamqp.Annotations{}
	}
	rest.Annotations[annSequenceNumber] = m.SequenceNumber
	rest.Annotations[annEnqueuedTime] = m.EnqueuedTime
	if o.locked && !m.LockedUntil.IsZero() {
		rest.Annotations[annLockedUntil] = m.LockedUntil
	}
	if m.State != store.StateActive {
		rest.Annotations[annMessageState] = int32(m.State)
	}
	if m.DeadLetterSource != "" {
		rest.Annotations[annDeadLetterSource] = m.DeadLetterSource
	}
	if o.tokenAnn && m.LockToken != uuid.Nil {
		rest.DeliveryAnnotations = maps.Clone(src.DeliveryAnnotations)
		if rest.DeliveryAnnotations == nil {
			rest.DeliveryAnnotations = goamqp.Annotations{}
		}
		rest.DeliveryAnnotations[annLockToken] = goamqp.UUID(m.LockToken)
	}
	b, err := rest.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode message %d: %w", m.SequenceNumber, err)
	}
	return append(out, b...), nil
}
