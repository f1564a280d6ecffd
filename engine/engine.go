// Package engine holds every move of a run and its orders, written once: creating and starting a
// run, putting an order on its target's queue, claiming it for an attempt, ending it and waking
// what depended on it, re-checking a waiting order, and finalizing a run exactly once. Intake
// (package producers), the workers and launchers, the orchestrator, the sweeper and the
// dead-letter consumers (package consumers) all move runs through these functions; nothing else
// writes to the store.
//
// Every move is a conditional write from the expected prior state (store.OrderChange), so two
// processes making the same move at once cannot both succeed, and a duplicate message makes no
// move at all. Nothing here holds a lock; what a crash leaves half-done the sweeper finishes.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/crashpoint"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/secrets"
	"github.com/iac-ci/iac-ci/store"
)

// Watcher is told whenever a run changes, so that progress can be shown (a terminal, a pull
// request comment). It must not block.
type Watcher interface {
	RunChanged(runID string)
}

// Finisher is told once a run's finalization has been written, before it is marked reported; an
// error makes the sweeper try again later (so a final comment is not lost).
type Finisher interface {
	RunFinished(ctx context.Context, run domain.Run) error
}

// Observer is told what the engine ended, for metrics: each order moved to a terminal status
// (with its target, start and end) and each run finalized (with its status and end), once per
// applied move; a move refused (a duplicate, a stale result) tells nothing. It must not block.
type Observer interface {
	OrderEnded(o domain.OrderRecord)
	RunEnded(run domain.Run)
}

// Engine moves runs. Its fields are the ports it moves them through; set them all except the
// optional ones, then share one Engine between goroutines.
type Engine struct {
	Store  store.Store
	Queues queues.Broker
	Blobs  blobs.Bucket // internal bucket: requests, bundles, results, logs
	Done   blobs.Bucket // done bucket: one object per finished run
	Keys   secrets.Keys
	Log    *slog.Logger
	Now    func() time.Time

	Watchers  []Watcher  // optional
	Finishers []Finisher // optional
	Observers []Observer // optional

	// RequeueAfter is how long an order may stay queued before the sweeper sends its message
	// again (a crash between the move and the send loses the message).
	RequeueAfter time.Duration
	// WaitRecheck is how often the sweeper re-checks a waiting order's dependencies (a crash
	// between a dependency's end and the wake-up loses the wake-up).
	WaitRecheck time.Duration
	// Grace is how long past an order's timeout the sweeper waits for the worker's own result
	// before it times the order out itself.
	Grace time.Duration
	// DoneURL tells where a run's done object can be read; optional.
	DoneURL func(runID string) string
}

// Defaults for the durations above.
const (
	DefaultRequeueAfter = 5 * time.Minute
	DefaultWaitRecheck  = time.Minute
	DefaultGrace        = time.Minute
)

// Time is the engine's clock, in UTC.
func (e *Engine) Time() time.Time { return e.now() }

// GracePeriod is Grace, or DefaultGrace when unset.
func (e *Engine) GracePeriod() time.Duration { return orDefault(e.Grace, DefaultGrace) }

// WaitRecheckPeriod is WaitRecheck, or DefaultWaitRecheck when unset.
func (e *Engine) WaitRecheckPeriod() time.Duration {
	return orDefault(e.WaitRecheck, DefaultWaitRecheck)
}

// Logger is Log, or a logger that discards when unset.
func (e *Engine) Logger() *slog.Logger { return e.log() }

// Changed tells the watchers that a run changed.
func (e *Engine) Changed(runID string) { e.changed(runID) }

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (e *Engine) changed(runID string) {
	for _, w := range e.Watchers {
		w.RunChanged(runID)
	}
}

// orderEnded tells the observers that o ended in status; a zero started keeps o's own.
func (e *Engine) orderEnded(o domain.OrderRecord, status domain.OrderStatus, started, finished time.Time) {
	if len(e.Observers) == 0 {
		return
	}
	o.Status, o.FinishedAt, o.DueAt = status, finished, time.Time{}
	if !started.IsZero() {
		o.StartedAt = started
	}
	for _, ob := range e.Observers {
		ob.OrderEnded(o)
	}
}

// orderEvent is the history entry of an order's move to status.
func orderEvent(o domain.OrderRecord, at time.Time, status, details string) domain.Event {
	return domain.Event{TraceID: o.TraceID, RunID: o.RunID, OrderName: o.OrderName, OrderNum: o.OrderNum,
		Epoch: at.UnixNano(), Type: domain.EventOrderState, Status: status, Details: details, Time: at}
}

// endEvents is the history an order's end writes: for an order o shows running, its attempt's
// RunningEvent, then the end itself.
func endEvents(o domain.OrderRecord, at time.Time, status domain.OrderStatus, reason string) []domain.Event {
	var events []domain.Event
	if o.Status == domain.OrderRunning && !o.StartedAt.IsZero() {
		events = append(events, RunningEvent(o))
	}
	return append(events, orderEvent(o, at, string(status), reason))
}

// RunningEvent is the history entry of an order's claim, attempt o.Attempt started at
// o.StartedAt. A claim writes no event of its own, to cost one write: the move that ends the
// attempt (or abandons it) writes this one with its own, so every attempt's start is in the
// history under the time it started.
func RunningEvent(o domain.OrderRecord) domain.Event {
	return orderEvent(o, o.StartedAt, string(domain.OrderRunning), fmt.Sprintf("attempt %d", o.Attempt))
}

// Enqueue moves a waiting order to queued and sends its message. It is a no-op when the order is
// no longer waiting (someone else moved it). A crash between the move and the send is repaired by
// the sweeper, which re-sends orders queued for longer than RequeueAfter.
func (e *Engine) Enqueue(ctx context.Context, o domain.OrderRecord) error {
	return e.EnqueueAll(ctx, []domain.OrderRecord{o})
}

// EnqueueAll is Enqueue for many orders at once: each move is still its own conditional write
// (with its event), but the messages go in batches (see SendAll).
func (e *Engine) EnqueueAll(ctx context.Context, orders []domain.OrderRecord) error {
	now := e.now()
	var moved []domain.OrderRecord
	for i, o := range orders {
		_, err := e.Store.UpdateOrder(ctx, store.OrderChange{
			RunID: o.RunID, OrderNum: o.OrderNum, From: []domain.OrderStatus{domain.OrderWaiting}, Attempt: store.AnyAttempt,
			To: domain.OrderQueued, DueAt: now.Add(e.requeueAfter()), QueuedAt: now,
			Events: []domain.Event{queuedEvent(o, now, i)},
		})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("queue order %s: %w", o.OrderName, err)
		}
		crashpoint.Hit("enqueue.moved")
		moved = append(moved, o)
	}
	if err := e.SendAll(ctx, moved); err != nil {
		return err
	}
	if len(moved) > 0 {
		e.changed(moved[len(moved)-1].RunID)
	}
	return nil
}

// QueueFirst makes the first orders of a run not yet inserted, those waiting for nothing,
// queued at now, in place, as EnqueueAll would move them, and returns the events EnqueueAll
// would write with the moves. Intake inserts the run so, with these events
// (store.Store.CreateRun), then sends the orders' messages with SendAll: a run's first orders
// cost no move each (on DynamoDB a transaction each). A crash before the send leaves them
// queued without a message; intake's retry sends them, as the sweeper would after RequeueAfter.
func (e *Engine) QueueFirst(orders []domain.OrderRecord, now time.Time) []domain.Event {
	var events []domain.Event
	for i := range orders {
		o := &orders[i]
		if o.Status != domain.OrderWaiting || len(o.Deps) > 0 {
			continue
		}
		o.Status, o.QueuedAt, o.DueAt = domain.OrderQueued, now, now.Add(e.requeueAfter())
		events = append(events, queuedEvent(*o, now, len(events)))
	}
	return events
}

// queuedEvent is the history entry of the move to queued of the i-th of orders queued together
// at now: each a nanosecond after the one before, so the history lists them in that order.
func queuedEvent(o domain.OrderRecord, now time.Time, i int) domain.Event {
	return orderEvent(o, now.Add(time.Duration(i)), string(domain.OrderQueued), "")
}

func (e *Engine) requeueAfter() time.Duration { return orDefault(e.RequeueAfter, DefaultRequeueAfter) }

// SendAll sends the messages of orders already queued, in batches of queues.MaxBatch per target
// queue, which on AWS is one call for ten orders instead of ten. It moves nothing. A message
// sent twice is harmless: a worker claims an order only from the state it expects.
func (e *Engine) SendAll(ctx context.Context, orders []domain.OrderRecord) error {
	byTarget := map[domain.Target][]queues.Outgoing{}
	for _, o := range orders {
		body, err := json.Marshal(message(o))
		if err != nil {
			return err
		}
		byTarget[o.Target] = append(byTarget[o.Target], queues.Outgoing{Body: body})
	}
	for target, msgs := range byTarget {
		q, err := e.Queues.Queue(queues.Orders(string(target)))
		if err != nil {
			return fmt.Errorf("queue of %s: %w", target, err)
		}
		for start := 0; start < len(msgs); start += queues.MaxBatch {
			if err := q.Send(ctx, msgs[start:min(start+queues.MaxBatch, len(msgs))]...); err != nil {
				// The orders not sent stay queued; the sweeper sends them after RequeueAfter.
				return fmt.Errorf("send orders to %s: %w", target, err)
			}
		}
	}
	return nil
}

// message is the queue message of an order.
func message(o domain.OrderRecord) domain.OrderMessage {
	return domain.OrderMessage{RunID: o.RunID, OrderNum: o.OrderNum, Attempt: o.Attempt, TraceID: o.TraceID, Timeout: o.Timeout}
}

// Resend sends a queued order's message again and pushes its re-send time back. Duplicates are
// harmless: a worker claims an order only from the state it expects.
func (e *Engine) Resend(ctx context.Context, o domain.OrderRecord) error {
	_, err := e.Store.UpdateOrder(ctx, store.OrderChange{
		RunID: o.RunID, OrderNum: o.OrderNum, From: []domain.OrderStatus{domain.OrderQueued}, Attempt: o.Attempt,
		To: domain.OrderQueued, DueAt: e.now().Add(e.requeueAfter()),
	})
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("re-queue order %s: %w", o.OrderName, err)
	}
	return e.send(ctx, o, 0)
}

// send sends an order's message, hidden for delay first.
func (e *Engine) send(ctx context.Context, o domain.OrderRecord, delay time.Duration) error {
	q, err := e.Queues.Queue(queues.Orders(string(o.Target)))
	if err != nil {
		return fmt.Errorf("queue of %s: %w", o.Target, err)
	}
	body, err := json.Marshal(message(o))
	if err != nil {
		return err
	}
	if err := q.Send(ctx, queues.Outgoing{Body: body, Delay: delay}); err != nil {
		return fmt.Errorf("send order %s: %w", o.OrderName, err)
	}
	return nil
}

// Outcome is how an order ended.
type Outcome struct {
	Status     domain.OrderStatus // terminal
	ExitCode   *int
	StartedAt  time.Time
	FinishedAt time.Time
	Reason     string
	LogKey     string
	LogTail    string
}

// Finish moves an order to a terminal status, from one of from and (unless store.AnyAttempt) at
// the given attempt, then wakes its dependents and finalizes the run if it was the last open
// order. It returns false, nil when the order was not in the expected state (a duplicate or
// stale result): nothing is moved then. The move writes the order's history with it: the
// terminal event and, for an order o shows running, its attempt's RunningEvent.
func (e *Engine) Finish(ctx context.Context, o domain.OrderRecord, from []domain.OrderStatus, attempt int, out Outcome) (bool, error) {
	if out.FinishedAt.IsZero() {
		out.FinishedAt = e.now()
	}
	moved, err := e.Store.UpdateOrder(ctx, store.OrderChange{
		RunID: o.RunID, OrderNum: o.OrderNum, From: from, Attempt: attempt,
		To: out.Status, StartedAt: out.StartedAt, FinishedAt: out.FinishedAt, ExitCode: out.ExitCode,
		Reason: out.Reason, LogKey: out.LogKey, LogTail: out.LogTail,
		Events: endEvents(o, out.FinishedAt, out.Status, out.Reason),
	})
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("end order %s: %w", o.OrderName, err)
	}
	crashpoint.Hit("finish.moved")
	e.orderEnded(o, out.Status, out.StartedAt, out.FinishedAt)
	attrs := []any{"run_id", o.RunID, "trace_id", o.TraceID, "order", o.OrderName, "status", out.Status}
	if out.Reason != "" { // a success has none, and reason="" reads as if one were missing
		attrs = append(attrs, "reason", out.Reason)
	}
	e.log().InfoContext(ctx, "order ended", attrs...)
	e.changed(o.RunID)
	ended := o
	ended.Status, ended.Reason = out.Status, out.Reason
	if err := e.WakeDependents(ctx, ended); err != nil {
		return true, err
	}
	crashpoint.Hit("finish.woken")
	if !moved.LastOpen {
		// Other orders are open: the last of them to end finalizes the run (or, after a crash
		// between its move and the finalization, the sweeper does).
		return true, nil
	}
	return true, e.FinalizeIfDone(ctx, o.RunID)
}

// WakeDependents looks at each order waiting for o, which has ended, and queues it when all its
// dependencies have ended, or skips it when one that must succeed did not. Its cost grows with
// the number of o's dependents and their dependencies, never with the size of the run; o itself
// is not read again.
//
// Two dependencies ending at once cannot both miss the wake-up: each writes its own end before
// reading the others', so at least one of them sees both ended. Both may see it; the second
// Enqueue is then a no-op.
func (e *Engine) WakeDependents(ctx context.Context, o domain.OrderRecord) error {
	if len(o.Dependents) == 0 {
		return nil
	}
	deps, err := e.Store.GetOrders(ctx, o.RunID, o.Dependents)
	if err != nil {
		return fmt.Errorf("read dependents of %s: %w", o.OrderName, err)
	}
	for _, d := range deps {
		if d.Status != domain.OrderWaiting {
			continue
		}
		if err := e.wake(ctx, d, o); err != nil {
			return err
		}
	}
	return nil
}

// Wake decides a waiting order's fate from its dependencies: queue it, skip it, or leave it
// waiting (and look again after WaitRecheck when leaveDue is false).
func (e *Engine) Wake(ctx context.Context, d domain.OrderRecord) error {
	return e.wake(ctx, d, domain.OrderRecord{})
}

// wake is Wake knowing one dependency as it ended (ended.RunID is empty when none is known), so
// that only the other dependencies are read: an order that waits for one other costs no read.
func (e *Engine) wake(ctx context.Context, d domain.OrderRecord, ended domain.OrderRecord) error {
	var wake domain.Wake = domain.WakeQueue
	var reason string
	if len(d.Deps) > 0 {
		var deps []domain.OrderRecord
		var read []int
		for _, n := range d.Deps {
			if ended.RunID != "" && n == ended.OrderNum {
				deps = append(deps, ended)
			} else {
				read = append(read, n)
			}
		}
		if len(read) > 0 {
			others, err := e.Store.GetOrders(ctx, d.RunID, read)
			if err != nil {
				return fmt.Errorf("read dependencies of %s: %w", d.OrderName, err)
			}
			deps = append(deps, others...)
		}
		wake, reason = domain.DecideWake(deps)
	}
	switch wake {
	case domain.WakeQueue:
		return e.Enqueue(ctx, d)
	case domain.WakeSkip:
		_, err := e.Finish(ctx, d, []domain.OrderStatus{domain.OrderWaiting}, store.AnyAttempt,
			Outcome{Status: domain.OrderSkipped, Reason: reason})
		return err
	}
	return nil
}

// FinalizeIfDone finalizes a run whose orders have all ended.
func (e *Engine) FinalizeIfDone(ctx context.Context, runID string) error {
	run, err := e.Store.GetRun(ctx, runID)
	if err != nil {
		return fmt.Errorf("read run: %w", err)
	}
	if run.Open > 0 || run.Status.Terminal() {
		return nil
	}
	return e.Finalize(ctx, run, false)
}

// Finalize ends a run exactly once: one conditional write moves it to its final status and
// writes its job_completed event; only the process whose write succeeds goes on to write the
// done object and the final comment, and to delete the run's key (Report). A crash after the move leaves the run
// ended but not reported, and the sweeper reports it.
func (e *Engine) Finalize(ctx context.Context, run domain.Run, deadlinePassed bool) error {
	status := domain.ResolveRunStatus(deadlinePassed, run.Failed, run.TimedOut)
	now := e.now()
	err := e.Store.UpdateRun(ctx, store.RunChange{
		RunID: run.RunID, From: []domain.RunStatus{domain.RunAccepted, domain.RunRunning},
		To: status, FinishedAt: now, Events: []domain.Event{completedEvent(run.TraceID, run.RunID, status, now)},
	})
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finalize run: %w", err)
	}
	e.log().InfoContext(ctx, "run finalized", "run_id", run.RunID, "trace_id", run.TraceID, "status", status)
	crashpoint.Hit("finalize.moved")
	run.Status, run.FinishedAt = status, now
	for _, ob := range e.Observers {
		ob.RunEnded(run)
	}
	e.changed(run.RunID)
	return e.Report(ctx, run)
}

// DoneDocument is what a run's done object holds: its status and a summary, readable without
// access to order data.
type DoneDocument struct {
	RunID      string           `json:"run_id"`
	TraceID    string           `json:"trace_id"`
	FlowID     string           `json:"flow_id"`
	Status     domain.RunStatus `json:"status"`
	Orders     int              `json:"orders"`
	Failed     int              `json:"failed"`
	TimedOut   int              `json:"timed_out"`
	CreatedAt  time.Time        `json:"created_at"`
	FinishedAt time.Time        `json:"finished_at"`
}

// completedEvent is a run's job_completed event, written with the move that ends the run.
func completedEvent(traceID, runID string, status domain.RunStatus, at time.Time) domain.Event {
	return domain.Event{TraceID: traceID, RunID: runID, Epoch: at.UnixNano(), Type: domain.EventJobCompleted,
		Status: string(status), Time: at}
}

// Report writes a finalized run's side effects, each idempotent, then marks it reported. The
// sweeper calls it again for a run that ended but was never reported. (The run's job_completed
// event is already written: the move that ended the run wrote it.)
func (e *Engine) Report(ctx context.Context, run domain.Run) error {
	doc, err := json.Marshal(DoneDocument{RunID: run.RunID, TraceID: run.TraceID, FlowID: run.FlowID, Status: run.Status,
		Orders: run.OrderCount, Failed: run.Failed, TimedOut: run.TimedOut, CreatedAt: run.CreatedAt, FinishedAt: run.FinishedAt})
	if err != nil {
		return err
	}
	if err := e.Done.Put(ctx, blobs.DoneKey(run.RunID), doc); err != nil {
		return fmt.Errorf("write done object: %w", err)
	}
	if err := e.Keys.DeleteRunKey(ctx, run.RunID); err != nil {
		return fmt.Errorf("delete run key: %w", err)
	}
	crashpoint.Hit("report.written")
	for _, f := range e.Finishers {
		if err := f.RunFinished(ctx, run); err != nil {
			return fmt.Errorf("report run: %w", err)
		}
	}
	err = e.Store.UpdateRun(ctx, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{run.Status},
		OnlyIfUnreported: true, To: run.Status, Reported: true})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("mark run reported: %w", err)
	}
	e.changed(run.RunID)
	return nil
}

// TimeOutRun ends every open order of a run whose job deadline passed, then finalizes it as
// timed out.
func (e *Engine) TimeOutRun(ctx context.Context, run domain.Run) error {
	orders, err := e.Store.ListOrders(ctx, run.RunID)
	if err != nil {
		return fmt.Errorf("list orders: %w", err)
	}
	for _, o := range orders {
		if o.Status.Terminal() {
			continue
		}
		const reason = "the job deadline (job_timeout) passed"
		now := e.now()
		_, err := e.Store.UpdateOrder(ctx, store.OrderChange{
			RunID: o.RunID, OrderNum: o.OrderNum, From: []domain.OrderStatus{o.Status}, Attempt: o.Attempt,
			To: domain.OrderTimedOut, FinishedAt: now, Reason: reason,
			Events: endEvents(o, now, domain.OrderTimedOut, reason),
		})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("time out order %s: %w", o.OrderName, err)
		}
		if err == nil {
			e.orderEnded(o, domain.OrderTimedOut, time.Time{}, now)
		}
	}
	run, err = e.Store.GetRun(ctx, run.RunID)
	if err != nil {
		return fmt.Errorf("read run: %w", err)
	}
	if run.Open > 0 {
		// An order moved (to a new attempt, say) between the list and the moves: next sweep.
		return nil
	}
	return e.Finalize(ctx, run, true)
}
