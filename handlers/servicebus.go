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

// serviceBusTrigger handles one message: decode, call the App, and settle the outcome
// the host cannot express (dead-letter) before acknowledging.
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

// reject gives up on a message without losing it: dead-letter it by lock token, or, on
// a session queue (where only the host's session receiver could settle it), publish a
// failed outcome naming the reason. Only then is the invocation acknowledged; if that
// step fails the invocation fails, so the message comes back.
func (c call) reject(ctx context.Context, mi MessageInfo, d delivery, reason string, cause error) *response {
	log, fn, deps := c.log, c.fn, c.deps
	description := clipDescription(cause.Error())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if fn.Sessions || mi.SessionID != "" {
		if deps.Failures == nil {
			log.ErrorContext(ctx, "cannot report failure: no FailureReporter")
			return &response{status: http.StatusInternalServerError, Logs: []string{"cannot report failure: no FailureReporter"}}
		}
		f := contract.Failure{Function: fn.Name, Queue: fn.Queue, MessageID: mi.MessageID, SessionID: mi.SessionID,
			Secret: d.secret, OperationID: d.op, Reason: reason, Description: description}
		if err := deps.Failures.ReportFailure(sctx, f); err != nil {
			log.ErrorContext(ctx, "report failure", slog.Any("error", err))
			return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("report failure: %v", err)}}
		}
		log.WarnContext(ctx, "message completed after reporting failure", slog.String("reason", reason))
		return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("%s: gave up on message %s (%s): %s; failed outcome published", fn.Name, mi.MessageID, reason, description)}}
	}
	switch {
	case deps.DeadLetterer == nil:
		log.ErrorContext(ctx, "cannot dead-letter: no DeadLetterer")
		return &response{status: http.StatusInternalServerError, Logs: []string{"cannot dead-letter: no DeadLetterer"}}
	case mi.LockToken == "":
		log.ErrorContext(ctx, "cannot dead-letter: no LockToken in metadata")
		return &response{status: http.StatusInternalServerError, Logs: []string{"cannot dead-letter: no LockToken in metadata"}}
	}
	if err := deps.DeadLetterer.DeadLetter(sctx, fn.Queue, mi.LockToken, reason, description); err != nil {
		log.ErrorContext(ctx, "dead-letter", slog.Any("error", err))
		return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("dead-letter: %v", err)}}
	}
	log.WarnContext(ctx, "message dead-lettered", slog.String("reason", reason))
	return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("%s: dead-lettered message %s (%s): %s", fn.Name, mi.MessageID, reason, description)}}
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
