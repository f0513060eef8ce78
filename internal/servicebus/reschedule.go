package servicebus

import (
	"context"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// RescheduleRotation sends a throttled rotation command again, as a message scheduled
// at `at` on the secret's session, under messageID (contract.ThrottledMessageID): not
// the operation id, which duplicate detection has already seen for the command being
// handled.
func (b *Bus) RescheduleRotation(ctx context.Context, cmd contract.RotationCommand, messageID string, at time.Time) error {
	if err := cmd.Validate(); err != nil {
		return &Error{Op: "reschedule rotation command", Entity: contract.QueueRotations, Err: err, permanent: true}
	}
	m, err := b.message(cmd, messageID, cmd.Secret, at)
	if err != nil {
		return err
	}
	m.Subject = to(string(cmd.Trigger))
	return b.send(ctx, "reschedule rotation command", contract.QueueRotations, m)
}
