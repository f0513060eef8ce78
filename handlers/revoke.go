package handlers

import (
	"context"

	"github.com/patrol-dev/patrol/internal/contract"
)

// Revoke: scheduled revocations of replaced PATs on pat-revocations.
var revokeFunction = Function{
	Name: "Revoke", Trigger: BindingServiceBusTrigger, Binding: "msg", Queue: contract.QueueRevocations,
	invoke: serviceBusTrigger(decodeRevoke),
}

func decodeRevoke(_ context.Context, _ call, body []byte, _ MessageInfo) (delivery, error) {
	cmd, err := contract.DecodeRevocationCommand(body)
	if err != nil {
		return delivery{}, err
	}
	return delivery{secret: cmd.Secret, op: cmd.OperationID,
		run: func(ctx context.Context, app App) error { return app.Revoke(ctx, cmd) }}, nil
}
