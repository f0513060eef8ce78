package handlers

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/patrol-dev/patrol/internal/contract"
)

// SecretStatus: one secret's status, an operation's outcome, or every managed secret's
// status (GET /api/status/{secret?}).
var secretStatusFunction = Function{
	Name: "SecretStatus", Trigger: BindingHTTPTrigger, Binding: "req", Methods: []string{"get"}, Route: "status/{secret?}", Output: "res",
	invoke: httpTrigger(secretStatus),
}

func secretStatus(ctx context.Context, c call, req HTTPRequest) httpReply {
	log := c.log
	sr, err := decodeStatus(c.inv, req)
	if err != nil {
		return errorReply(http.StatusBadRequest, "BadRequest", err.Error())
	}
	st, err := c.deps.App.Status(ctx, sr)
	if err != nil {
		log.WarnContext(ctx, "status", slog.Any("error", err))
		return c.appErrorReply(err)
	}
	if st.Secrets == nil {
		st.Secrets = []contract.SecretStatus{}
	}
	return jsonReply(http.StatusOK, st)
}

// StatusRequest asks for one secret's status (GET /api/status/{secret}) or, with an
// empty Secret, every managed secret's (GET /api/status).
type StatusRequest struct {
	Secret      string `json:"secret,omitempty"`
	OperationID string `json:"operationId,omitempty"` // `?operation=`: the outcome of one operation
}

func decodeStatus(inv Invocation, r HTTPRequest) (StatusRequest, error) {
	const doc = "status request"
	req := StatusRequest{Secret: r.param(inv, "secret")}
	if req.Secret != "" {
		if err := contract.CheckSecretName(doc, "secret", req.Secret); err != nil {
			return StatusRequest{}, err
		}
	}
	if v, ok := r.query("operation"); ok && v != "" {
		if err := contract.CheckOpID(doc, "operation", v); err != nil {
			return StatusRequest{}, err
		}
		req.OperationID = v
	}
	return req, nil
}
