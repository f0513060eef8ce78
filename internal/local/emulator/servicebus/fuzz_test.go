package servicebus

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/amqp"
)

// FuzzConnection feeds arbitrary frames to a broker connection after a valid handshake:
// whatever a peer sends, the connection ends cleanly (no panic caught by the guard in
// serve, no hang) and the broker keeps serving.
func FuzzConnection(f *testing.F) {
	logs := &syncBuffer{}
	b, err := New(Options{Config: testConfig(), Clock: clock.NewManual(time.Now()),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	frames := func(bodies ...any) []byte {
		var out []byte
		for _, body := range bodies {
			out, _ = amqp.AppendFrame(out, amqp.Frame{Body: body})
		}
		return out
	}
	f.Add(frames(&amqp.Begin{IncomingWindow: 10, OutgoingWindow: 10},
		&amqp.Attach{Name: "s", Role: amqp.RoleSender, Target: &amqp.Target{Address: "plain"}},
		&amqp.Transfer{Handle: 0, DeliveryID: amqp.U32(0), DeliveryTag: []byte{1}, Payload: []byte{0x00, 0x53, 0x75, 0xa0, 1, 'x'}},
		&amqp.Flow{Handle: amqp.U32(0), LinkCredit: amqp.U32(5), Drain: true},
		&amqp.Disposition{Role: amqp.RoleReceiver, First: 0, Last: amqp.U32(4294967295), State: &amqp.Accepted{}},
		&amqp.Detach{Handle: 0, Closed: true}, &amqp.End{}))
	f.Add(frames(&amqp.Begin{}, &amqp.Attach{Name: "r", Role: amqp.RoleReceiver, Source: &amqp.Source{Address: "sessions",
		Filter: amqp.Map{{Key: amqp.Symbol("com.microsoft:session-filter"), Value: 7}}}}))
	f.Add(frames(&amqp.Attach{Name: "x"}, &amqp.Close{}))
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		c := newConn(b, server)
		done := make(chan struct{})
		go func() { c.serve(); close(done) }()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		hs := append(append([]byte{}, amqp.HeaderAMQP...), frames(&amqp.Open{ContainerID: "fuzz", MaxFrameSize: 65536})...)
		_, _ = client.Write(append(hs, in...))
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("connection did not end after the peer closed")
		}
		if strings.Contains(logs.String(), "internal error") {
			t.Fatalf("a peer triggered a panic:\n%s", logs.String())
		}
	})
}

// FuzzValidateSAS: a token from the network never panics the validator, and only a
// correctly signed one is accepted.
func FuzzValidateSAS(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(sasToken("amqp://localhost:5672/orders", "root", "k", now.Add(time.Hour), false))
	f.Add("SharedAccessSignature sr=&sig=%zz&se=x&skn=")
	f.Add("SharedAccessSignature &&&===")
	f.Fuzz(func(t *testing.T, token string) {
		g, err := validateSAS(token, map[string]string{"root": "k"}, now)
		if err == nil && !g.Expires.After(now) {
			t.Fatalf("accepted an expired token %q", token)
		}
	})
}

// FuzzDecodeMessages: a transfer payload from the network never panics the decoder.
func FuzzDecodeMessages(f *testing.F) {
	one, _ := (&goamqp.Message{Data: [][]byte{[]byte("1")}}).MarshalBinary()
	env, _ := (&goamqp.Message{Data: [][]byte{one}}).MarshalBinary()
	f.Add(uint32(0), one)
	f.Add(batchFormat, env)
	f.Add(batchFormat, []byte{0x00, 0x53, 0x75, 0xa0, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, format uint32, payload []byte) {
		msgs, err := decodeMessages(format, payload)
		if err == nil && format != batchFormat && len(msgs) != 1 {
			t.Fatalf("format %d gave %d messages", format, len(msgs))
		}
	})
}
