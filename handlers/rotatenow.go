package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// RotateNow: an emergency rotation asked for over HTTP (POST /api/rotate/{secret}).
var rotateNowFunction = Function{
	Name: "RotateNow", Trigger: BindingHTTPTrigger, Binding: "req", Methods: []string{"post"}, Route: "rotate/{secret}", Output: "res",
	invoke: httpTrigger(rotateNow),
}

func rotateNow(ctx context.Context, c call, req HTTPRequest) httpReply {
	log := c.log
	rn, err := decodeRotateNow(c.inv, req, c.id, c.h.opts.MaxWait)
	if err != nil {
		log.WarnContext(ctx, "bad request", slog.Any("error", err))
		return errorReply(http.StatusBadRequest, "BadRequest", err.Error())
	}
	rn.RequestedBy = Requester(req, c.h.opts.TrustPrincipalHeaders, rn.RequestedBy)
	log = log.With(slog.String("secret", rn.Secret), slog.String("operationId", rn.OperationID),
		slog.String("requestedBy", rn.RequestedBy), slog.String("reason", rn.Reason))
	result, err := c.deps.App.RotateNow(ctx, rn)
	if err != nil {
		log.WarnContext(ctx, "rotate now", slog.Any("error", err))
		return c.appErrorReply(err)
	}
	if result.OperationID == "" {
		result.OperationID = rn.OperationID
	}
	statusURL := "/api/status/" + url.PathEscape(rn.Secret) + "?operation=" + url.QueryEscape(result.OperationID)
	body := struct {
		OperationID string            `json:"operationId"`
		Secret      string            `json:"secret"`
		Status      string            `json:"status"`
		StatusURL   string            `json:"statusUrl"`
		Outcome     *contract.Outcome `json:"outcome,omitempty"`
	}{OperationID: result.OperationID, Secret: rn.Secret, Status: "accepted", StatusURL: statusURL, Outcome: result.Outcome}
	if result.Outcome == nil {
		reply := jsonReply(http.StatusAccepted, body)
		reply.Headers["Location"] = statusURL
		log.InfoContext(ctx, "rotation accepted")
		return reply
	}
	// The request was carried out (200) either way; a caller that reads only the top
	// level still learns that the emergency rotation failed.
	body.Status = "completed"
	if s := result.Outcome.Status; s == contract.StatusFailed || s == contract.StatusNeedsAttention {
		body.Status = "failed"
		log.WarnContext(ctx, "rotation failed", slog.String("outcome", string(s)), slog.String("reason", result.Outcome.Reason))
		return jsonReply(http.StatusOK, body)
	}
	log.InfoContext(ctx, "rotation completed", slog.String("outcome", string(result.Outcome.Status)))
	return jsonReply(http.StatusOK, body)
}

// RotateNowRequest is an emergency rotation asked for over HTTP
// (POST /api/rotate/{secret}).
type RotateNowRequest struct {
	Secret string `json:"secret"`
	// OperationID is the client's `operationId` (so a retried call is the same
	// operation), or else one derived from the invocation id (contract.DeriveOpID).
	OperationID string `json:"operationId"`
	RevokeNow   bool   `json:"revokeNow"` // revoke the replaced PAT immediately (leak)
	Reason      string `json:"reason,omitempty"`
	// RequestedBy is who asked, as Requester established it from the platform's
	// identity (the body's own `requestedBy` survives only as a claim next to it).
	RequestedBy string `json:"requestedBy,omitempty"`
	// Wait is how long the caller is willing to wait for the outcome (`?wait=30s`),
	// already capped by the handler; zero: answer 202 at once.
	Wait time.Duration `json:"wait,omitempty"`
}

// decodeRotateNow builds a RotateNowRequest; errors are bad requests.
func decodeRotateNow(inv Invocation, r HTTPRequest, invocationID string, maxWait time.Duration) (RotateNowRequest, error) {
	const doc = "rotate request"
	req := RotateNowRequest{Secret: r.param(inv, "secret")}
	if req.Secret == "" {
		return RotateNowRequest{}, contract.Malformed(doc, "secret", "missing from the route (POST /api/rotate/{secret})")
	}
	if err := contract.CheckSecretName(doc, "secret", req.Secret); err != nil {
		return RotateNowRequest{}, err
	}
	if len(bytes.TrimSpace(r.Body)) > 0 {
		var body struct {
			RevokeNow   *bool  `json:"revokeNow"`
			Reason      string `json:"reason"`
			RequestedBy string `json:"requestedBy"`
			OperationID string `json:"operationId"`
		}
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		// A typo such as "revoke_now" must not be silently ignored in an emergency.
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return RotateNowRequest{}, contract.Malformed(doc, "body", "unknown field %s (known: revokeNow, reason, requestedBy, operationId)", contract.Clip(f))
			}
			return RotateNowRequest{}, contract.DecodeObject(doc, r.Body, &body)
		}
		if body.RevokeNow != nil {
			req.RevokeNow = *body.RevokeNow
		}
		req.Reason, req.RequestedBy, req.OperationID = strings.TrimSpace(body.Reason), strings.TrimSpace(body.RequestedBy), strings.TrimSpace(body.OperationID)
	}
	if v, ok := r.query("revokeNow"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return RotateNowRequest{}, contract.Malformed(doc, "revokeNow", "%q is not true or false", contract.Clip(v))
		}
		req.RevokeNow = req.RevokeNow || b
	}
	if len([]rune(req.Reason)) > 256 {
		return RotateNowRequest{}, contract.Malformed(doc, "reason", "longer than 256 characters")
	}
	if len(req.RequestedBy) > 256 {
		return RotateNowRequest{}, contract.Malformed(doc, "requestedBy", "longer than 256 characters")
	}
	if req.OperationID == "" && invocationID != "" {
		// Operation ids have one form (it fits the PAT's display name): derived from
		// the host's invocation id, unique per call and fixed within it.
		req.OperationID = contract.DeriveOpID(string(contract.TriggerManual), req.Secret, strings.ToLower(invocationID))
	}
	if err := contract.CheckOpID(doc, "operationId", req.OperationID); err != nil {
		return RotateNowRequest{}, err
	}
	if v, ok := r.query("wait"); ok && v != "" {
		d, err := parseWait(v)
		if err != nil {
			return RotateNowRequest{}, contract.Malformed(doc, "wait", "%q is not a duration such as 30s", contract.Clip(v))
		}
		req.Wait = min(d, maxWait)
	}
	return req, nil
}

// parseWait accepts a Go duration ("30s", "1m") or whole seconds ("30").
func parseWait(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(min(n, 3600)) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errNotObject
	}
	return d, nil
}
