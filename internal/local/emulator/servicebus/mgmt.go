package servicebus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/amqp"
	"github.com/patrol-dev/patrol/internal/local/emulator/servicebus/store"
)

// Management operation names (reference §2.6).
const (
	opPutToken          = "put-token"
	opRenewLock         = "com.microsoft:renew-lock"
	opPeek              = "com.microsoft:peek-message"
	opRenewSessionLock  = "com.microsoft:renew-session-lock"
	opGetSessionState   = "com.microsoft:get-session-state"
	opSetSessionState   = "com.microsoft:set-session-state"
	opUpdateDisposition = "com.microsoft:update-disposition"
	opReceiveBySequence = "com.microsoft:receive-by-sequence-number"
	opGetMessageSession = "com.microsoft:get-message-sessions"
	opSchedule          = "com.microsoft:schedule-message"
	opCancelScheduled   = "com.microsoft:cancel-scheduled-message"
)

// response is a management or CBS reply before encoding.
type response struct {
	status    int
	desc      string
	condition amqp.Symbol
	body      map[string]any // nil: no body
}

func ok(body map[string]any) response { return response{status: 200, desc: "OK", body: body} }

func failure(err error) response {
	e := errorFor(err)
	return response{status: statusFor(err), desc: err.Error(), condition: e.Condition}
}

func badRequest(format string, args ...any) response {
	return response{status: 400, desc: fmt.Sprintf(format, args...), condition: "amqp:invalid-field"}
}

// onRequest handles one request on a $cbs or $management link and sends the reply on
// the client's reply link. Called with c.mu held; every store call it makes returns at
// once.
func (c *conn) onRequest(l *link, payload []byte) amqp.DeliveryState {
	var req goamqp.Message
	if err := req.UnmarshalBinary(payload); err != nil {
		return &amqp.Rejected{Error: &amqp.Error{Condition: "amqp:decode-error", Description: err.Error()}}
	}
	if req.Properties == nil || req.Properties.ReplyTo == nil {
		return &amqp.Rejected{Error: &amqp.Error{Condition: "amqp:invalid-field", Description: "request without reply-to"}}
	}
	op, _ := req.ApplicationProperties["operation"].(string)
	var res response
	if f, hit := c.b.fault(op); hit {
		if f.Latency > 0 {
			time.Sleep(f.Latency)
		}
		if f.Drop {
			c.nc.Close()
			return &amqp.Released{}
		}
		if f.Status != 0 {
			res = response{status: f.Status, desc: "injected fault", condition: conditionForStatus(f.Status)}
		}
	}
	if res.status == 0 {
		if l.cbs {
			res = c.cbsRequest(op, &req)
		} else {
			res = c.mgmtRequest(l, op, &req)
		}
	}
	if res.status >= 300 {
		c.log.Info("servicebus: request failed", "op", op, "entity", l.entity, "status", res.status, "condition", string(res.condition))
	}
	reply := &goamqp.Message{
		Properties: &goamqp.MessageProperties{CorrelationID: req.Properties.MessageID},
		ApplicationProperties: map[string]any{
			"status-code": int32(res.status), "statusCode": int32(res.status),
			"status-description": res.desc, "statusDescription": res.desc,
		},
	}
	if res.condition != "" {
		reply.ApplicationProperties["error-condition"] = string(res.condition)
	}
	if res.body != nil {
		reply.Value = res.body
	}
	rl := c.replyLink(l, *req.Properties.ReplyTo)
	if rl == nil {
		c.log.Warn("servicebus: no reply link for request", "op", op, "reply_to", *req.Properties.ReplyTo)
		return &amqp.Accepted{}
	}
	enc, err := reply.MarshalBinary()
	if err != nil {
		c.log.Error("servicebus: encode reply", "op", op, "err", err)
		return &amqp.Rejected{Error: &amqp.Error{Condition: "amqp:internal-error", Description: "cannot encode reply"}}
	}
	id := rl.s.nextDeliveryID
	rl.s.nextDeliveryID++
	tag := uuid.New()
	if err := c.write(c.transferFrames(rl, id, tag[:], 0, true, enc)...); err == nil {
		if rl.outCredit > 0 {
			rl.outCredit--
		}
		rl.outDeliveryCount++
	}
	return &amqp.Accepted{}
}

// replyLink finds where a reply goes: the receiver link whose target is the reply-to
// address (Go SDK), else whose name is (rhea's $cbs link has no target), else the reply
// link of the same session attached to the request's address (reference §2.9).
func (c *conn) replyLink(req *link, replyTo string) *link {
	var byName, bySource *link
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.kind != linkReply || l.detached {
				continue
			}
			if l.target == replyTo {
				return l
			}
			if l.name == replyTo && byName == nil {
				byName = l
			}
			if s == req.s && strings.EqualFold(l.source, req.target) && bySource == nil {
				bySource = l
			}
		}
	}
	if byName != nil {
		return byName
	}
	return bySource
}

// cbsRequest validates a put-token request and records what the token grants.
func (c *conn) cbsRequest(op string, req *goamqp.Message) response {
	if op != opPutToken {
		return badRequest("unsupported $cbs operation %q", op)
	}
	typ, _ := req.ApplicationProperties["type"].(string)
	if typ != "servicebus.windows.net:sastoken" {
		return badRequest("unsupported token type %q; only servicebus.windows.net:sastoken", typ)
	}
	token, _ := req.Value.(string)
	g, err := validateSAS(token, c.b.keys, time.Now())
	if err != nil {
		name, _ := req.ApplicationProperties["name"].(string)
		c.log.Warn("servicebus: CBS token rejected", "audience", name, "reason", err.Error())
		return response{status: 401, desc: "unauthorized: " + err.Error(), condition: "amqp:unauthorized-access"}
	}
	// The SDKs refresh each audience's token every few minutes for the life of the
	// connection: drop expired grants so the list stays short.
	live := c.grants[:0]
	for _, old := range c.grants {
		if old.Expires.After(time.Now()) {
			live = append(live, old)
		}
	}
	c.grants = append(live, g)
	return response{status: 200, desc: "OK"}
}

// mgmtRequest performs a management operation on the link's entity.
func (c *conn) mgmtRequest(l *link, op string, req *goamqp.Message) response {
	body := asStringMap(req.Value)
	st := c.b.store
	addr := l.entity
	need := claimFor(op)
	if ok, _ := c.authorized(addr, need); !ok {
		return response{status: 401, desc: missingClaim(need, addr), condition: "amqp:unauthorized-access"}
	}
	// linkHeld is the session of the receiver link the request is associated with, on
	// this connection: the only session whose messages it may settle (D5).
	linkHeld := ""
	if name, ok := req.ApplicationProperties["associated-link-name"].(string); ok {
		linkHeld = c.linkSession(name)
	}
	sessionID, _ := body["session-id"].(string)
	if sessionID == "" {
		sessionID = linkHeld
	}
	switch op {
	case opRenewLock:
		toks, err := uuids(body["lock-tokens"])
		if err != nil {
			return badRequest("lock-tokens: %v", err)
		}
		for _, tok := range toks {
			if err := st.CheckSessionLock(addr, tok, linkHeld); err != nil {
				return failure(err)
			}
		}
		until, err := st.RenewLock(addr, toks...)
		if err != nil {
			return failure(err)
		}
		return ok(map[string]any{"expirations": until})

	case opPeek:
		from, _ := toInt64(body["from-sequence-number"])
		n, _ := toInt64(body["message-count"])
		msgs, err := st.Peek(addr, from, int(max(n, 1)), sessionID)
		if err != nil {
			return failure(err)
		}
		if len(msgs) == 0 {
			return response{status: 204, desc: "No Content"}
		}
		list := make([]any, 0, len(msgs))
		for i := range msgs {
			enc, err := encodeOutbound(outbound{msg: &msgs[i]})
			if err != nil {
				return failure(err)
			}
			list = append(list, map[string]any{"message": enc})
		}
		return ok(map[string]any{"messages": list})

	case opRenewSessionLock:
		until, err := st.RenewSessionLock(addr, sessionID)
		if err != nil {
			return failure(err)
		}
		return ok(map[string]any{"expiration": until})

	case opGetSessionState:
		state, err := st.GetSessionState(addr, sessionID)
		if err != nil {
			return failure(err)
		}
		var v any
		if state != nil {
			v = state
		}
		return ok(map[string]any{"session-state": v})

	case opSetSessionState:
		state, _ := body["session-state"].([]byte)
		if err := st.SetSessionState(addr, sessionID, state); err != nil {
			return failure(err)
		}
		return ok(nil)

	case opUpdateDisposition:
		toks, err := uuids(body["lock-tokens"])
		if err != nil {
			return badRequest("lock-tokens: %v", err)
		}
		status, _ := body["disposition-status"].(string)
		props := asStringMap(body["properties-to-modify"])
		reason, _ := body["deadletter-reason"].(string)
		desc, _ := body["deadletter-description"].(string)
		for _, tok := range toks {
			if err := st.CheckSessionLock(addr, tok, linkHeld); err != nil {
				return failure(err)
			}
			switch status {
			case "completed":
				err = st.Complete(addr, tok)
			case "abandoned":
				err = st.Abandon(addr, tok, props)
			case "defered", "deferred":
				err = st.Defer(addr, tok, props)
			case "suspended":
				err = st.DeadLetter(addr, tok, reason, desc, props)
			default:
				return badRequest("disposition-status %q", status)
			}
			if err != nil {
				return failure(err)
			}
		}
		return ok(nil)

	case opReceiveBySequence:
		seqs, err := int64s(body["sequence-numbers"])
		if err != nil {
			return badRequest("sequence-numbers: %v", err)
		}
		mode := store.PeekLock
		if m, _ := toInt64(body["receiver-settle-mode"]); m == 0 {
			mode = store.ReceiveAndDelete
		}
		ds, err := st.ReceiveDeferred(addr, seqs, mode, sessionID)
		if err != nil {
			return failure(err)
		}
		if len(ds) == 0 {
			return response{status: 204, desc: "No Content"}
		}
		list := make([]any, 0, len(ds))
		for _, d := range ds {
			enc, err := encodeOutbound(outbound{msg: &d.Message, locked: mode == store.PeekLock, tokenAnn: mode == store.PeekLock})
			if err != nil {
				return failure(err)
			}
			entry := map[string]any{"message": enc}
			if mode == store.PeekLock {
				entry["lock-token"] = goamqp.UUID(d.LockToken)
			}
			list = append(list, entry)
		}
		return ok(map[string]any{"messages": list})

	case opGetMessageSession:
		ids, err := st.ListSessions(addr)
		if err != nil {
			return failure(err)
		}
		skip, _ := toInt64(body["skip"])
		top, hasTop := toInt64(body["top"])
		if skip > 0 {
			ids = ids[min(int(skip), len(ids)):]
		}
		if hasTop && top > 0 && int(top) < len(ids) {
			ids = ids[:top]
		}
		if len(ids) == 0 {
			return response{status: 204, desc: "No Content"}
		}
		return ok(map[string]any{"sessions-ids": ids, "skip": int32(skip + int64(len(ids)))})

	case opSchedule:
		raw, _ := body["messages"].([]any)
		msgs := make([]*store.Message, 0, len(raw))
		for i, r := range raw {
			entry := asStringMap(r)
			b, ok := entry["message"].([]byte)
			if !ok {
				return badRequest("messages[%d].message is %T, want binary", i, entry["message"])
			}
			var m goamqp.Message
			if err := m.UnmarshalBinary(b); err != nil {
				return badRequest("messages[%d]: %v", i, err)
			}
			sm := &store.Message{AMQP: &m}
			if id, ok := entry["message-id"].(string); ok {
				sm.MessageID = id
			}
			if sid, ok := entry["session-id"].(string); ok {
				sm.SessionID = sid
			}
			msgs = append(msgs, sm)
		}
		seqs, err := st.Schedule(addr, msgs...)
		if err != nil {
			return failure(err)
		}
		return ok(map[string]any{"sequence-numbers": seqs})

	case opCancelScheduled:
		seqs, err := int64s(body["sequence-numbers"])
		if err != nil {
			return badRequest("sequence-numbers: %v", err)
		}
		if err := st.CancelScheduled(addr, seqs...); err != nil {
			return failure(err)
		}
		return ok(nil)
	}
	return badRequest("unsupported management operation %q", op)
}

// linkSession is the session id held by the connection's receiver link called name.
func (c *conn) linkSession(name string) string {
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.name == name && l.kind == linkReceive {
				return l.sessionID
			}
		}
	}
	return ""
}

// asStringMap accepts the map shapes go-amqp decodes (string or symbol keys).
func asStringMap(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			switch ks := k.(type) {
			case string:
				out[ks] = val
			case goamqp.Symbol:
				out[string(ks)] = val
			}
		}
		return out
	}
	return map[string]any{}
}

func uuids(v any) ([]uuid.UUID, error) {
	switch x := v.(type) {
	case []goamqp.UUID:
		out := make([]uuid.UUID, len(x))
		for i, u := range x {
			out[i] = uuid.UUID(u)
		}
		return out, nil
	case []any:
		out := make([]uuid.UUID, 0, len(x))
		for _, e := range x {
			u, ok := e.(goamqp.UUID)
			if !ok {
				return nil, fmt.Errorf("element is %T, want uuid", e)
			}
			out = append(out, uuid.UUID(u))
		}
		return out, nil
	case goamqp.UUID:
		return []uuid.UUID{uuid.UUID(x)}, nil
	}
	return nil, fmt.Errorf("got %T, want an array of uuid", v)
}

func int64s(v any) ([]int64, error) {
	switch x := v.(type) {
	case []int64:
		return x, nil
	case []any:
		out := make([]int64, 0, len(x))
		for _, e := range x {
			n, ok := toInt64(e)
			if !ok {
				return nil, fmt.Errorf("element is %T, want long", e)
			}
			out = append(out, n)
		}
		return out, nil
	}
	if n, ok := toInt64(v); ok {
		return []int64{n}, nil
	}
	return nil, errors.New("missing or not an array of long")
}
