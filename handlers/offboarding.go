package handlers

import (
	"context"

	"github.com/patrol-dev/patrol/internal/contract"
)

// Offboarding: HR's offboarding messages on hr-offboarding, fanned out by the App into
// rotation commands.
var offboardingFunction = Function{
	Name: "Offboarding", Trigger: BindingServiceBusTrigger, Binding: "msg", Queue: contract.QueueOffboarding,
	invoke: serviceBusTrigger(decodeOffboarding),
}

func decodeOffboarding(_ context.Context, _ call, body []byte, _ MessageInfo) (delivery, error) {
	m, err := contract.DecodeOffboardingMessage(body)
	if err != nil {
		return delivery{}, err
	}
	return delivery{run: func(ctx context.Context, app App) error { return app.Offboard(ctx, m) }}, nil
}
