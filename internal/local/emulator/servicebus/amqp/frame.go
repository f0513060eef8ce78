package amqp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types.
const (
	FrameAMQP uint8 = 0
	FrameSASL uint8 = 1
)

// MinMaxFrameSize is the smallest max-frame-size AMQP allows a peer to advertise.
const MinMaxFrameSize = 512

// Protocol headers.
var (
	HeaderAMQP = []byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	HeaderTLS  = []byte{'A', 'M', 'Q', 'P', 2, 1, 0, 0}
	HeaderSASL = []byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// Frame is one AMQP or SASL frame. Body is nil for an empty (keep-alive) frame, otherwise
// one of the performative or SASL types of this package.
type Frame struct {
	Type    uint8
	Channel uint16
	Body    any
}

// ErrFrameTooLarge reports a frame whose size exceeds the negotiated maximum.
var ErrFrameTooLarge = errors.New("amqp: frame exceeds max-frame-size")

// ReadProtocolHeader reads the 8-byte protocol header and returns its protocol id
// (0 AMQP, 2 TLS, 3 SASL).
func ReadProtocolHeader(r io.Reader) (byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	if !bytes.Equal(h[:4], []byte("AMQP")) || h[5] != 1 || h[6] != 0 || h[7] != 0 {
		return 0, fmt.Errorf("amqp: bad protocol header % x", h)
	}
	return h[4], nil
}

// ReadFrame reads one frame, refusing frames larger than maxSize before reading their
// body so a peer cannot make the broker allocate what it announces.
func ReadFrame(r io.Reader, maxSize uint32) (Frame, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	size := binary.BigEndian.Uint32(h[0:4])
	doff := h[4]
	f := Frame{Type: h[5], Channel: binary.BigEndian.Uint16(h[6:8])}
	if size < 8 {
		return Frame{}, fmt.Errorf("amqp: frame size %d below the 8-byte header", size)
	}
	if size > maxSize {
		return Frame{}, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	if doff < 2 || uint32(doff)*4 > size {
		return Frame{}, fmt.Errorf("amqp: frame data offset %d invalid for size %d", doff, size)
	}
	if f.Type != FrameAMQP && f.Type != FrameSASL {
		return Frame{}, fmt.Errorf("amqp: unknown frame type %d", f.Type)
	}
	rest := make([]byte, size-8)
	if _, err := io.ReadFull(r, rest); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	body := rest[uint32(doff)*4-8:] // skip the extended header
	if len(body) == 0 {
		return f, nil
	}
	v, err := DecodeBody(body)
	if err != nil {
		return Frame{}, err
	}
	f.Body = v
	return f, nil
}

// AppendFrame appends the encoded frame (header, performative and, for a transfer, its
// payload) to b.
func AppendFrame(b []byte, f Frame) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, f.Type, byte(f.Channel>>8), byte(f.Channel))
	if f.Body != nil {
		m, ok := f.Body.(Marshaler)
		if !ok {
			return nil, fmt.Errorf("amqp: cannot encode frame body %T", f.Body)
		}
		var err error
		if b, err = m.AppendAMQP(b); err != nil {
			return nil, err
		}
		if t, ok := f.Body.(*Transfer); ok {
			b = append(b, t.Payload...)
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b, nil
}

// WriteFrame encodes f and writes it to w in one call.
func WriteFrame(w io.Writer, f Frame) error {
	b, err := AppendFrame(nil, f)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// TransferOverhead returns the encoded size of a frame carrying t without payload, so the
// writer can cut a message into frames that fit the peer's max-frame-size.
func TransferOverhead(t *Transfer) (int, error) {
	c := *t
	c.Payload = nil
	b, err := AppendFrame(nil, Frame{Body: &c})
	return len(b), err
}
