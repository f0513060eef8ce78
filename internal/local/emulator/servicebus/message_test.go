package servicebus

import (
	"bytes"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

func TestNetOrderMatchesDotNetGuidLayout(t *testing.T) {
	u := uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")
	got := netOrder(u)
	want := []byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	if !bytes.Equal(got[:], want) {
		t.Fatalf("netOrder = % x, want % x", got, want)
	}
	if netOrder(got) != u {
		t.Fatal("netOrder is not its own inverse")
	}
}

func TestEncodeOutboundAlwaysCarriesDeliveryCount(t *testing.T) {
	enq := time.UnixMilli(1_800_000_000_000).UTC()
	tests := map[string]struct {
		msg       store.Message
		locked    bool
		wantCount uint32
	}{
		"a first delivery still carries delivery-count 0": {store.Message{SequenceNumber: 7, EnqueuedTime: enq}, true, 0},
		"a redelivery carries earlier attempts":           {store.Message{SequenceNumber: 8, EnqueuedTime: enq, DeliveryCount: 2}, false, 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.msg.AMQP = &goamqp.Message{Data: [][]byte{[]byte("x")}}
			tc.msg.LockedUntil = enq.Add(time.Minute)
			b, err := encodeOutbound(outbound{msg: &tc.msg, locked: tc.locked})
			if err != nil {
				t.Fatal(err)
			}
			// go-amqp's header encoder omits a zero count; ours must not.
			if !bytes.HasPrefix(b, []byte{0x00, 0x53, 0x70, 0xc0}) {
				t.Fatalf("message does not start with a header list: % x", b[:8])
			}
			var m goamqp.Message
			if err := m.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if m.Header == nil || m.Header.DeliveryCount != tc.wantCount || m.Header.Priority != 4 {
				t.Fatalf("header = %+v", m.Header)
			}
			if m.Annotations["x-opt-sequence-number"] != tc.msg.SequenceNumber || !m.Annotations["x-opt-enqueued-time"].(time.Time).Equal(enq) {
				t.Fatalf("annotations = %v", m.Annotations)
			}
			if _, has := m.Annotations["x-opt-locked-until"]; has != tc.locked {
				t.Fatalf("x-opt-locked-until present = %v, want %v", has, tc.locked)
			}
			if string(m.GetData()) != "x" {
				t.Fatalf("body %q", m.GetData())
			}
		})
	}
}

func TestDecodeMessagesUnpacksBatches(t *testing.T) {
	one, _ := (&goamqp.Message{Data: [][]byte{[]byte("1")}}).MarshalBinary()
	two, _ := (&goamqp.Message{Data: [][]byte{[]byte("2")}}).MarshalBinary()
	env, _ := (&goamqp.Message{Data: [][]byte{one, two}}).MarshalBinary()
	msgs, err := decodeMessages(batchFormat, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || string(msgs[0].AMQP.GetData()) != "1" || string(msgs[1].AMQP.GetData()) != "2" {
		t.Fatalf("batch decoded to %d messages", len(msgs))
	}
	if msgs[0].AMQP.Properties == nil || msgs[0].AMQP.Properties.MessageID == nil {
		t.Fatal("a message without message-id did not get one")
	}
	single, err := decodeMessages(0, env)
	if err != nil || len(single) != 1 {
		t.Fatalf("format 0 decoded to %d messages, %v", len(single), err)
	}
}
