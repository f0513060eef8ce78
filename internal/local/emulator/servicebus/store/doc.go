// Package store holds the Service Bus emulator's entity semantics: queues, topics with
// filtered subscriptions, dead-letter queues, peek-lock, delivery counting, TTL,
// duplicate detection, scheduling, deferral and sessions. It does no I/O: the AMQP layer
// (package servicebus) decodes frames and calls it, and every deadline (lock expiry,
// session lock expiry, TTL, scheduled enqueue) is a timer on the shared controllable
// clock, so tests reach them with clock.Advance instead of sleeping.
//
// Entities come from Microsoft's emulator Config.json (ParseConfig, LoadConfigFile,
// Merge, PatrolConfig).
//
// # API for the wire layer
//
// Addresses are link source/target addresses: "queue", "topic",
// "topic/Subscriptions/sub", and "<queue or subscription>/$DeadLetterQueue", matched
// case-insensitively (strip "/$management" before calling). Every error wraps one of
// ErrNotFound, ErrInvalid, ErrLockLost, ErrSessionLockLost, ErrSessionCannotBeLocked,
// ErrTimeout, ErrMessageNotFound or ErrClosed (see their comments for the AMQP
// condition and status code), or is ctx.Err().
//
//	st, err := store.New(cfg, clk, store.WithLogger(log))
//	defer st.Close()
//	ent, err := st.Resolve(addr)                  // attach: ErrNotFound → amqp:not-found
//	seqs, err := st.Send(addr, &store.Message{AMQP: m}, ...) // transfer / batch
//	seqs, err := st.Schedule(addr, msgs...)       // com.microsoft:schedule-message
//	err = st.CancelScheduled(addr, seqs...)       // com.microsoft:cancel-scheduled-message
//	d, err := st.Receive(ctx, addr, sessionID, store.PeekLock) // one per credit
//	err = st.Complete(addr, token)                // accepted / update-disposition completed
//	err = st.Abandon(addr, token, props)          // modified{!undeliverable-here} / abandoned
//	err = st.Defer(addr, token, props)            // modified{undeliverable-here} / defered
//	err = st.DeadLetter(addr, token, reason, desc, props) // rejected / suspended
//	err = st.Release(addr, token)                 // released (no delivery count)
//	until, err := st.RenewLock(addr, tokens...)   // com.microsoft:renew-lock
//	msgs, err := st.Peek(addr, fromSeq, n, sessionID)
//	ds, err := st.ReceiveDeferred(addr, seqs, mode, sessionID) // receive-by-sequence-number
//	lk, err := st.AcceptSession(ctx, addr, sessionID /* "" = next */, owner)
//	until, err := st.RenewSessionLock(addr, sessionID)
//	state, err := st.GetSessionState(addr, sessionID); err = st.SetSessionState(addr, sessionID, state)
//	ids, err := st.ListSessions(addr)             // get-message-sessions
//	st.ReleaseSession(owner)                      // session receiver link detached
//	c, err := st.Counts(addr); err = st.WaitIdle(ctx, addr); snap := st.Snapshot()
//
// Lock tokens are RFC-order UUIDs, unique across the store, so a message can be settled
// from any link of its entity or from its management link. On the wire, the delivery tag
// is the token in .NET GUID byte order and header.delivery-count is
// Delivery.DeliveryCount (earlier failed deliveries; the SDK adds one). The wire layer
// sets the x-opt-* annotations from the Delivery's fields when it transfers. The store
// writes the effective TTL (message TTL capped by the entity default) into header.ttl
// when it fits the header's uint32 milliseconds, because the SDK computes ExpiresAt
// from it.
//
// A session receiver's messages share the session lock: their LockedUntil is the
// session's, and when the lock ends (expiry, or ReleaseSession when the link closes) the
// messages still locked count a failed delivery and SessionLock.Lost is closed.
//
// Choices where the service's behaviour is not documented: a message keeps its sequence
// number from scheduling through activation and, on topics, in every subscription; a
// dead-lettered message keeps its sequence number in its DLQ (a new one when forwarded
// with ForwardDeadLetteredMessagesTo); a duplicate returns the first copy's sequence
// number; SQL filters other than 1=1 / 1=0 match everything (logged at New).
package store
