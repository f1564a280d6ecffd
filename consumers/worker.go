package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/crashpoint"
	"github.com/iac-ci/iac-ci/livelog"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/sandbox"
	"github.com/iac-ci/iac-ci/sealing"
	"github.com/iac-ci/iac-ci/secrets"
)

// Worker takes order messages off one target's queue and runs each order in a local process,
// as the embedded engine does for every target and the worker Lambda function does for lambda
// orders. The host keeps its message hidden while the order runs (Loop.KeepHidden), so only a
// dead worker's message comes back.
type Worker struct {
	Engine   *engine.Engine
	WorkRoot string
	// Dirs, when set, hands out the orders' working directories (under its own Root, in place
	// of WorkRoot): share one among the Workers of a process.
	Dirs    *WorkDirs
	BaseEnv []string
	// Hide names what the commands must not reach (Task.Hide).
	Hide []string

	sessions sessions // the inits that start this Worker's commands
	// HTTPClient delivers results to their presigned URLs; nil uses Execute's default client.
	HTTPClient *http.Client
	// Recorder, when set, records each result in this process (Orchestrator.RecordOwn)
	// instead of PUTting result.json to its presigned URL for the results queue to carry to an
	// orchestrator: set it when the Worker runs beside the orchestrator, as embedded.
	Recorder *Orchestrator
	// Credentials, when set, are the AWS credentials the orders' commands get (those of an
	// order role); BaseEnv holds none of the worker's own.
	Credentials OrderCredentials
	// Live, when set, holds each attempt's output while it runs; LiveFlush, when positive, also
	// stores it under the attempt's log key that often, for other processes to read.
	Live      *livelog.Logs
	LiveFlush time.Duration
	// Opener opens the orders' sealed environments, keeping the data keys it unwraps: share one
	// among the Workers of a process, so a run's orders unwrap their key once. Nil opens each
	// with sealing.Open.
	Opener *sealing.Opener
}

// sessions hands out the inits that start the Worker's commands (sandbox.Session): one runs
// one command at a time, and a Worker runs as many orders at once as its host's loop hands it,
// so idle ones are kept for the next orders, each opened at the first order that finds none.
type sessions struct {
	mu   sync.Mutex
	idle []*sandbox.Session
}

// take returns an idle session, or opens one; nil where commands cannot run in namespaces, or a
// session could not start (each command then starts its own init).
func (w *Worker) takeSession(ctx context.Context) *sandbox.Session {
	w.sessions.mu.Lock()
	for len(w.sessions.idle) > 0 {
		n := len(w.sessions.idle)
		ss := w.sessions.idle[n-1]
		w.sessions.idle = w.sessions.idle[:n-1]
		if !ss.Ended() {
			w.sessions.mu.Unlock()
			return ss
		}
		_ = ss.Close()
	}
	w.sessions.mu.Unlock()
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
	return ss
}

// giveBack keeps a session for the next order.
func (w *Worker) giveBack(ss *sandbox.Session) {
	if ss == nil {
		return
	}
	w.sessions.mu.Lock()
	defer w.sessions.mu.Unlock()
	w.sessions.idle = append(w.sessions.idle, ss)
}

// Close ends the Worker's idle sessions. Call it once it handles no more orders.
func (w *Worker) Close() error {
	w.sessions.mu.Lock()
	defer w.sessions.mu.Unlock()
	for _, ss := range w.sessions.idle {
		_ = ss.Close()
	}
	w.sessions.idle = nil
	return nil
}

// Handle runs the order a message names, if it is still to be run.
func (w *Worker) Handle(ctx context.Context, m queues.Message) error {
	var msg domain.OrderMessage
	if err := json.Unmarshal(m.Body, &msg); err != nil {
		w.Engine.Logger().WarnContext(ctx, "dropping malformed order message", "err", err)
		return nil
	}
	o, ok, err := w.Engine.Claim(ctx, msg, m.ReceiveCount)
	if err != nil || !ok {
		return err
	}
	crashpoint.Hit("worker.claimed")

	task, err := PrepareTask(ctx, w.Engine, o, w.WorkRoot, w.BaseEnv)
	if err != nil {
		return err
	}
	task.HTTPClient, task.Opener, task.Dirs, task.Hide = w.HTTPClient, w.Opener, w.Dirs, w.Hide
	if w.Credentials != nil {
		creds, err := w.Credentials.Env(ctx, time.Duration(o.Timeout)*time.Second)
		if err != nil {
			return fmt.Errorf("order %s attempt %d: %w", o.OrderName, o.Attempt, err)
		}
		task.BaseEnv = append(slices.Clip(task.BaseEnv), creds...)
	}
	task.Session = w.takeSession(ctx)
	defer w.giveBack(task.Session)
	if w.Recorder != nil {
		task.Deliver = func(ctx context.Context, r domain.Result) error { return w.Recorder.RecordOwn(ctx, o, r) }
	}
	if w.Live != nil {
		live := w.Live.Start(o.RunID, o.OrderNum, o.Attempt)
		defer w.Live.End(o.RunID, o.OrderNum, o.Attempt)
		task.Live = live
		if w.LiveFlush > 0 {
			fctx, stop := context.WithCancel(ctx)
			key := livelog.PartialKey(o.RunID, o.OrderNum, o.Attempt)
			stored := make(chan bool, 1)
			go func() { stored <- livelog.Flush(fctx, w.Engine.Blobs, key, live, w.LiveFlush) }()
			defer func() {
				stop()
				if <-stored {
					_ = w.Engine.Blobs.Delete(context.WithoutCancel(ctx), key)
				}
			}()
		}
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
