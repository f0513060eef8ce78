package servicebus

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/amqp"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

// rawPeer is a hand-driven AMQP client for what the SDKs never do.
type rawPeer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, f *fixture) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", f.broker.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawPeer{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (p *rawPeer) write(fr amqp.Frame) {
	p.t.Helper()
	if err := amqp.WriteFrame(p.nc, fr); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) read() any {
	p.t.Helper()
	for {
		fr, err := amqp.ReadFrame(p.br, 1<<20)
		if err != nil {
			p.t.Fatalf("read frame: %v", err)
		}
		if fr.Body != nil { // skip keep-alives
			return fr.Body
		}
	}
}

// open performs SASL (PLAIN with user/pass, or ANONYMOUS when user is ""), open and
// begin on channel 0.
func (p *rawPeer) open(user, pass string) {
	p.t.Helper()
	p.nc.Write(amqp.HeaderSASL)
	if id, err := amqp.ReadProtocolHeader(p.br); err != nil || id != 3 {
		p.t.Fatalf("SASL header: %d %v", id, err)
	}
	if _, ok := p.read().(*amqp.SASLMechanisms); !ok {
		p.t.Fatal("no sasl-mechanisms")
	}
	init := &amqp.SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("anonymous")}
	if user != "" {
		init = &amqp.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00" + user + "\x00" + pass)}
	}
	p.write(amqp.Frame{Type: amqp.FrameSASL, Body: init})
	if o, ok := p.read().(*amqp.SASLOutcome); !ok || o.Code != amqp.SASLOK {
		p.t.Fatalf("sasl outcome %#v", o)
	}
	p.nc.Write(amqp.HeaderAMQP)
	if _, err := amqp.ReadProtocolHeader(p.br); err != nil {
		p.t.Fatal(err)
	}
	p.write(amqp.Frame{Body: &amqp.Open{ContainerID: "raw", MaxFrameSize: 65536}})
	if o, ok := p.read().(*amqp.Open); !ok || o.MaxFrameSize != maxFrameSize {
		p.t.Fatalf("open reply %#v", o)
	}
	p.write(amqp.Frame{Body: &amqp.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100}})
	if _, ok := p.read().(*amqp.Begin); !ok {
		p.t.Fatal("no begin reply")
	}
}

// attachSender attaches a sender link to address on handle 0 and returns the broker's
// reply attach and the frame after it (flow when accepted, detach when refused).
func (p *rawPeer) attachSender(address string) (*amqp.Attach, any) {
	p.t.Helper()
	p.write(amqp.Frame{Body: &amqp.Attach{Name: "raw-sender", Handle: 0, Role: amqp.RoleSender,
		Source: &amqp.Source{Address: "raw"}, Target: &amqp.Target{Address: address}, InitialDeliveryCount: amqp.U32(0)}})
	a, ok := p.read().(*amqp.Attach)
	if !ok {
		p.t.Fatal("no attach reply")
	}
	return a, p.read()
}

// expectDropped waits until the broker closes the connection (after an optional close frame).
func (p *rawPeer) expectDropped() {
	p.t.Helper()
	for {
		_, err := amqp.ReadFrame(p.br, 1<<20)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
			return
		}
		p.t.Fatalf("waiting for the broker to drop the connection: %v", err)
	}
}

func TestAnEntityLinkNeedsAToken(t *testing.T) {
	f := newFixture(t)
	p := dialRaw(t, f)
	p.open("", "")
	a, next := p.attachSender("plain")
	if a.Target != nil {
		t.Fatalf("attach without a token was accepted: %#v", a)
	}
	d, ok := next.(*amqp.Detach)
	if !ok || d.Error == nil || d.Error.Condition != "amqp:unauthorized-access" || !d.Closed {
		t.Fatalf("after the refusal got %#v, want detach with amqp:unauthorized-access", next)
	}
}

func TestSASLPlainWithAKeyAuthorisesTheNamespace(t *testing.T) {
	f := newFixture(t)
	p := dialRaw(t, f)
	p.open(DefaultKeyName, DefaultKey)
	a, next := p.attachSender("plain")
	if a.Target == nil || a.MaxMessageSize != MaxMessageSize {
		t.Fatalf("attach reply %#v", a)
	}
	if fl, ok := next.(*amqp.Flow); !ok || fl.LinkCredit == nil || *fl.LinkCredit == 0 {
		t.Fatalf("no credit after attach: %#v", next)
	}
}

// Every bad peer below is dropped alone: a healthy client on another connection keeps
// sending and receiving, and no message is lost.
func TestBadPeersAreDroppedAlone(t *testing.T) {
	f := newFixture(t)
	f.send(t, "plain", body("kept"))
	good := f.receiver(t, "plain", nil)

	msg, err := (&goamqp.Message{Data: [][]byte{[]byte("partial")}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(t *testing.T, p *rawPeer){
		"garbage instead of a protocol header": func(t *testing.T, p *rawPeer) {
			p.nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		},
		"garbage after open": func(t *testing.T, p *rawPeer) {
			p.open("", "")
			p.nc.Write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef})
		},
		"a frame larger than the negotiated max-frame-size": func(t *testing.T, p *rawPeer) {
			p.open("", "")
			p.nc.Write([]byte{0, 2, 0, 0, 2, 0, 0, 0}) // announces 128 KiB > 64 KiB
		},
		"a client vanishing mid-transfer": func(t *testing.T, p *rawPeer) {
			p.open(DefaultKeyName, DefaultKey)
			p.attachSender("plain")
			p.write(amqp.Frame{Body: &amqp.Transfer{Handle: 0, DeliveryID: amqp.U32(0), DeliveryTag: []byte{1},
				MessageFormat: amqp.U32(0), More: true, Payload: msg[:len(msg)/2]}})
			p.nc.Close()
		},
		"a client vanishing mid-frame": func(t *testing.T, p *rawPeer) {
			p.open("", "")
			p.nc.Write([]byte{0, 0, 1, 0, 2, 0, 0, 0, 0x00, 0x53})
			p.nc.Close()
		},
	}
	for name, misbehave := range tests {
		t.Run(name, func(t *testing.T) {
			p := dialRaw(t, f)
			misbehave(t, p)
			if !isClosed(p.nc) {
				p.expectDropped()
			}
			f.send(t, "other", body("still working"))
			if c := f.counts(t, "other"); c.Active != 1 {
				t.Fatalf("other queue counts %+v", c)
			}
			if _, err := f.broker.Store().Receive(ctxT(t, time.Second), "other", "", store.ReceiveAndDelete); err != nil {
				t.Fatal(err)
			}
		})
	}
	m := receiveOne(t, good)
	if string(m.Body) != "kept" {
		t.Fatalf("good receiver got %q", m.Body)
	}
	if c := f.counts(t, "plain"); c.Active+c.Locked != 1 {
		t.Fatalf("plain counts %+v: the partial transfer must not be stored, the kept message must stay", c)
	}
	if !strings.Contains(f.logs.String(), "dropping connection") {
		t.Fatal("bad peers were not logged")
	}
}

func isClosed(nc net.Conn) bool {
	_, err := nc.Read(make([]byte, 0))
	return errors.Is(err, net.ErrClosed)
}

func TestIdleConnectionsGetKeepAliveFrames(t *testing.T) {
	f := newFixture(t)
	p := dialRaw(t, f)
	p.nc.Write(amqp.HeaderAMQP)
	if _, err := amqp.ReadProtocolHeader(p.br); err != nil {
		t.Fatal(err)
	}
	// A peer that would time out after 200 ms of silence gets an empty frame well before.
	p.write(amqp.Frame{Body: &amqp.Open{ContainerID: "idle", MaxFrameSize: 65536, IdleTimeout: 200 * time.Millisecond}})
	if o, ok := p.read().(*amqp.Open); !ok || o.IdleTimeout != idleTimeout {
		t.Fatalf("open reply %#v", o)
	}
	_ = p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	fr, err := amqp.ReadFrame(p.br, 1<<20)
	if err != nil || fr.Body != nil {
		t.Fatalf("after open got %#v, %v; want an empty keep-alive frame", fr.Body, err)
	}
}

// putToken runs a CBS put-token the way rhea does: the reply link has no target, so the
// broker must route the reply by the link's name.
func (p *rawPeer) putToken(token, audience string) (status int32) {
	p.t.Helper()
	p.write(amqp.Frame{Body: &amqp.Attach{Name: "cbs-sender", Handle: 10, Role: amqp.RoleSender,
		Target: &amqp.Target{Address: "$cbs"}, InitialDeliveryCount: amqp.U32(0)}})
	p.read() // attach
	p.read() // flow
	p.write(amqp.Frame{Body: &amqp.Attach{Name: "cbs-reply-7", Handle: 11, Role: amqp.RoleReceiver,
		Source: &amqp.Source{Address: "$cbs"}}})
	p.read() // attach
	p.write(amqp.Frame{Body: &amqp.Flow{NextIncomingID: amqp.U32(0), IncomingWindow: 100, OutgoingWindow: 100,
		Handle: amqp.U32(11), DeliveryCount: amqp.U32(0), LinkCredit: amqp.U32(10)}})
	replyTo := "cbs-reply-7"
	req, err := (&goamqp.Message{
		Properties:            &goamqp.MessageProperties{MessageID: "req-1", ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience},
		Value:                 token,
	}).MarshalBinary()
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(amqp.Frame{Body: &amqp.Transfer{Handle: 10, DeliveryID: amqp.U32(0), DeliveryTag: []byte{0},
		MessageFormat: amqp.U32(0), Settled: amqp.Bool(true), Payload: req}})
	for {
		tr, ok := p.read().(*amqp.Transfer)
		if !ok {
			continue
		}
		if tr.Handle != 11 {
			p.t.Fatalf("reply on handle %d, want the reply link 11", tr.Handle)
		}
		var res goamqp.Message
		if err := res.UnmarshalBinary(tr.Payload); err != nil {
			p.t.Fatal(err)
		}
		if res.Properties == nil || res.Properties.CorrelationID != "req-1" {
			p.t.Fatalf("reply correlation %#v", res.Properties)
		}
		return res.ApplicationProperties["status-code"].(int32)
	}
}

func TestATokenOpensOnlyItsOwnEntity(t *testing.T) {
	f := newFixture(t)
	p := dialRaw(t, f)
	p.open("", "")
	tok := sasToken("sb://localhost/other", DefaultKeyName, DefaultKey, time.Now().Add(time.Hour), true)
	if status := p.putToken(tok, "sb://localhost/other"); status != 200 {
		t.Fatalf("put-token status %d", status)
	}
	if a, _ := p.attachSender("other"); a.Target == nil {
		t.Fatal("attach to the token's entity was refused")
	}
	p.write(amqp.Frame{Body: &amqp.Attach{Name: "s2", Handle: 1, Role: amqp.RoleSender,
		Target: &amqp.Target{Address: "plain"}, InitialDeliveryCount: amqp.U32(0)}})
	for {
		switch fr := p.read().(type) {
		case *amqp.Detach:
			if fr.Handle != 1 || fr.Error == nil || fr.Error.Condition != "amqp:unauthorized-access" {
				t.Fatalf("detach %#v", fr)
			}
			return
		case *amqp.Attach:
			if fr.Handle == 1 && fr.Target != nil {
				t.Fatal("a token for \"other\" opened \"plain\"")
			}
		}
	}
}
