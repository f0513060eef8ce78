package handlers

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// Invocation is the host's request body for one function invocation: one Data entry per
// input binding (named by the binding's `name` in function.json) and the trigger's
// binding data in Metadata. Values stay raw: how to read each depends on the trigger.
type Invocation struct {
	Data     map[string]json.RawMessage
	Metadata map[string]json.RawMessage
}

// DecodeInvocation parses the envelope. Key lookups are case-insensitive because the
// host's serializer settings have varied between versions.
func DecodeInvocation(body []byte) (Invocation, error) {
	const doc = "invocation"
	var top map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(body), &top); err != nil {
		return Invocation{}, contract.Malformed(doc, "", "%s", contract.JSONProblem(err))
	}
	if top == nil {
		return Invocation{}, contract.Malformed(doc, "", "body is null")
	}
	top = normalizeKeys(top)
	var inv Invocation
	for key, dst := range map[string]*map[string]json.RawMessage{"data": &inv.Data, "metadata": &inv.Metadata} {
		raw, ok := top[key]
		if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return Invocation{}, contract.Malformed(doc, capitalize(key), "must be an object: %s", contract.JSONProblem(err))
		}
	}
	if inv.Data == nil {
		return Invocation{}, contract.Malformed(doc, "Data", "missing")
	}
	if inv.Metadata == nil {
		inv.Metadata = map[string]json.RawMessage{}
	}
	return inv, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// binding returns Data[name], matching the name case-insensitively.
func (inv Invocation) binding(name string) (json.RawMessage, bool) {
	return lookupFold(inv.Data, name)
}

func (inv Invocation) meta(name string) json.RawMessage {
	v, _ := lookupFold(inv.Metadata, name)
	return v
}

func lookupFold(m map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if equalFoldTrim(k, name) {
			return v, true
		}
	}
	return nil, false
}

func equalFoldTrim(a, b string) bool {
	return bytes.EqualFold(bytes.TrimSpace([]byte(a)), []byte(b))
}

// sysNow is Metadata.sys.UtcNow: the host's clock when it built the invocation.
func (inv Invocation) sysNow() time.Time {
	var sys map[string]json.RawMessage
	if json.Unmarshal(inv.meta("sys"), &sys) != nil {
		return time.Time{}
	}
	t, _ := metaTime(sys["UtcNow"])
	return t
}

// MessageInfo is the Service Bus binding data of one received message: what patrol needs
// to settle, deduplicate and log it.
type MessageInfo struct {
	MessageID      string    `json:"messageId,omitempty"`
	SessionID      string    `json:"sessionId,omitempty"`
	LockToken      string    `json:"lockToken,omitempty"`
	CorrelationID  string    `json:"correlationId,omitempty"`
	ContentType    string    `json:"contentType,omitempty"`
	Subject        string    `json:"subject,omitempty"`
	DeliveryCount  int       `json:"deliveryCount"`
	SequenceNumber int64     `json:"sequenceNumber,omitempty"`
	EnqueuedAt     time.Time `json:"enqueuedAt,omitzero"`
	ExpiresAt      time.Time `json:"expiresAt,omitzero"`
	// ApplicationProperties are the message's application properties as the host sent
	// them (an object of JSON values).
	ApplicationProperties map[string]json.RawMessage `json:"applicationProperties,omitempty"`
}

// DecodeMessageInfo reads Service Bus trigger metadata, tolerating ints as strings,
// doubly encoded strings and zone-less dates. The offset-carrying `EnqueuedTime` /
// `ExpiresAt` win over the `…Utc` variants, which lose their zone.
func DecodeMessageInfo(inv Invocation) (MessageInfo, error) {
	const doc = "service bus metadata"
	var mi MessageInfo
	strs := []struct {
		key string
		dst *string
	}{
		{"MessageId", &mi.MessageID}, {"SessionId", &mi.SessionID}, {"LockToken", &mi.LockToken},
		{"CorrelationId", &mi.CorrelationID}, {"ContentType", &mi.ContentType}, {"Subject", &mi.Subject},
	}
	for _, f := range strs {
		s, err := metaString(inv.meta(f.key))
		if err != nil {
			return MessageInfo{}, contract.Malformed(doc, f.key, "%v", err)
		}
		*f.dst = s
	}
	if mi.Subject == "" {
		mi.Subject, _ = metaString(inv.meta("Label"))
	}
	n, _, err := metaInt(inv.meta("DeliveryCount"))
	if err != nil {
		return MessageInfo{}, contract.Malformed(doc, "DeliveryCount", "%v", err)
	}
	if n < 0 || n > 1<<31-1 {
		return MessageInfo{}, contract.Malformed(doc, "DeliveryCount", "out of range")
	}
	mi.DeliveryCount = int(n)
	if mi.SequenceNumber, _, err = metaInt(inv.meta("SequenceNumber")); err != nil {
		return MessageInfo{}, contract.Malformed(doc, "SequenceNumber", "%v", err)
	}
	for _, f := range []struct {
		keys []string
		dst  *time.Time
	}{
		{[]string{"EnqueuedTime", "EnqueuedTimeUtc"}, &mi.EnqueuedAt},
		{[]string{"ExpiresAt", "ExpiresAtUtc"}, &mi.ExpiresAt},
	} {
		for _, k := range f.keys {
			t, err := metaTime(inv.meta(k))
			if err != nil {
				return MessageInfo{}, contract.Malformed(doc, k, "%v", err)
			}
			if !t.IsZero() {
				*f.dst = t
				break
			}
		}
	}
	props := inv.meta("ApplicationProperties")
	if len(props) == 0 {
		props = inv.meta("UserProperties")
	}
	if v := bytes.TrimSpace(props); len(v) > 0 && !bytes.Equal(v, []byte("null")) {
		if err := json.Unmarshal(v, &mi.ApplicationProperties); err != nil {
			return MessageInfo{}, contract.Malformed(doc, "ApplicationProperties", "must be an object")
		}
		if len(mi.ApplicationProperties) == 0 {
			mi.ApplicationProperties = nil
		}
	}
	return mi, nil
}

// messageBody returns the message body of the Service Bus trigger binding `name`.
func (inv Invocation) messageBody(name string) ([]byte, error) {
	raw, ok := inv.binding(name)
	if !ok {
		return nil, contract.Malformed("invocation", "Data."+name, "missing")
	}
	b, err := unwrapValue(raw)
	if err != nil {
		return nil, contract.Malformed("message body", "", "%v", err)
	}
	return b, nil
}
