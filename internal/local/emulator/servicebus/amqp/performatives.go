package amqp

import (
	"fmt"
	"time"
)

// Role values of attach and disposition.
const (
	RoleSender   = false
	RoleReceiver = true
)

// Settlement modes.
const (
	SndUnsettled uint8 = 0
	SndSettled   uint8 = 1
	SndMixed     uint8 = 2
	RcvFirst     uint8 = 0
	RcvSecond    uint8 = 1
)

// Open is the open performative.
type Open struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32 // 0 when absent means the default 4294967295
	ChannelMax          uint16
	IdleTimeout         time.Duration
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          Map
}

// AppendAMQP implements Marshaler.
func (o *Open) AppendAMQP(b []byte) ([]byte, error) {
	var idle any
	if o.IdleTimeout > 0 {
		idle = uint32(o.IdleTimeout / time.Millisecond)
	}
	return describedList(b, CodeOpen, opts(o.ContainerID, o.Hostname, o.MaxFrameSize, o.ChannelMax, idle,
		nil, nil, o.OfferedCapabilities, o.DesiredCapabilities, o.Properties)...)
}

func decodeOpen(f fields) (*Open, error) {
	o := &Open{}
	var err error
	if o.ContainerID, err = f.str(0); err != nil {
		return nil, err
	}
	if o.Hostname, err = f.str(1); err != nil {
		return nil, err
	}
	if o.MaxFrameSize, err = f.u32(2, 0xffffffff); err != nil {
		return nil, err
	}
	if o.ChannelMax, err = f.u16(3, 0xffff); err != nil {
		return nil, err
	}
	if o.IdleTimeout, err = f.millis(4); err != nil {
		return nil, err
	}
	if o.OfferedCapabilities, err = f.symbols(7); err != nil {
		return nil, err
	}
	if o.DesiredCapabilities, err = f.symbols(8); err != nil {
		return nil, err
	}
	if o.Properties, err = f.mapping(9); err != nil {
		return nil, err
	}
	return o, nil
}

// Begin is the begin performative.
type Begin struct {
	RemoteChannel  *uint16
	NextOutgoingID uint32
	IncomingWindow uint32
	OutgoingWindow uint32
	HandleMax      uint32
	Properties     Map
}

// AppendAMQP implements Marshaler.
func (o *Begin) AppendAMQP(b []byte) ([]byte, error) {
	var rc any
	if o.RemoteChannel != nil {
		rc = *o.RemoteChannel
	}
	return describedList(b, CodeBegin, opts(rc, o.NextOutgoingID, o.IncomingWindow, o.OutgoingWindow,
		o.HandleMax, nil, nil, o.Properties)...)
}

func decodeBegin(f fields) (*Begin, error) {
	o := &Begin{}
	var err error
	if f.get(0) != nil {
		rc, err := f.u16(0, 0)
		if err != nil {
			return nil, err
		}
		o.RemoteChannel = &rc
	}
	if o.NextOutgoingID, err = f.u32(1, 0); err != nil {
		return nil, err
	}
	if o.IncomingWindow, err = f.u32(2, 0); err != nil {
		return nil, err
	}
	if o.OutgoingWindow, err = f.u32(3, 0); err != nil {
		return nil, err
	}
	if o.HandleMax, err = f.u32(4, 0xffffffff); err != nil {
		return nil, err
	}
	if o.Properties, err = f.mapping(7); err != nil {
		return nil, err
	}
	return o, nil
}

// Attach is the attach performative.
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 bool
	SndSettleMode        *uint8
	RcvSettleMode        *uint8
	Source               *Source
	Target               *Target
	Unsettled            Map
	IncompleteUnsettled  bool
	InitialDeliveryCount *uint32
	MaxMessageSize       uint64
	OfferedCapabilities  []Symbol
	DesiredCapabilities  []Symbol
	Properties           Map
}

// AppendAMQP implements Marshaler.
func (o *Attach) AppendAMQP(b []byte) ([]byte, error) {
	var mms any
	if o.MaxMessageSize > 0 {
		mms = o.MaxMessageSize
	}
	var incomplete any
	if o.IncompleteUnsettled {
		incomplete = true
	}
	return describedList(b, CodeAttach, opts(o.Name, o.Handle, o.Role, o.SndSettleMode, o.RcvSettleMode,
		o.Source, o.Target, o.Unsettled, incomplete, o.InitialDeliveryCount, mms,
		o.OfferedCapabilities, o.DesiredCapabilities, o.Properties)...)
}

func decodeAttach(f fields) (*Attach, error) {
	o := &Attach{}
	var err error
	if o.Name, err = f.str(0); err != nil {
		return nil, err
	}
	if o.Handle, err = f.u32(1, 0); err != nil {
		return nil, err
	}
	if o.Role, err = f.boolean(2); err != nil {
		return nil, err
	}
	if o.SndSettleMode, err = f.optU8(3); err != nil {
		return nil, err
	}
	if o.RcvSettleMode, err = f.optU8(4); err != nil {
		return nil, err
	}
	if f.get(5) != nil {
		if o.Source, err = decodeSource(f.get(5)); err != nil {
			return nil, err
		}
	}
	if f.get(6) != nil {
		if o.Target, err = decodeTarget(f.get(6)); err != nil {
			return nil, err
		}
	}
	if o.Unsettled, err = f.mapping(7); err != nil {
		return nil, err
	}
	if o.IncompleteUnsettled, err = f.boolean(8); err != nil {
		return nil, err
	}
	if o.InitialDeliveryCount, err = f.optU32(9); err != nil {
		return nil, err
	}
	if o.MaxMessageSize, _, err = f.u64(10); err != nil {
		return nil, err
	}
	if o.OfferedCapabilities, err = f.symbols(11); err != nil {
		return nil, err
	}
	if o.DesiredCapabilities, err = f.symbols(12); err != nil {
		return nil, err
	}
	if o.Properties, err = f.mapping(13); err != nil {
		return nil, err
	}
	return o, nil
}

// Flow is the flow performative. Handle is nil for a session-only flow.
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     Map
}

// AppendAMQP implements Marshaler.
func (o *Flow) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeFlow, opts(o.NextIncomingID, o.IncomingWindow, o.NextOutgoingID, o.OutgoingWindow,
		o.Handle, o.DeliveryCount, o.LinkCredit, o.Available, o.Drain, o.Echo, o.Properties)...)
}

func decodeFlow(f fields) (*Flow, error) {
	o := &Flow{}
	var err error
	if o.NextIncomingID, err = f.optU32(0); err != nil {
		return nil, err
	}
	if o.IncomingWindow, err = f.u32(1, 0); err != nil {
		return nil, err
	}
	if o.NextOutgoingID, err = f.u32(2, 0); err != nil {
		return nil, err
	}
	if o.OutgoingWindow, err = f.u32(3, 0); err != nil {
		return nil, err
	}
	if o.Handle, err = f.optU32(4); err != nil {
		return nil, err
	}
	if o.DeliveryCount, err = f.optU32(5); err != nil {
		return nil, err
	}
	if o.LinkCredit, err = f.optU32(6); err != nil {
		return nil, err
	}
	if o.Available, err = f.optU32(7); err != nil {
		return nil, err
	}
	if o.Drain, err = f.boolean(8); err != nil {
		return nil, err
	}
	if o.Echo, err = f.boolean(9); err != nil {
		return nil, err
	}
	if o.Properties, err = f.mapping(10); err != nil {
		return nil, err
	}
	return o, nil
}

// Transfer is the transfer performative; Payload holds the frame's message bytes.
type Transfer struct {
	Handle        uint32
	DeliveryID    *uint32
	DeliveryTag   []byte
	MessageFormat *uint32
	Settled       *bool
	More          bool
	RcvSettleMode *uint8
	State         DeliveryState
	Resume        bool
	Aborted       bool
	Batchable     bool
	Payload       []byte
}

// AppendAMQP implements Marshaler (the performative only; the frame writer appends Payload).
func (o *Transfer) AppendAMQP(b []byte) ([]byte, error) {
	var state any
	if o.State != nil {
		state = o.State
	}
	return describedList(b, CodeTransfer, opts(o.Handle, o.DeliveryID, o.DeliveryTag, o.MessageFormat, o.Settled,
		o.More, o.RcvSettleMode, state, o.Resume, o.Aborted, o.Batchable)...)
}

func decodeTransfer(f fields) (*Transfer, error) {
	o := &Transfer{}
	var err error
	if o.Handle, err = f.u32(0, 0); err != nil {
		return nil, err
	}
	if o.DeliveryID, err = f.optU32(1); err != nil {
		return nil, err
	}
	if o.DeliveryTag, err = f.binary(2); err != nil {
		return nil, err
	}
	if o.MessageFormat, err = f.optU32(3); err != nil {
		return nil, err
	}
	if o.Settled, err = f.optBool(4); err != nil {
		return nil, err
	}
	if o.More, err = f.boolean(5); err != nil {
		return nil, err
	}
	if o.RcvSettleMode, err = f.optU8(6); err != nil {
		return nil, err
	}
	if f.get(7) != nil {
		if o.State, err = DecodeDeliveryState(f.get(7)); err != nil {
			return nil, err
		}
	}
	if o.Resume, err = f.boolean(8); err != nil {
		return nil, err
	}
	if o.Aborted, err = f.boolean(9); err != nil {
		return nil, err
	}
	if o.Batchable, err = f.boolean(10); err != nil {
		return nil, err
	}
	return o, nil
}

// Disposition is the disposition performative.
type Disposition struct {
	Role      bool
	First     uint32
	Last      *uint32
	Settled   bool
	State     DeliveryState
	Batchable bool
}

// AppendAMQP implements Marshaler.
func (o *Disposition) AppendAMQP(b []byte) ([]byte, error) {
	var state any
	if o.State != nil {
		state = o.State
	}
	return describedList(b, CodeDisposition, opts(o.Role, o.First, o.Last, o.Settled, state, o.Batchable)...)
}

func decodeDisposition(f fields) (*Disposition, error) {
	o := &Disposition{}
	var err error
	if o.Role, err = f.boolean(0); err != nil {
		return nil, err
	}
	if o.First, err = f.u32(1, 0); err != nil {
		return nil, err
	}
	if o.Last, err = f.optU32(2); err != nil {
		return nil, err
	}
	if o.Settled, err = f.boolean(3); err != nil {
		return nil, err
	}
	if f.get(4) != nil {
		if o.State, err = DecodeDeliveryState(f.get(4)); err != nil {
			return nil, err
		}
	}
	if o.Batchable, err = f.boolean(5); err != nil {
		return nil, err
	}
	return o, nil
}

// Detach is the detach performative.
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

// AppendAMQP implements Marshaler.
func (o *Detach) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeDetach, opts(o.Handle, o.Closed, o.Error)...)
}

func decodeDetach(f fields) (*Detach, error) {
	o := &Detach{}
	var err error
	if o.Handle, err = f.u32(0, 0); err != nil {
		return nil, err
	}
	if o.Closed, err = f.boolean(1); err != nil {
		return nil, err
	}
	if o.Error, err = decodeOptError(f.get(2)); err != nil {
		return nil, err
	}
	return o, nil
}

// End is the end performative.
type End struct{ Error *Error }

// AppendAMQP implements Marshaler.
func (o *End) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeEnd, opts(o.Error)...)
}

// Close is the close performative.
type Close struct{ Error *Error }

// AppendAMQP implements Marshaler.
func (o *Close) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeClose, opts(o.Error)...)
}

// Error is the AMQP error type.
type Error struct {
	Condition   Symbol
	Description string
	Info        Map
}

// Error implements error.
func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return fmt.Sprintf("%s: %s", e.Condition, e.Description)
}

// AppendAMQP implements Marshaler.
func (e *Error) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeError, opts(e.Condition, e.Description, e.Info)...)
}

func decodeOptError(v any) (*Error, error) {
	if v == nil {
		return nil, nil
	}
	f, err := composite(v, CodeError, "error")
	if err != nil {
		return nil, err
	}
	e := &Error{}
	if e.Condition, err = f.sym(0); err != nil {
		return nil, err
	}
	if e.Description, err = f.str(1); err != nil {
		return nil, err
	}
	if e.Info, err = f.mapping(2); err != nil {
		return nil, err
	}
	return e, nil
}

// Source is the source terminus. Filter keeps the peer's own encoding of each filter
// value (described for go-amqp, bare for rhea) so that it can be echoed unchanged.
type Source struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties Map
	DistributionMode      Symbol
	Filter                Map
	DefaultOutcome        any
	Outcomes              []Symbol
	Capabilities          []Symbol
}

// AppendAMQP implements Marshaler.
func (s *Source) AppendAMQP(b []byte) ([]byte, error) {
	var durable, timeout, dynamic any
	if s.Durable != 0 {
		durable = s.Durable
	}
	if s.Timeout != 0 {
		timeout = s.Timeout
	}
	if s.Dynamic {
		dynamic = true
	}
	return describedList(b, CodeSource, opts(s.Address, durable, s.ExpiryPolicy, timeout, dynamic,
		s.DynamicNodeProperties, s.DistributionMode, s.Filter, s.DefaultOutcome, s.Outcomes, s.Capabilities)...)
}

func decodeSource(v any) (*Source, error) {
	f, err := composite(v, CodeSource, "source")
	if err != nil {
		return nil, err
	}
	s := &Source{}
	if s.Address, err = f.str(0); err != nil {
		return nil, err
	}
	if s.Durable, err = f.u32(1, 0); err != nil {
		return nil, err
	}
	if s.ExpiryPolicy, err = f.sym(2); err != nil {
		return nil, err
	}
	if s.Timeout, err = f.u32(3, 0); err != nil {
		return nil, err
	}
	if s.Dynamic, err = f.boolean(4); err != nil {
		return nil, err
	}
	if s.DynamicNodeProperties, err = f.mapping(5); err != nil {
		return nil, err
	}
	if s.DistributionMode, err = f.sym(6); err != nil {
		return nil, err
	}
	if s.Filter, err = f.mapping(7); err != nil {
		return nil, err
	}
	s.DefaultOutcome = f.get(8)
	if s.Outcomes, err = f.symbols(9); err != nil {
		return nil, err
	}
	if s.Capabilities, err = f.symbols(10); err != nil {
		return nil, err
	}
	return s, nil
}

// Target is the target terminus.
type Target struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties Map
	Capabilities          []Symbol
}

// AppendAMQP implements Marshaler.
func (t *Target) AppendAMQP(b []byte) ([]byte, error) {
	var durable, timeout, dynamic any
	if t.Durable != 0 {
		durable = t.Durable
	}
	if t.Timeout != 0 {
		timeout = t.Timeout
	}
	if t.Dynamic {
		dynamic = true
	}
	return describedList(b, CodeTarget, opts(t.Address, durable, t.ExpiryPolicy, timeout, dynamic,
		t.DynamicNodeProperties, t.Capabilities)...)
}

func decodeTarget(v any) (*Target, error) {
	f, err := composite(v, CodeTarget, "target")
	if err != nil {
		return nil, err
	}
	t := &Target{}
	if t.Address, err = f.str(0); err != nil {
		return nil, err
	}
	if t.Durable, err = f.u32(1, 0); err != nil {
		return nil, err
	}
	if t.ExpiryPolicy, err = f.sym(2); err != nil {
		return nil, err
	}
	if t.Timeout, err = f.u32(3, 0); err != nil {
		return nil, err
	}
	if t.Dynamic, err = f.boolean(4); err != nil {
		return nil, err
	}
	if t.DynamicNodeProperties, err = f.mapping(5); err != nil {
		return nil, err
	}
	if t.Capabilities, err = f.symbols(6); err != nil {
		return nil, err
	}
	return t, nil
}

// DeliveryState is one of Received, Accepted, Rejected, Released, Modified.
type DeliveryState interface {
	Marshaler
	deliveryState()
}

// Received is the received delivery state.
type Received struct {
	SectionNumber uint32
	SectionOffset uint64
}

// Accepted is the accepted outcome.
type Accepted struct{}

// Rejected is the rejected outcome.
type Rejected struct{ Error *Error }

// Released is the released outcome.
type Released struct{}

// Modified is the modified outcome.
type Modified struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations Map
}

func (*Received) deliveryState() {}
func (*Accepted) deliveryState() {}
func (*Rejected) deliveryState() {}
func (*Released) deliveryState() {}
func (*Modified) deliveryState() {}

// AppendAMQP implements Marshaler.
func (s *Received) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeReceived, s.SectionNumber, s.SectionOffset)
}

// AppendAMQP implements Marshaler.
func (s *Accepted) AppendAMQP(b []byte) ([]byte, error) { return describedList(b, CodeAccepted) }

// AppendAMQP implements Marshaler.
func (s *Rejected) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeRejected, opts(s.Error)...)
}

// AppendAMQP implements Marshaler.
func (s *Released) AppendAMQP(b []byte) ([]byte, error) { return describedList(b, CodeReleased) }

// AppendAMQP implements Marshaler.
func (s *Modified) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeModified, opts(s.DeliveryFailed, s.UndeliverableHere, s.MessageAnnotations)...)
}

// DecodeDeliveryState decodes a described delivery state.
func DecodeDeliveryState(v any) (DeliveryState, error) {
	d, ok := v.(Described)
	if !ok {
		return nil, fmt.Errorf("amqp: delivery state is %T, want described list", v)
	}
	code, _ := DescriptorCode(d.Descriptor)
	switch code {
	case CodeReceived:
		f, err := composite(v, code, "received")
		if err != nil {
			return nil, err
		}
		s := &Received{}
		if s.SectionNumber, err = f.u32(0, 0); err != nil {
			return nil, err
		}
		if s.SectionOffset, _, err = f.u64(1); err != nil {
			return nil, err
		}
		return s, nil
	case CodeAccepted:
		if _, err := composite(v, code, "accepted"); err != nil {
			return nil, err
		}
		return &Accepted{}, nil
	case CodeRejected:
		f, err := composite(v, code, "rejected")
		if err != nil {
			return nil, err
		}
		e, err := decodeOptError(f.get(0))
		if err != nil {
			return nil, err
		}
		return &Rejected{Error: e}, nil
	case CodeReleased:
		if _, err := composite(v, code, "released"); err != nil {
			return nil, err
		}
		return &Released{}, nil
	case CodeModified:
		f, err := composite(v, code, "modified")
		if err != nil {
			return nil, err
		}
		s := &Modified{}
		if s.DeliveryFailed, err = f.boolean(0); err != nil {
			return nil, err
		}
		if s.UndeliverableHere, err = f.boolean(1); err != nil {
			return nil, err
		}
		if s.MessageAnnotations, err = f.mapping(2); err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("amqp: unknown delivery state descriptor %v", d.Descriptor)
}

// SASLMechanisms is the sasl-mechanisms frame.
type SASLMechanisms struct{ Mechanisms []Symbol }

// SASLInit is the sasl-init frame.
type SASLInit struct {
	Mechanism       Symbol
	InitialResponse []byte
	Hostname        string
}

// SASLChallenge is the sasl-challenge frame.
type SASLChallenge struct{ Challenge []byte }

// SASLResponse is the sasl-response frame.
type SASLResponse struct{ Response []byte }

// SASL outcome codes.
const (
	SASLOK   uint8 = 0
	SASLAuth uint8 = 1
	SASLSys  uint8 = 2
)

// SASLOutcome is the sasl-outcome frame.
type SASLOutcome struct {
	Code           uint8
	AdditionalData []byte
}

// AppendAMQP implements Marshaler. Mechanisms are always sent as an array: rhea and
// go-amqp both accept that form.
func (s *SASLMechanisms) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeSASLMechanisms, s.Mechanisms)
}

// AppendAMQP implements Marshaler.
func (s *SASLInit) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeSASLInit, opts(s.Mechanism, s.InitialResponse, s.Hostname)...)
}

// AppendAMQP implements Marshaler.
func (s *SASLChallenge) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeSASLChallenge, s.Challenge)
}

// AppendAMQP implements Marshaler.
func (s *SASLResponse) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeSASLResponse, s.Response)
}

// AppendAMQP implements Marshaler.
func (s *SASLOutcome) AppendAMQP(b []byte) ([]byte, error) {
	return describedList(b, CodeSASLOutcome, opts(s.Code, s.AdditionalData)...)
}

// DecodeBody decodes a performative or SASL frame body (a described list). For a transfer
// the bytes after the performative become its Payload.
func DecodeBody(b []byte) (any, error) {
	v, rest, err := Decode(b)
	if err != nil {
		return nil, err
	}
	d, ok := v.(Described)
	if !ok {
		return nil, fmt.Errorf("amqp: frame body is %T, want a performative", v)
	}
	code, ok := DescriptorCode(d.Descriptor)
	if !ok {
		return nil, fmt.Errorf("amqp: unknown performative descriptor %v", d.Descriptor)
	}
	if code != CodeTransfer && len(rest) != 0 {
		return nil, fmt.Errorf("amqp: %d bytes after performative %#x", len(rest), code)
	}
	names := map[uint64]string{CodeOpen: "open", CodeBegin: "begin", CodeAttach: "attach", CodeFlow: "flow",
		CodeTransfer: "transfer", CodeDisposition: "disposition", CodeDetach: "detach", CodeEnd: "end",
		CodeClose: "close", CodeSASLMechanisms: "sasl-mechanisms", CodeSASLInit: "sasl-init",
		CodeSASLChallenge: "sasl-challenge", CodeSASLResponse: "sasl-response", CodeSASLOutcome: "sasl-outcome"}
	name, ok := names[code]
	if !ok {
		return nil, fmt.Errorf("amqp: descriptor %#x is not a performative", code)
	}
	f, err := composite(v, code, name)
	if err != nil {
		return nil, err
	}
	switch code {
	case CodeOpen:
		return decodeOpen(f)
	case CodeBegin:
		return decodeBegin(f)
	case CodeAttach:
		return decodeAttach(f)
	case CodeFlow:
		return decodeFlow(f)
	case CodeTransfer:
		t, err := decodeTransfer(f)
		if err != nil {
			return nil, err
		}
		t.Payload = rest
		return t, nil
	case CodeDisposition:
		return decodeDisposition(f)
	case CodeDetach:
		return decodeDetach(f)
	case CodeEnd:
		e, err := decodeOptError(f.get(0))
		return &End{Error: e}, err
	case CodeClose:
		e, err := decodeOptError(f.get(0))
		return &Close{Error: e}, err
	case CodeSASLMechanisms:
		m, err := f.symbols(0)
		return &SASLMechanisms{Mechanisms: m}, err
	case CodeSASLInit:
		s := &SASLInit{}
		if s.Mechanism, err = f.sym(0); err != nil {
			return nil, err
		}
		if s.InitialResponse, err = f.binary(1); err != nil {
			return nil, err
		}
		if s.Hostname, err = f.str(2); err != nil {
			return nil, err
		}
		return s, nil
	case CodeSASLChallenge:
		c, err := f.binary(0)
		return &SASLChallenge{Challenge: c}, err
	case CodeSASLResponse:
		r, err := f.binary(0)
		return &SASLResponse{Response: r}, err
	default: // CodeSASLOutcome
		s := &SASLOutcome{}
		c, err := f.optU8(0)
		if err != nil {
			return nil, err
		}
		if c != nil {
			s.Code = *c
		}
		if s.AdditionalData, err = f.binary(1); err != nil {
			return nil, err
		}
		return s, nil
	}
}
