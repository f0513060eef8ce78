package handlers

import (
	"context"

	"github.com/patrol-dev/patrol/internal/contract"
)

// Rotate: rotation commands on the session queue pat-rotations (session = secret).
var rotateFunction = Function{
	Name: "Rotate", Trigger: BindingServiceBusTrigger, Binding: "msg", Queue: contract.QueueRotations, Sessions: true,
	invoke: serviceBusTrigger(decodeRotate),
}

func decodeRotate(ctx context.Context, c call, body []byte, mi MessageInfo) (delivery, error) {
	cmd, err := contract.DecodeRotationCommand(body)
	if err != nil {
		return delivery{}, err
	}
	d := delivery{secret: cmd.Secret, op: cmd.OperationID}
	// Session id = secret name is what serialises rotations of one secret; a command in
	// another secret's session would run concurrently with that secret's own commands.
	// A missing SessionId cannot be checked (the host omits null metadata); it is
	// logged, not fatal.
	switch {
	case mi.SessionID == "":
		c.log.WarnContext(ctx, "rotation command without SessionId; cannot check serialisation")
	case mi.SessionID != cmd.Secret:
		return d, contract.Malformed("rotation command", "secret", "%q does not match the message's SessionId %q", contract.Clip(cmd.Secret), contract.Clip(mi.SessionID))
	}
	d.run = func(ctx context.Context, app App) error { return app.Rotate(ctx, cmd) }
	return d, nil
}
