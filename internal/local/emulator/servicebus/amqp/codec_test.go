package amqp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

func TestEncodeChoosesTheSpecifiedForm(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	tests := map[string]struct {
		in   any
		want []byte
	}{
		"null is one byte":                          {nil, []byte{0x40}},
		"true uses the zero-width form":             {true, []byte{0x41}},
		"false uses the zero-width form":            {false, []byte{0x42}},
		"a ubyte is code plus byte":                 {uint8(7), []byte{0x50, 7}},
		"a ushort is two bytes":                     {uint16(0x1234), []byte{0x60, 0x12, 0x34}},
		"uint zero uses uint0":                      {uint32(0), []byte{0x43}},
		"a small uint uses smalluint":               {uint32(200), []byte{0x52, 200}},
		"a large uint uses four bytes":              {uint32(0x10000), []byte{0x70, 0, 1, 0, 0}},
		"ulong zero uses ulong0":                    {uint64(0), []byte{0x44}},
		"a small ulong uses smallulong":             {uint64(0x10), []byte{0x53, 0x10}},
		"a large ulong uses eight bytes":            {uint64(0x100), []byte{0x80, 0, 0, 0, 0, 0, 0, 1, 0}},
		"a byte is signed":                          {int8(-2), []byte{0x51, 0xfe}},
		"a short is two bytes":                      {int16(-2), []byte{0x61, 0xff, 0xfe}},
		"a small int uses smallint":                 {int32(-1), []byte{0x54, 0xff}},
		"an int beyond a byte uses four bytes":      {int32(200), []byte{0x71, 0, 0, 0, 200}},
		"a small long uses smalllong":               {int64(127), []byte{0x55, 0x7f}},
		"a long beyond a byte uses eight bytes":     {int64(-129), []byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		"a float is IEEE single":                    {float32(1), []byte{0x72, 0x3f, 0x80, 0, 0}},
		"a double is IEEE double":                   {float64(1), []byte{0x82, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}},
		"a timestamp is milliseconds since epoch":   {ts, []byte{0x83, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b}},
		"a short binary uses vbin8":                 {[]byte{1, 2}, []byte{0xa0, 2, 1, 2}},
		"a short string uses str8":                  {"hi", []byte{0xa1, 2, 'h', 'i'}},
		"a short symbol uses sym8":                  {Symbol("x"), []byte{0xa3, 1, 'x'}},
		"an empty list uses list0":                  {[]any{}, []byte{0x45}},
		"a short list uses list8":                   {[]any{true}, []byte{0xc0, 2, 1, 0x41}},
		"a short map uses map8":                     {Map{{Symbol("a"), nil}}, []byte{0xc1, 5, 2, 0xa3, 1, 'a', 0x40}},
		"an array of long uses one constructor":     {[]int64{1, 2}, []byte{0xe0, 18, 2, 0x81, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}},
		"a described value is 0x00 then descriptor": {Described{uint64(0x24), []any{}}, []byte{0x00, 0x53, 0x24, 0x45}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Encode(tc.in)
			if err != nil {
				t.Fatalf("Encode(%v): %v", tc.in, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Encode(%#v) = % x, want % x", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeReadsEveryConstructor(t *testing.T) {
	long := strings.Repeat("x", 300)
	u := UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	tests := map[string]struct {
		in   []byte
		want any
	}{
		"the one-byte boolean form":       {[]byte{0x56, 1}, true},
		"a four-byte uint":                {[]byte{0x70, 0, 0, 0, 9}, uint32(9)},
		"smalluint":                       {[]byte{0x52, 9}, uint32(9)},
		"uint0":                           {[]byte{0x43}, uint32(0)},
		"an eight-byte ulong":             {[]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 9}, uint64(9)},
		"an eight-byte long":              {[]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int64(-1)},
		"a four-byte int":                 {[]byte{0x71, 0xff, 0xff, 0xff, 0xfe}, int32(-2)},
		"a char":                          {[]byte{0x73, 0, 0, 0, 'A'}, Char('A')},
		"a decimal32 is carried as bytes": {[]byte{0x74, 1, 2, 3, 4}, Decimal{Code: 0x74, Bytes: []byte{1, 2, 3, 4}}},
		"a uuid":                          {append([]byte{0x98}, u[:]...), u},
		"a str32":                         {append([]byte{0xb1, 0, 0, 1, 44}, long...), long},
		"a sym32":                         {[]byte{0xb3, 0, 0, 0, 1, 'q'}, Symbol("q")},
		"a vbin32":                        {[]byte{0xb0, 0, 0, 0, 1, 7}, []byte{7}},
		"a list32": {[]byte{0xd0, 0, 0, 0, 6, 0, 0, 0, 2, 0x41, 0x42},
			[]any{true, false}},
		"a map32": {[]byte{0xd1, 0, 0, 0, 8, 0, 0, 0, 2, 0xa1, 1, 'k', 0x40},
			Map{{"k", nil}}},
		"an array32 of symbols": {[]byte{0xf0, 0, 0, 0, 9, 0, 0, 0, 2, 0xa3, 1, 'a', 1, 'b'},
			Array{Items: []any{Symbol("a"), Symbol("b")}}},
		"an array with a described constructor": {[]byte{0xe0, 5, 1, 0x00, 0x53, 0x24, 0x45},
			Array{Items: []any{Described{uint64(0x24), []any{}}}}},
		"a symbolic descriptor": {[]byte{0x00, 0xa3, 1, 'd', 0x40}, Described{Symbol("d"), nil}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, rest, err := Decode(tc.in)
			if err != nil {
				t.Fatalf("Decode(% x): %v", tc.in, err)
			}
			if len(rest) != 0 {
				t.Fatalf("Decode left % x", rest)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decode(% x) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeRejectsMalformedInput(t *testing.T) {
	deep := bytes.Repeat([]byte{0xc0, 0xff, 1}, 100)
	tests := map[string][]byte{
		"an empty input":                        {},
		"an unknown constructor":                {0x99},
		"a truncated ulong":                     {0x80, 0, 0},
		"a string with invalid UTF-8":           {0xa1, 1, 0xff},
		"a str32 longer than the input":         {0xb1, 0xff, 0xff, 0xff, 0xff},
		"a list claiming more items than bytes": {0xc0, 2, 200, 0x40},
		"a map with an odd count":               {0xc1, 2, 1, 0x40},
		"an array of a billion nulls":           {0xf0, 0, 0, 0, 5, 0x40, 0, 0, 0, 0x40},
		"a descriptor that is a list":           {0x00, 0x45, 0x40},
		"lists nested past the depth limit":     deep,
		"a boolean byte that is not 0 or 1":     {0x56, 2},
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if v, _, err := Decode(in); err == nil {
				t.Fatalf("Decode(% x) = %#v, want an error", in, v)
			}
		})
	}
}

func TestPerformativesRoundTrip(t *testing.T) {
	errNF := &Error{Condition: "amqp:not-found", Description: "no such entity", Info: Map{{Symbol("k"), "v"}}}
	src := &Source{Address: "q1", Filter: Map{{Symbol("com.microsoft:session-filter"), Described{CodeSessionFilter, "s1"}}}}
	tests := map[string]any{
		"open with idle timeout and properties": &Open{ContainerID: "c", Hostname: "h:1", MaxFrameSize: 65536,
			ChannelMax: 9, IdleTimeout: 30 * time.Second, OfferedCapabilities: []Symbol{"x"}, Properties: Map{{Symbol("p"), "v"}}},
		"begin answering a channel": &Begin{RemoteChannel: ptr16(3), NextOutgoingID: 1, IncomingWindow: 5000,
			OutgoingWindow: 5000, HandleMax: 10},
		"attach of a receiver with filter and modes": &Attach{Name: "l", Handle: 2, Role: RoleReceiver,
			SndSettleMode: U8(SndMixed), RcvSettleMode: U8(RcvSecond), Source: src, Target: &Target{Address: "r"},
			InitialDeliveryCount: U32(0), MaxMessageSize: 262144, Properties: Map{{Symbol("com.microsoft:timeout"), uint32(5)}}},
		"attach refusing with null terminus": &Attach{Name: "l", Handle: 1, Role: RoleSender},
		"flow with link state": &Flow{NextIncomingID: U32(4), IncomingWindow: 10, NextOutgoingID: 2, OutgoingWindow: 3,
			Handle: U32(1), DeliveryCount: U32(8), LinkCredit: U32(100), Drain: true, Echo: true},
		"transfer with state and payload": &Transfer{Handle: 1, DeliveryID: U32(7), DeliveryTag: []byte{1}, MessageFormat: U32(0x80013700),
			Settled: Bool(true), More: true, State: &Accepted{}, Payload: []byte{0x00, 0x53, 0x77, 0x40}},
		"a continuation transfer without delivery tag": &Transfer{Handle: 1, DeliveryID: U32(7), More: true, Payload: []byte{1}},
		"disposition rejected with error":              &Disposition{Role: RoleSender, First: 1, Last: U32(3), Settled: true, State: &Rejected{Error: errNF}},
		"disposition modified":                         &Disposition{Role: RoleReceiver, First: 1, State: &Modified{DeliveryFailed: true, UndeliverableHere: true, MessageAnnotations: Map{{Symbol("a"), int64(1)}}}},
		"disposition released":                         &Disposition{Role: RoleReceiver, First: 1, State: &Released{}},
		"disposition received":                         &Disposition{Role: RoleReceiver, First: 1, State: &Received{SectionNumber: 1, SectionOffset: 2}},
		"detach closing with error":                    &Detach{Handle: 4, Closed: true, Error: errNF},
		"end without error":                            &End{},
		"close with error":                             &Close{Error: errNF},
		"sasl mechanisms":                              &SASLMechanisms{Mechanisms: []Symbol{"ANONYMOUS", "PLAIN"}},
		"sasl init with response and host":             &SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00u\x00p"), Hostname: "h"},
		"sasl challenge":                               &SASLChallenge{Challenge: []byte("c")},
		"sasl response":                                &SASLResponse{Response: []byte("r")},
		"sasl outcome":                                 &SASLOutcome{Code: SASLAuth, AdditionalData: []byte("x")},
		"attach with a target and no source":           &Attach{Name: "s", Role: RoleSender, Target: &Target{Address: "t", Capabilities: []Symbol{"c"}}, Source: &Source{}},
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			ft := FrameAMQP
			if strings.HasPrefix(name, "sasl") {
				ft = FrameSASL
			}
			b, err := AppendFrame(nil, Frame{Type: ft, Channel: 5, Body: p})
			if err != nil {
				t.Fatal(err)
			}
			f, err := ReadFrame(bytes.NewReader(b), math.MaxUint32)
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if f.Channel != 5 || f.Type != ft {
				t.Fatalf("channel/type = %d/%d", f.Channel, f.Type)
			}
			if !reflect.DeepEqual(f.Body, p) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", f.Body, p)
			}
		})
	}
}

func ptr16(v uint16) *uint16 { return &v }

func TestReadFrameEnforcesLimits(t *testing.T) {
	empty := []byte{0, 0, 0, 8, 2, 0, 0, 0}
	tests := map[string]struct {
		in      []byte
		max     uint32
		wantErr error // nil with ok=false means any error
		ok      bool
	}{
		"an empty frame is a keep-alive":           {in: empty, max: 512, ok: true},
		"an extended header is skipped":            {in: []byte{0, 0, 0, 12, 3, 0, 0, 0, 9, 9, 9, 9}, max: 512, ok: true},
		"a frame over max-frame-size is refused":   {in: []byte{0, 1, 0, 0, 2, 0, 0, 0}, max: 512, wantErr: ErrFrameTooLarge},
		"a size below the header is refused":       {in: []byte{0, 0, 0, 4, 2, 0, 0, 0}, max: 512},
		"a data offset below 2 is refused":         {in: []byte{0, 0, 0, 8, 1, 0, 0, 0}, max: 512},
		"a data offset past the frame is refused":  {in: []byte{0, 0, 0, 8, 3, 0, 0, 0}, max: 512},
		"an unknown frame type is refused":         {in: []byte{0, 0, 0, 8, 2, 7, 0, 0}, max: 512},
		"a body cut short is unexpected EOF":       {in: []byte{0, 0, 0, 20, 2, 0, 0, 0, 0x00}, max: 512, wantErr: io.ErrUnexpectedEOF},
		"a body that is not a performative fails":  {in: []byte{0, 0, 0, 9, 2, 0, 0, 0, 0x40}, max: 512},
		"trailing bytes after an open are refused": {in: []byte{0, 0, 0, 14, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0x45, 0x40, 0x40}, max: 512},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.in), tc.max)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("ReadFrame: %v", err)
			case !tc.ok && err == nil:
				t.Fatal("ReadFrame succeeded, want an error")
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("ReadFrame error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestProtocolHeader(t *testing.T) {
	tests := map[string]struct {
		in     []byte
		wantID byte
		ok     bool
	}{
		"the SASL header":        {HeaderSASL, 3, true},
		"the plain AMQP header":  {HeaderAMQP, 0, true},
		"an HTTP request":        {[]byte("GET / HT"), 0, false},
		"an unsupported version": {[]byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}, 0, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id, err := ReadProtocolHeader(bytes.NewReader(tc.in))
			if (err == nil) != tc.ok || (tc.ok && id != tc.wantID) {
				t.Fatalf("ReadProtocolHeader = %d, %v", id, err)
			}
		})
	}
}

// rhea sends the session filter as a bare string where go-amqp sends a described value;
// both must decode, and keep their form so the broker can echo it.
func TestSourceFilterKeepsThePeersForm(t *testing.T) {
	tests := map[string]any{
		"a described filter value (go-amqp)": Described{CodeSessionFilter, "s1"},
		"a bare string filter value (rhea)":  "s1",
		"a described null (accept next)":     Described{CodeSessionFilter, nil},
	}
	for name, fv := range tests {
		t.Run(name, func(t *testing.T) {
			a := &Attach{Name: "r", Role: RoleReceiver, Source: &Source{Address: "q",
				Filter: Map{{Symbol("com.microsoft:session-filter"), fv}}}}
			b, err := AppendFrame(nil, Frame{Body: a})
			if err != nil {
				t.Fatal(err)
			}
			f, err := ReadFrame(bytes.NewReader(b), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := f.Body.(*Attach).Source.Filter.Get(Symbol("com.microsoft:session-filter"))
			if !reflect.DeepEqual(got, fv) {
				t.Fatalf("filter = %#v, want %#v", got, fv)
			}
		})
	}
}

// Management replies are decoded by go-amqp; the types the SDK asserts on must survive.
func TestGoAMQPDecodesOurValues(t *testing.T) {
	when := time.UnixMilli(1700000000000).UTC()
	body := Described{CodeAMQPValue, Map{
		{"expirations", []time.Time{when}},
		{"sequence-numbers", []int64{5, 6}},
		{"messages", []any{Map{{"message", []byte{1}}}}},
	}}
	b, err := Encode(body)
	if err != nil {
		t.Fatal(err)
	}
	var m goamqp.Message
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatalf("go-amqp UnmarshalBinary: %v", err)
	}
	v, ok := m.Value.(map[string]any)
	if !ok {
		t.Fatalf("value is %T", m.Value)
	}
	if got, ok := v["expirations"].([]time.Time); !ok || !got[0].Equal(when) {
		t.Errorf("expirations = %#v", v["expirations"])
	}
	if got, ok := v["sequence-numbers"].([]int64); !ok || len(got) != 2 || got[1] != 6 {
		t.Errorf("sequence-numbers = %#v", v["sequence-numbers"])
	}
	if got, ok := v["messages"].([]any); !ok || len(got) != 1 {
		t.Errorf("messages = %#v", v["messages"])
	}
}

func TestTransferOverheadMatchesTheEncodedFrame(t *testing.T) {
	tr := &Transfer{Handle: 1, DeliveryID: U32(300), DeliveryTag: make([]byte, 16), MessageFormat: U32(0), More: true}
	n, err := TransferOverhead(tr)
	if err != nil {
		t.Fatal(err)
	}
	tr.Payload = []byte("abc")
	b, _ := AppendFrame(nil, Frame{Body: tr})
	if len(b) != n+3 {
		t.Fatalf("overhead %d + payload 3 != frame %d", n, len(b))
	}
}
