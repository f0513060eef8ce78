package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/patrol-dev/patrol/internal/contract"
)

// delivery is a Service Bus message decoded for one function: what to run, and what
// the body named (for the failure report when it cannot run).
type delivery struct {
	secret, op string
	run        func(ctx context.Context, app App) error
}

// messageDecoder decodes one function's message body. On error it still returns what
// it learnt (secret, operation id) so the failure report can name them.
type messageDecoder func(ctx context.Context, c call, body []byte, mi MessageInfo) (delivery, error)

type messageKey struct{}

// MessageFrom returns the Service Bus delivery (binding metadata) of the message the
// invocation carried by ctx handles; ok is false outside a Service Bus function.
func MessageFrom(ctx context.Context) (MessageInfo, bool) {
	mi, ok := ctx.Value(messageKey{}).(MessageInfo)
	return mi, ok
}

// serviceBusTrigger handles one message: decode, call the App, and answer the host,
// which settles the message (completes it on success, abandons it otherwise).
func serviceBusTrigger(decode messageDecoder) func(context.Context, call) *response {
	return func(ctx context.Context, c call) *response {
		log, fn := c.log, c.fn
		mi, err := DecodeMessageInfo(c.inv)
		if err != nil {
			// The lock token cannot be trusted, so the message cannot be dead-lettered here.
			log.ErrorContext(ctx, "decode message metadata", slog.Any("error", err))
			return &response{status: http.StatusInternalServerError, Logs: []string{err.Error()}}
		}
		log = log.With(slog.String("messageId", mi.MessageID), slog.Int("deliveryCount", mi.DeliveryCount))
		if mi.SessionID != "" {
			log = log.With(slog.String("sessionId", mi.SessionID))
		}
		c.log = log
		ctx = context.WithValue(ctx, messageKey{}, mi)
		d, err := func() (delivery, error) {
			body, err := c.inv.messageBody(fn.Binding)
			if err != nil {
				return delivery{}, err
			}
			return decode(ctx, c, body, mi)
		}()
		if err != nil {
			log.WarnContext(ctx, "malformed message", slog.Any("error", err))
			return c.reject(ctx, mi, d, contract.DeadLetterMalformed, err)
		}
		if err := d.run(ctx, c.deps.App); err != nil {
			class := c.h.opts.Classify(err)
			switch class {
			case Transient, Conflict, TooManyRequests:
				log.WarnContext(ctx, "message will be retried", slog.String("class", class.String()), slog.Any("error", err))
				return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("retry: %v", err)}}
			default:
				reason := contract.DeadLetterRejected
				if errors.Is(err, contract.ErrUnauthenticated) {
					reason = contract.DeadLetterUnauthenticated
				}
				log.ErrorContext(ctx, "message rejected", slog.String("class", class.String()), slog.String("reason", reason), slog.Any("error", err))
				return c.reject(ctx, mi, d, reason, err)
			}
		}
		log.InfoContext(ctx, "message handled")
		return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("%s: handled message %s", fn.Name, mi.MessageID)}}
	}
}

// reject gives up on a message that can never be processed, without settling it: the
// Functions host owns the message lock (autoComplete is true for a custom handler, and
// a session's messages settle only through the host's session receiver), so patrol
// fails the invocation, the host abandons the message, and Service Bus moves it to the
// entity's dead-letter queue once MaxDeliveryCount deliveries are spent (reason
// MaxDeliveryCountExceeded). The real reason is recorded once, at the first delivery
// (DeliveryCount 1): an error in the log and a failed outcome on pat-events, both naming
// the message id. Later deliveries only log a warning that points back to it.
func (c call) reject(ctx context.Context, mi MessageInfo, d delivery, reason string, cause error) *response {
	log, fn, deps := c.log, c.fn, c.deps
	description := clipDescription(cause.Error())
	log = log.With(slog.String("reason", reason))
	fail := func(note string) *response {
		return &response{status: http.StatusInternalServerError, Logs: []string{
			fmt.Sprintf("%s: rejected message %s (%s): %s; %s", fn.Name, mi.MessageID, reason, description, note)}}
	}
	if mi.DeliveryCount > 1 {
		log.WarnContext(ctx, "message rejected again; its reason was recorded at its first delivery")
		return fail("Service Bus dead-letters it after MaxDeliveryCount")
	}
	log.ErrorContext(ctx, "message rejected; Service Bus dead-letters it after MaxDeliveryCount", slog.String("description", description))
	if errors.Is(cause, ErrRecorded) {
		return fail("the app published its failed outcome; Service Bus dead-letters it after MaxDeliveryCount")
	}
	if deps.Failures == nil {
		log.ErrorContext(ctx, "cannot report failure: no FailureReporter")
		return fail("failed outcome not published: no FailureReporter")
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	f := contract.Failure{Function: fn.Name, Queue: fn.Queue, MessageID: mi.MessageID, SessionID: mi.SessionID,
		Secret: d.secret, OperationID: d.op, Reason: reason, Description: description}
	if err := deps.Failures.ReportFailure(sctx, f); err != nil {
		log.ErrorContext(ctx, "report failure", slog.Any("error", err))
		return fail(fmt.Sprintf("failed outcome not published: %v", err))
	}
	return fail("failed outcome published; Service Bus dead-letters it after MaxDeliveryCount")
}

// clipDescription keeps a dead-letter description within what Service Bus stores
// comfortably (it travels as an application property).
func clipDescription(s string) string {
	const limit = 1024
	if len(s) <= limit {
		return s
	}
	return s[:limit-3] + "..."
}
