package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/crashpoint"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/store"
)

// Orchestrator records results: each message on the results queue is an object notification for
// a result.json; the orchestrator reads the result, ends its order with one conditional move,
// wakes the orders that depended on it and finalizes the run when it was the last. It reads only
// the order, its dependents and their dependencies, never the whole run.
//
// A result reaches it one of three ways: a results-queue message (Handle), a result.json found
// stored by the sweeper (RecordObject), or handed over in process by a worker of this process
// that claimed the order (RecordOwn).
type Orchestrator struct {
	Engine *engine.Engine
}

// Handle handles one results-queue message.
func (o *Orchestrator) Handle(ctx context.Context, m queues.Message) error {
	refs, err := blobs.ParseNotification(m.Body)
	if err != nil {
		o.Engine.Logger().WarnContext(ctx, "dropping unreadable result notification", "err", err)
		return nil
	}
	for _, ref := range refs {
		if !blobs.IsResultKey(ref.Key) {
			continue
		}
		data, err := o.Engine.Blobs.Get(ctx, ref.Key)
		if errors.Is(err, blobs.ErrNotFound) {
			o.Engine.Logger().WarnContext(ctx, "result notified but not stored", "key", ref.Key)
			continue
		}
		if err != nil {
			return fmt.Errorf("read result: %w", err)
		}
		if err := o.RecordObject(ctx, ref.Key, data); err != nil {
			return err
		}
	}
	return nil
}

// RecordObject records the result.json data stored under key.
func (o *Orchestrator) RecordObject(ctx context.Context, key string, data []byte) error {
	runID, num, attempt, err := blobs.ParseResultKey(key)
	if err != nil {
		return nil
	}
	var r domain.Result
	if err := json.Unmarshal(data, &r); err != nil {
		r = domain.Result{Status: domain.OrderFailed, ExitCode: -1, Reason: "the worker's result.json could not be read"}
	}
	// The key, written under a URL presigned for this attempt, is what says whose result it is.
	r.RunID, r.OrderNum, r.Attempt = runID, num, attempt
	return o.Record(ctx, r)
}

// Record ends the order a result belongs to, if the result is for the attempt now running.
func (o *Orchestrator) Record(ctx context.Context, r domain.Result) error {
	rec, err := o.Engine.Store.GetOrder(ctx, r.RunID, r.OrderNum)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read order: %w", err)
	}
	return o.record(ctx, rec, r)
}

// RecordOwn records a result of the attempt claimed is, as Record does, without reading
// the order again: for a worker of this process that claimed it (Claim returned claimed). The
// end is still a conditional move from running at that attempt, so a result that comes after
// the sweeper timed the attempt out, or after another worker took the order over, changes
// nothing. It retries the store's errors with backoff for up to two minutes, as a worker retries
// delivering result.json.
func (o *Orchestrator) RecordOwn(ctx context.Context, claimed domain.OrderRecord, r domain.Result) error {
	return retryResult(ctx, func() error { return o.record(ctx, claimed, r) })
}

// record ends rec with r, if r is a result of the attempt rec is running.
func (o *Orchestrator) record(ctx context.Context, rec domain.OrderRecord, r domain.Result) error {
	if rec.RunID != r.RunID || rec.OrderNum != r.OrderNum || rec.Status != domain.OrderRunning || rec.Attempt != r.Attempt {
		return nil // a duplicate, or a result of an abandoned attempt
	}
	status := r.Status
	if status != domain.OrderSucceeded && status != domain.OrderFailed && status != domain.OrderTimedOut {
		status, r.Reason = domain.OrderFailed, fmt.Sprintf("the worker reported an unknown status %q", r.Status)
	}
	crashpoint.Hit("orchestrator.read")
	code := r.ExitCode
	_, err := o.Engine.Finish(ctx, rec, []domain.OrderStatus{domain.OrderRunning}, r.Attempt, engine.Outcome{
		Status: status, ExitCode: &code, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		Reason: r.Reason, LogKey: r.LogKey, LogTail: r.LogTail,
	})
	return err
}
