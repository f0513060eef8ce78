package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// retryAfterSeconds is the Retry-After of a refusal, in whole seconds rounded up, at
// least 1: from the first error in the chain with a RetryAfter method.
func retryAfterSeconds(err error) int {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if d := ra.RetryAfter(); d > 0 {
			return int((d + time.Second - 1) / time.Second)
		}
	}
	return 1
}

// httpReply is an HTTP output binding value. It is always an object: a bare string
// output is base64-decoded by the host if it happens to be valid base64.
type httpReply struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

func jsonReply(status int, v any) httpReply {
	b, err := json.Marshal(v)
	if err != nil {
		return errorReply(http.StatusInternalServerError, "Internal", "encode reply")
	}
	return httpReply{StatusCode: status, Body: string(b), Headers: map[string]string{"Content-Type": "application/json; charset=utf-8"}}
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func errorReply(status int, code, message string) httpReply {
	var e apiError
	e.Error.Code, e.Error.Message = code, message
	return jsonReply(status, e)
}

func httpResult(fn Function, reply httpReply) *response {
	return &response{status: http.StatusOK, Outputs: map[string]any{fn.Output: reply},
		Logs: []string{fmt.Sprintf("%s: %d", fn.Name, reply.StatusCode)}}
}

// appErrorReply maps a classified App error to its HTTP answer.
func (c call) appErrorReply(err error) httpReply {
	switch c.h.opts.Classify(err) {
	case BadRequest:
		return errorReply(http.StatusBadRequest, "BadRequest", err.Error())
	case NotFound:
		return errorReply(http.StatusNotFound, "NotFound", err.Error())
	case Conflict:
		return errorReply(http.StatusConflict, "Conflict", err.Error())
	case Permanent:
		return errorReply(http.StatusUnprocessableEntity, "Unprocessable", err.Error())
	case TooManyRequests:
		r := errorReply(http.StatusTooManyRequests, "TooManyRequests", err.Error())
		r.Headers["Retry-After"] = strconv.Itoa(retryAfterSeconds(err))
		return r
	default:
		r := errorReply(http.StatusServiceUnavailable, "Unavailable", err.Error())
		r.Headers["Retry-After"] = "5"
		return r
	}
}

// httpHandler answers one HTTP function's request.
type httpHandler func(ctx context.Context, c call, req HTTPRequest) httpReply

// httpTrigger decodes the request and hands it to handle. The host always gets a 2xx
// with the reply in the function's output, so callers see our status and error body,
// not the host's bare 500.
func httpTrigger(handle httpHandler) func(context.Context, call) *response {
	return func(ctx context.Context, c call) *response {
		raw, ok := c.inv.binding(c.fn.Binding)
		if !ok {
			return httpResult(c.fn, errorReply(http.StatusBadRequest, "BadRequest", "invocation: Data."+c.fn.Binding+": missing"))
		}
		req, err := DecodeHTTPRequest(raw)
		if err != nil {
			c.log.WarnContext(ctx, "bad request", slog.Any("error", err))
			return httpResult(c.fn, errorReply(http.StatusBadRequest, "BadRequest", err.Error()))
		}
		return httpResult(c.fn, handle(ctx, c, req))
	}
}
