package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/store"
)

// DeadLetters turns order messages that died into failed results: a message dead-lettered after
// MaxReceives receives means its order could not be run (its worker kept failing or dying), and
// the run must still end.
type DeadLetters struct {
	Engine      *engine.Engine
	MaxReceives int
}

// Handle fails the order a dead message names, if it has not ended.
func (d *DeadLetters) Handle(ctx context.Context, m queues.Message) error {
	var msg domain.OrderMessage
	if err := json.Unmarshal(m.Body, &msg); err != nil {
		d.Engine.Logger().WarnContext(ctx, "dropping malformed dead letter", "err", err)
		return nil
	}
	o, err := d.Engine.Store.GetOrder(ctx, msg.RunID, msg.OrderNum)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read order: %w", err)
	}
	if o.Status.Terminal() {
		return nil
	}
	reason := fmt.Sprintf("the order's message was received %d times without a result and was dead-lettered", d.MaxReceives)
	_, err = d.Engine.Finish(ctx, o, []domain.OrderStatus{domain.OrderQueued, domain.OrderRunning}, store.AnyAttempt,
		engine.Outcome{Status: domain.OrderFailed, Reason: reason})
	return err
}
