package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/crashpoint"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/sandbox"
	"github.com/iac-ci/iac-ci/sealing"
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
	// Dirs, when set, hands out the orders' working directories (under its own Root, in place
	// of WorkRoot): share one among the Workers of a process.
	Dirs    *WorkDirs
	BaseEnv []string
	// Hide names what the commands must not reach (Task.Hide).
	Hide []string

	session *sandbox.Session // the init that starts this Worker's commands, once opened
	// HTTPClient delivers results to their presigned URLs; nil uses Execute's default client.
	HTTPClient *http.Client
	// Recorder, when set, records each result in this process (Orchestrator.RecordClaimed)
	// instead of PUTting result.json to its presigned URL for the results queue to carry to an
	// orchestrator: set it when the Worker runs beside the orchestrator, as embedded.
	Recorder *Orchestrator
	// Opener opens the orders' sealed environments, keeping the data keys it unwraps: share one
	// among the Workers of a process, so a run's orders unwrap their key once. Nil opens each
	// with sealing.Open.
	Opener *sealing.Opener
}

// Run takes one message at a time until ctx ends; run several Workers for concurrency.
func (w *Worker) Run(ctx context.Context) error {
	defer w.closeSession()
	return Consume(ctx, w.Queue, 1, w.Engine.Logger(), w.Handle)
}

// openSession returns the Worker's sandbox.Session, opening it at the first order; nil where
// commands cannot run in namespaces, or the session could not start (each command then starts
// its own init). A Worker runs one order at a time, so its session serves one command at a time.
func (w *Worker) openSession(ctx context.Context) *sandbox.Session {
	if w.session != nil && w.session.Ended() {
		w.closeSession()
	}
	if w.session != nil {
		return w.session
	}
	if mode, _ := sandbox.Default.Mode(); mode != sandbox.Namespaces {
		return nil
	}
	root := w.WorkRoot
	if w.Dirs != nil {
		root = w.Dirs.Root
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		w.Engine.Logger().WarnContext(ctx, "open the orders' session", "err", err)
		return nil
	}
	ss, err := sandbox.Default.Open(root, w.Hide...)
	if err != nil {
		w.Engine.Logger().WarnContext(ctx, "open the orders' session", "err", err)
		return nil
	}
	w.session = ss
	return ss
}

func (w *Worker) closeSession() {
	if w.session != nil {
		_ = w.session.Close()
		w.session = nil
	}
}

// Claim moves an order to running under a new attempt. An order is claimed from queued, or from
// running when its message comes back (received before): the previous holder stopped extending
// the message's visibility, so it died, and the attempt it held is abandoned. It returns the
// claimed record, or ok false when the message has nothing to do (a duplicate, a stale copy, an
// ended order).
//
// A first delivery costs one conditional write, which returns the record it claimed: the
// message carries the order's timeout, from which the claim sets the order's deadline. A
// redelivery reads the order first, to write the abandoned attempt's history with the claim.
func Claim(ctx context.Context, e *engine.Engine, msg domain.OrderMessage, receiveCount int) (domain.OrderRecord, bool, error) {
	var (
		prev   domain.OrderRecord
		change = store.OrderChange{
			RunID: msg.RunID, OrderNum: msg.OrderNum, From: []domain.OrderStatus{domain.OrderQueued},
			Attempt: store.AnyAttempt, To: domain.OrderRunning, NextAttempt: true, ReturnOrder: true,
		}
		timeout = msg.Timeout
	)
	if receiveCount > 1 || timeout <= 0 {
		var err error
		prev, err = e.Store.GetOrder(ctx, msg.RunID, msg.OrderNum)
		if errors.Is(err, store.ErrNotFound) {
			return prev, false, nil
		}
		if err != nil {
			return prev, false, fmt.Errorf("read order: %w", err)
		}
		switch {
		case prev.Status == domain.OrderQueued:
		case prev.Status == domain.OrderRunning && receiveCount > 1:
			change.Events = []domain.Event{engine.RunningEvent(prev)}
			change.Events[0].Details += " abandoned: its worker stopped answering"
		default:
			return prev, false, nil
		}
		change.From, change.Attempt, timeout = []domain.OrderStatus{prev.Status}, prev.Attempt, prev.Timeout
	}
	now := e.Time()
	change.StartedAt, change.DueAt = now, now.Add(time.Duration(timeout)*time.Second+e.GracePeriod())
	moved, err := e.Store.UpdateOrder(ctx, change)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return prev, false, nil
	}
	if err != nil {
		return prev, false, fmt.Errorf("claim order: %w", err)
	}
	o := moved.Order
	e.Logger().InfoContext(ctx, "order claimed", "run_id", o.RunID, "trace_id", o.TraceID, "order", o.OrderName, "attempt", o.Attempt)
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
	stop := KeepHidden(ctx, w.Queue, m, w.Visibility, w.Engine.Logger())
	defer stop()

	task, err := PrepareTask(ctx, w.Engine, o, w.WorkRoot, w.BaseEnv)
	if err != nil {
		return err
	}
	task.HTTPClient, task.Opener, task.Dirs, task.Hide = w.HTTPClient, w.Opener, w.Dirs, w.Hide
	task.Session = w.openSession(ctx)
	if w.Recorder != nil {
		task.Deliver = func(ctx context.Context, r domain.Result) error { return w.Recorder.RecordClaimed(ctx, o, r) }
	}
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
