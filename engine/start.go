package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/store"
)

// NewRun is the run of an accepted request with its planned orders, as inserted at now. Each
// order whose reasons entry is set (its code or secrets could not be had, or intake gave up on
// the whole request) is made failed with that reason: it never runs, its run counts it as ended,
// and as failed when it must succeed. reasons may be shorter than orders.
func (e *Engine) NewRun(req domain.Request, orders []domain.OrderRecord, reasons []string, now time.Time) domain.Run {
	job := req.Job
	run := domain.Run{
		RunID: req.RunID, TraceID: req.TraceID, FlowID: req.FlowID, Username: job.Username, GitRepo: job.GitRepo,
		PRNumber: job.PRNumber, IssueNumber: job.IssueNumber, CommitHash: job.CommitHash, CommentTag: job.PRCommentSearchTag,
		Source: req.Source, Status: domain.RunAccepted, OrderCount: len(orders), Open: len(orders),
		CreatedAt: now, Deadline: now.Add(time.Duration(job.JobTimeout) * time.Second), PresignExpiry: job.PresignExpiry,
		DoneEndpoint: req.DoneEndpoint,
	}
	if run.CommentTag == "" {
		run.CommentTag = "iac-ci-" + req.TraceID
	}
	for i := range orders {
		orders[i].DueAt = now.Add(e.WaitRecheckPeriod())
		if i >= len(reasons) || reasons[i] == "" {
			continue
		}
		code := -1
		o := &orders[i]
		o.Status, o.Reason, o.ExitCode, o.FinishedAt, o.DueAt = domain.OrderFailed, reasons[i], &code, now, time.Time{}
		run.Open--
		if o.MustSucceed {
			run.Failed++
		}
	}
	return run
}

// CreateRun inserts a run made by NewRun with its orders. The orders that wait for nothing are
// inserted queued, with the events of that move (QueueFirst), so that queueing them costs no
// write of its own: their messages are then sent with SendAll. Inserting a run that exists
// changes nothing: a second intake of the request racing this one leaves the stored run as the
// first made it, and every move from here on is conditional on the stored state.
func (e *Engine) CreateRun(ctx context.Context, run domain.Run, orders []domain.OrderRecord) error {
	queued := e.QueueFirst(orders, run.CreatedAt)
	if err := e.Store.CreateRun(ctx, run, orders, queued...); err != nil {
		return fmt.Errorf("insert run: %w", err)
	}
	return nil
}

// StartRun moves an inserted run from accepted to running, with the history of its acceptance
// (source says who sent it) and its start. A run whose orders all ended, and finalized it, before
// this move still gets those entries in its history.
func (e *Engine) StartRun(ctx context.Context, run domain.Run, source string) error {
	now := e.now()
	events := []domain.Event{
		{TraceID: run.TraceID, RunID: run.RunID, Epoch: run.CreatedAt.UnixNano(), Type: domain.EventRunAccepted,
			Status: string(domain.RunAccepted), Details: source, Time: run.CreatedAt},
		{TraceID: run.TraceID, RunID: run.RunID, Epoch: now.UnixNano(), Type: domain.EventRunStarted,
			Status: string(domain.RunRunning), Time: now},
	}
	err := e.Store.UpdateRun(ctx, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunAccepted},
		To: domain.RunRunning, Events: events})
	switch {
	case errors.Is(err, store.ErrConflict):
		if err := e.Store.AppendEvents(ctx, events...); err != nil {
			e.log().WarnContext(ctx, "write run events", "run_id", run.RunID, "trace_id", run.TraceID, "err", err)
		}
	case err != nil:
		return fmt.Errorf("start run: %w", err)
	}
	e.changed(run.RunID)
	return nil
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
func (e *Engine) Claim(ctx context.Context, msg domain.OrderMessage, receiveCount int) (domain.OrderRecord, bool, error) {
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
			change.Events = []domain.Event{RunningEvent(prev)}
			change.Events[0].Details += " abandoned: its worker stopped answering"
		default:
			return prev, false, nil
		}
		change.From, change.Attempt, timeout = []domain.OrderStatus{prev.Status}, prev.Attempt, prev.Timeout
	}
	now := e.now()
	change.StartedAt, change.DueAt = now, now.Add(time.Duration(timeout)*time.Second+e.GracePeriod())
	moved, err := e.Store.UpdateOrder(ctx, change)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return prev, false, nil
	}
	if err != nil {
		return prev, false, fmt.Errorf("claim order: %w", err)
	}
	o := moved.Order
	e.log().InfoContext(ctx, "order claimed", "run_id", o.RunID, "trace_id", o.TraceID, "order", o.OrderName, "attempt", o.Attempt)
	e.changed(o.RunID)
	return o, true, nil
}

// RecheckWaiting wakes a waiting order whose dependencies all ended (Wake), and otherwise puts
// its next check WaitRecheck later: the sweeper's repair of a wake-up a crash lost.
func (e *Engine) RecheckWaiting(ctx context.Context, o domain.OrderRecord) error {
	if err := e.Wake(ctx, o); err != nil {
		return err
	}
	_, err := e.Store.UpdateOrder(ctx, store.OrderChange{RunID: o.RunID, OrderNum: o.OrderNum,
		From: []domain.OrderStatus{domain.OrderWaiting}, Attempt: store.AnyAttempt, To: domain.OrderWaiting,
		DueAt: e.now().Add(e.WaitRecheckPeriod())})
	if errors.Is(err, store.ErrConflict) {
		return nil // Wake moved it
	}
	return err
}

// NoteLaunch records in an order's history where its attempt was started (a CodeBuild build, an
// SSM command) and where that launch keeps its own log. It moves nothing.
func (e *Engine) NoteLaunch(ctx context.Context, o domain.OrderRecord, details string) error {
	now := e.now()
	ev := orderEvent(o, now, string(domain.OrderRunning), fmt.Sprintf("attempt %d: %s", o.Attempt, details))
	ev.Type = domain.EventOrderLaunched
	if err := e.Store.AppendEvents(ctx, ev); err != nil {
		return fmt.Errorf("note the launch of %s: %w", o.OrderName, err)
	}
	return nil
}

// PutBack returns an order whose launch its target turned away for capacity (throttling, an
// account's limit of running builds) from running to queued, and sends its message again after
// delay. The claimed attempt never started, so it runs nothing; the next claim is a new attempt.
// The message that carried the claim is the caller's to delete: a target at capacity is not a
// problem of the message, and must not count towards dead-lettering it. It is a no-op when the
// order is no longer running that attempt. A crash between the move and the send is repaired by
// the sweeper, which re-sends orders queued past their due time.
func (e *Engine) PutBack(ctx context.Context, o domain.OrderRecord, delay time.Duration, reason string) error {
	delay = min(max(delay, 0), queues.MaxDelay)
	now := e.now()
	details := fmt.Sprintf("attempt %d not started: %s; tried again in %s", o.Attempt, reason, delay.Round(time.Second))
	_, err := e.Store.UpdateOrder(ctx, store.OrderChange{
		RunID: o.RunID, OrderNum: o.OrderNum, From: []domain.OrderStatus{domain.OrderRunning}, Attempt: o.Attempt,
		To: domain.OrderQueued, QueuedAt: now, DueAt: now.Add(delay + e.requeueAfter()),
		Events: []domain.Event{orderEvent(o, now, string(domain.OrderQueued), details)},
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("put back order %s: %w", o.OrderName, err)
	}
	e.changed(o.RunID)
	// Should the send fail, the order is queued: the sweeper sends it after its due time.
	return e.send(ctx, o, delay)
}
