package sqlitequeue

import (
	"context"
	"fmt"
)

// ReleaseInFlight makes every received, not yet deleted message visible again at once, and
// returns how many. The embedded engine calls it when a process opens a data folder that only it
// may hold: whatever was in flight then belonged to a process that died, and waiting out the
// visibility timeouts would only delay recovery. A delayed message that was never received keeps
// its delay. It must not be called while another process consumes the same database.
func (b *Broker) ReleaseInFlight(ctx context.Context) (int64, error) {
	now := b.now().UnixMilli()
	res, err := b.db.ExecContext(ctx,
		`UPDATE queue_messages SET visible_at = ?, receipt = NULL WHERE receipt IS NOT NULL AND visible_at > ?`, now, now)
	if err != nil {
		return 0, fmt.Errorf("release in-flight messages: %w", err)
	}
	n, _ := res.RowsAffected()
	for _, q := range b.queues {
		q.ready.broadcast()
	}
	return n, nil
}
