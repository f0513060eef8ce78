package handlers

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/patrol-dev/patrol/internal/contract"
)

// OffboardingReport: the account of a person, live — every active PAT they hold in the
// organizations patrol may work in and what patrol did or will do about each
// (GET /api/offboarding/{person}, person = UPN or Entra object id). It keeps nothing:
// any instance answers alike.
var offboardingReportFunction = Function{
	Name: "OffboardingReport", Trigger: BindingHTTPTrigger, Binding: "req", Methods: []string{"get"}, Route: "offboarding/{person}", Output: "res",
	invoke: httpTrigger(offboardingReport),
}

func offboardingReport(ctx context.Context, c call, req HTTPRequest) httpReply {
	person, err := contract.ParsePerson("offboarding report request", "person", req.param(c.inv, "person"))
	if err != nil {
		return errorReply(http.StatusBadRequest, "BadRequest", err.Error())
	}
	acc, err := c.deps.App.Account(ctx, person)
	if err != nil {
		c.log.WarnContext(ctx, "offboarding report", slog.Any("error", err))
		return c.appErrorReply(err)
	}
	return jsonReply(http.StatusOK, acc)
}
