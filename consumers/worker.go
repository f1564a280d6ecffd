package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/crashpoint"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/secrets"
	"github.com/iac-ci/iac-ci/store"
)

// Worker takes order messages off one target's queue and runs each order in a local process,
// as the embedded engine does for every target and the worker Lambda function does for lambda
// orders.
type Worker struct {
	Engine *engine.Engine
	Queue  queues.Queue
	// Visibility is how long a claimed message stays hidden; the worker extends it every third of
	// that while the order runs, so only a dead worker's message comes back.
	Visibility time.Duration
	WorkRoot   string
	BaseEnv    []string
	// HTTPClient delivers results to their presigned URLs; nil uses Execute's default client.
	HTTPClient *http.Client
}

// Run takes one message at a time until ctx ends; run several Workers for concurrency.
func (w *Worker) Run(ctx context.Context) error {
	return Consume(ctx, w.Queue, 1, w.Engine.Logger(), w.Handle)
}

// Claim moves an order to running under a new attempt. An order is claimed from queued, or from
// running when its message comes back (received before): the previous holder stopped extending
// the message's visibility, so it died, and the attempt it held is abandoned. It returns the
// claimed record, or ok false when the message has nothing to do (a duplicate, a stale copy, an
// ended order).
func Claim(ctx context.Context, e *engine.Engine, msg domain.OrderMessage, receiveCount int) (domain.OrderRecord, bool, error) {
	o, err := e.Store.GetOrder(ctx, msg.RunID, msg.OrderNum)
	if errors.Is(err, store.ErrNotFound) {
		return o, false, nil
	}
	if err != nil {
		return o, false, fmt.Errorf("read order: %w", err)
	}
	switch {
	case o.Status == domain.OrderQueued:
	case o.Status == domain.OrderRunning && receiveCount > 1:
	default:
		return o, false, nil
	}
	now := e.Time()
	next := o.Attempt + 1
	err = e.Store.UpdateOrder(ctx, store.OrderChange{
		RunID: o.RunID, OrderNum: o.OrderNum, From: []domain.OrderStatus{o.Status}, Attempt: o.Attempt,
		To: domain.OrderRunning, SetAttempt: next, StartedAt: now,
		DueAt: now.Add(time.Duration(o.Timeout)*time.Second + e.GracePeriod()),
	})
	if errors.Is(err, store.ErrConflict) {
		return o, false, nil
	}
	if err != nil {
		return o, false, fmt.Errorf("claim order: %w", err)
	}
	o.Status, o.Attempt, o.StartedAt = domain.OrderRunning, next, now
	e.Logger().InfoContext(ctx, "order claimed", "run_id", o.RunID, "trace_id", o.TraceID, "order", o.OrderName, "attempt", next)
	_ = e.Store.AppendEvents(ctx, domain.Event{TraceID: o.TraceID, RunID: o.RunID, OrderName: o.OrderName,
		OrderNum: o.OrderNum, Epoch: now.UnixNano(), Type: domain.EventOrderState, Status: string(domain.OrderRunning),
		Details: fmt.Sprintf("attempt %d", next), Time: now})
	e.Changed(o.RunID)
	return o, true, nil
}

// Handle runs the order a message names, if it is still to be run.
func (w *Worker) Handle(ctx context.Context, m queues.Message) error {
	var msg domain.OrderMessage
	if err := json.Unmarshal(m.Body, &msg); err != nil {
		w.Engine.Logger().WarnContext(ctx, "dropping malformed order message", "queue", w.Queue.Name(), "err", err)
		return nil
	}
	o, ok, err := Claim(ctx, w.Engine, msg, m.ReceiveCount)
	if err != nil || !ok {
		return err
	}
	crashpoint.Hit("worker.claimed")
	stop := keepHidden(ctx, w.Queue, m, w.Visibility, w.Engine.Logger())
	defer stop()

	task, err := PrepareTask(ctx, w.Engine, o, w.WorkRoot, w.BaseEnv)
	if err != nil {
		return err
	}
	task.HTTPClient = w.HTTPClient
	if _, err := Execute(ctx, task); err != nil {
		return fmt.Errorf("order %s attempt %d: %w", o.OrderName, o.Attempt, err)
	}
	crashpoint.Hit("worker.delivered")
	return nil
}

// PrepareTask gathers what one attempt of a claimed order needs: its bundle, its run's key, a
// presigned URL for its result and a place for its log. A bundle or key that is gone is not an
// error: the task then fails the attempt with a reason, so the run still ends.
func PrepareTask(ctx context.Context, e *engine.Engine, o domain.OrderRecord, workRoot string, baseEnv []string) (Task, error) {
	callback, err := e.Blobs.PresignPut(ctx, blobs.ResultKey(o.RunID, o.OrderNum, o.Attempt), AttemptExpiry(o))
	if err != nil {
		return Task{}, fmt.Errorf("presign result: %w", err)
	}
	t := Task{
		RunID: o.RunID, OrderNum: o.OrderNum, Attempt: o.Attempt, CallbackURL: callback,
		LogKey: blobs.LogKey(o.RunID, o.OrderNum, o.Attempt), WorkRoot: workRoot, BaseEnv: baseEnv,
		Log: e.Logger().With("run_id", o.RunID, "trace_id", o.TraceID, "order", o.OrderName),
	}
	t.PutLog = func(ctx context.Context, log []byte) error { return e.Blobs.Put(ctx, t.LogKey, log) }
	bundleData, err := e.Blobs.Get(ctx, blobs.ExecKey(o.RunID, o.OrderNum))
	switch {
	case errors.Is(err, blobs.ErrNotFound):
	case err != nil:
		return Task{}, fmt.Errorf("read bundle: %w", err)
	default:
		t.Bundle = bundleData
	}
	key, err := e.Keys.GetRunKey(ctx, o.RunID)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return Task{}, fmt.Errorf("read run key: %w", err)
	}
	t.Identity = key
	return t, nil
}
