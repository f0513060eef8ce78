package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// outputs sends the values of serviceBus output bindings after a successful
// invocation, as the host's output binding does before it completes the trigger.
type outputs struct {
	h       *Host
	mu      sync.Mutex
	clients map[string]*azservicebus.Client // by connection setting
	senders map[string]*azservicebus.Sender // by connection + "|" + entity
}

// checkOutputs verifies, before the handler starts, that every serviceBus output names a
// connection that is set.
func (h *Host) checkOutputs() error {
	for _, f := range h.def.Functions {
		for i, b := range f.Bindings {
			if b.Type != TypeServiceBus || b.Direction != "out" {
				continue
			}
			if h.settings[b.Connection] == "" {
				return fmt.Errorf("devhost: %s: bindings[%d].connection: app setting %s is not set (a Service Bus connection string)", f.File, i, b.Connection)
			}
		}
	}
	return nil
}

// outputValue finds a binding's value in a result ($return is the ReturnValue).
func outputValue(res *Result, name string) json.RawMessage {
	if name == "$return" {
		return res.ReturnValue
	}
	for k, v := range res.Outputs {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// apply sends every serviceBus output of f found in res. A value that is a JSON array
// is a collector: one message per element. Each message body goes through the host's
// base64 conversion (OutputBytes).
func (o *outputs) apply(ctx context.Context, f Function, res *Result) error {
	for _, b := range f.Bindings {
		if b.Type != TypeServiceBus || b.Direction != "out" {
			continue
		}
		raw := bytes.TrimSpace(outputValue(res, b.Name))
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		items := []json.RawMessage{raw}
		if raw[0] == '[' {
			if err := json.Unmarshal(raw, &items); err != nil {
				return fmt.Errorf("output %s: %v", b.Name, err)
			}
		}
		s, err := o.sender(b)
		if err != nil {
			return err
		}
		for i, it := range items {
			body, err := OutputBytes(it, b.DataType)
			if err != nil {
				return fmt.Errorf("output %s[%d]: %v", b.Name, i, err)
			}
			if err := s.SendMessage(ctx, &azservicebus.Message{Body: body}, nil); err != nil {
				return fmt.Errorf("output %s: send to %s: %w", b.Name, b.Entity(), err)
			}
		}
	}
	return nil
}

func (o *outputs) sender(b Binding) (*azservicebus.Sender, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	entity := b.QueueName
	if entity == "" {
		entity = b.TopicName
	}
	key := b.Connection + "|" + entity
	if s, ok := o.senders[key]; ok {
		return s, nil
	}
	c, ok := o.clients[b.Connection]
	if !ok {
		var err error
		c, err = azservicebus.NewClientFromConnectionString(o.h.settings[b.Connection], o.h.opts.ServiceBusOptions)
		if err != nil {
			return nil, fmt.Errorf("output: app setting %s is not a valid Service Bus connection string", b.Connection)
		}
		o.clients[b.Connection] = c
	}
	s, err := c.NewSender(entity, nil)
	if err != nil {
		return nil, fmt.Errorf("output: sender for %s: %w", entity, err)
	}
	o.senders[key] = s
	return s, nil
}

func (o *outputs) close(ctx context.Context) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.senders {
		_ = s.Close(ctx)
	}
	for _, c := range o.clients {
		_ = c.Close(ctx)
	}
	o.senders, o.clients = map[string]*azservicebus.Sender{}, map[string]*azservicebus.Client{}
}
