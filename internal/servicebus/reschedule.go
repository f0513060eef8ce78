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
	return b.sendRotation(ctx, "reschedule rotation command", cmd, messageID, at)
}
