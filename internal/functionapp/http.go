package functionapp

import (
	"context"
	"fmt"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// RotateNow accepts an emergency rotation: it checks the secret exists and is patrol's
// (404/409 otherwise), enqueues a manual command under the request's operation id, and
// with a Wait watches for the outcome until it arrives or the wait is over (then the
// caller gets 202 and polls SecretStatus with the operation id).
func (a *App) RotateNow(ctx context.Context, req handlers.RotateNowRequest) (handlers.RotateNowResult, error) {
	res := handlers.RotateNowResult{OperationID: req.OperationID}
	in, err := a.o.Rotator.Gather(ctx, req.Secret)
	if err != nil {
		return res, fmt.Errorf("functionapp: read secret %q: %w", req.Secret, err)
	}
	if o, ok := OperationOf(req.Secret, req.OperationID, in); ok {
		// A retried request whose operation already finished: answer, do not re-send.
		res.Outcome = &o
		return res, nil
	}
	if err := CheckRotatable(req.Secret, in); err != nil {
		return res, err
	}
	if left := CooldownLeft(in, a.o.ManualCooldown, a.now()); left > 0 {
		a.log.WarnContext(ctx, "emergency rotation refused: cooldown", "secret", req.Secret, "operationId", req.OperationID,
			"requestedBy", req.RequestedBy, "retryAfter", left)
		return res, &TooManyRequests{Secret: req.Secret, After: left}
	}
	cmd := ManualCommand(req, a.now())
	if err := a.sign(ctx, &cmd); err != nil {
		return res, err
	}
	if err := a.o.Commands.SendRotation(ctx, cmd, time.Time{}); err != nil {
		return res, fmt.Errorf("functionapp: enqueue rotation of %q: %w", req.Secret, err)
	}
	a.log.InfoContext(ctx, "emergency rotation enqueued", "secret", req.Secret, "operationId", req.OperationID, "revokeNow", req.RevokeNow,
		"requestedBy", req.RequestedBy, "reason", req.Reason)
	if req.Wait > 0 {
		res.Outcome = a.wait(ctx, req.Secret, req.OperationID, req.Wait)
	}
	return res, nil
}

// wait polls for an operation's outcome in what every instance can read (lookup). It
// returns nil when the wait ends first.
func (a *App) wait(ctx context.Context, secret, op string, d time.Duration) *contract.Outcome {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(a.o.PollInterval)
	defer t.Stop()
	for {
		if o, ok := a.lookup(ctx, secret, op); ok {
			return &o
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// lookup finds a finished operation's outcome in state every instance shares: the
// vault's current version (the version an operation wrote carries its id in
// patrol-op), then the operation's reply (pat-replies), which also knows failures.
func (a *App) lookup(ctx context.Context, secret, op string) (contract.Outcome, bool) {
	in, err := a.o.Rotator.Gather(ctx, secret)
	if err == nil {
		if o, ok := OperationOf(secret, op, in); ok {
			return o, true
		}
	}
	return a.reply(ctx, secret, op)
}

// reply reads the operation's outcome from Replies; a reply about another secret
// (an operation id reused under another name) does not count.
func (a *App) reply(ctx context.Context, secret, op string) (contract.Outcome, bool) {
	if a.o.Replies == nil {
		return contract.Outcome{}, false
	}
	o, ok, err := a.o.Replies.Reply(ctx, op)
	if err != nil {
		a.log.WarnContext(ctx, "read the operation's reply", "secret", secret, "operationId", op, "error", err)
		return contract.Outcome{}, false
	}
	if !ok || o.Secret != secret {
		return contract.Outcome{}, false
	}
	return o, true
}

// Status reports one managed secret (404, the same answer, when it does not exist, is
// not managed or is one of patrol's own), optionally one operation's outcome, or every
// managed secret.
func (a *App) Status(ctx context.Context, req handlers.StatusRequest) (contract.StatusResult, error) {
	now := a.now()
	if req.Secret == "" {
		versions, err := a.o.Inventory.ListManaged(ctx)
		if err != nil {
			return contract.StatusResult{}, fmt.Errorf("functionapp: list managed secrets: %w", err)
		}
		rows := rotation.Plan(versions, a.o.Defaults, now)
		byName := map[string]*rotation.PlanRow{}
		for i := range rows {
			byName[rows[i].Secret] = &rows[i]
		}
		res := contract.StatusResult{Secrets: make([]contract.SecretStatus, 0, len(rows))}
		internal := map[string]bool{}
		for _, v := range versions {
			if rotation.IsInternalSecret(v.Name, v.Tags) {
				internal[v.Name] = true
			}
		}
		// Plan's order: soonest action first.
		idx := map[string]rotation.Version{}
		for _, v := range versions {
			idx[v.Name] = v
		}
		for _, r := range rows {
			if !internal[r.Secret] {
				res.Secrets = append(res.Secrets, rotation.StatusOf(idx[r.Secret], byName[r.Secret]))
			}
		}
		return res, nil
	}
	in, err := a.o.Rotator.Gather(ctx, req.Secret)
	if err != nil {
		return contract.StatusResult{}, fmt.Errorf("functionapp: read secret %q: %w", req.Secret, err)
	}
	// Unmanaged, internal and absent: one answer (errNoSuchSecret).
	if !in.Exists || !rotation.IsManaged(in.Current.Tags) || rotation.IsInternalSecret(req.Secret, in.Current.Tags) {
		return contract.StatusResult{}, errNoSuchSecret(req.Secret)
	}
	rows := rotation.Plan([]rotation.Version{in.Current}, a.o.Defaults, now)
	res := contract.StatusResult{Secrets: []contract.SecretStatus{rotation.StatusOf(in.Current, &rows[0])}}
	if req.OperationID != "" {
		o, ok := OperationOf(req.Secret, req.OperationID, in)
		if !ok {
			o, ok = a.reply(ctx, req.Secret, req.OperationID)
		}
		if !ok {
			o = contract.Outcome{Status: contract.StatusPending, Secret: req.Secret, OperationID: req.OperationID,
				Message: "no outcome yet: the command is queued or running"}
		}
		res.Operation = &o
	}
	return res, nil
}
