package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
)

// Sweeper finishes what crashes and lost messages leave behind. On AWS it runs every minute
// from EventBridge Scheduler; embedded, on a ticker. Each pass:
//   - an order running past its timeout plus grace is timed out (unless its result is stored
//     after all, when it is recorded);
//   - an order queued for longer than RequeueAfter has its message sent again;
//   - a waiting order whose dependencies all ended is queued or skipped;
//   - a run past its job deadline has its open orders timed out and is finalized;
//   - a run whose orders all ended is finalized, and one finalized but not reported is reported.
type Sweeper struct {
	Engine       *engine.Engine
	Orchestrator *Orchestrator
	Interval     time.Duration
	// Batch bounds how many orders and runs one pass looks at.
	Batch int
}

// Run sweeps every Interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.Engine.Logger().WarnContext(ctx, "sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep makes one pass; it goes on past an error in one order or run and returns the first.
func (s *Sweeper) Sweep(ctx context.Context) error {
	e := s.Engine
	batch := s.Batch
	if batch <= 0 {
		batch = 500
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	due, err := e.Store.DueOrders(ctx, e.Time(), batch)
	if err != nil {
		return fmt.Errorf("due orders: %w", err)
	}
	for _, o := range due {
		keep(s.sweepOrder(ctx, o))
	}
	runs, err := e.Store.ActiveRuns(ctx, batch)
	if err != nil {
		return fmt.Errorf("active runs: %w", err)
	}
	for _, r := range runs {
		keep(s.sweepRun(ctx, r))
	}
	return first
}

func (s *Sweeper) sweepOrder(ctx context.Context, o domain.OrderRecord) error {
	e := s.Engine
	switch o.Status {
	case domain.OrderWaiting:
		return e.RecheckWaiting(ctx, o)
	case domain.OrderQueued:
		e.Logger().InfoContext(ctx, "re-sending order stuck in queued", "run_id", o.RunID, "order", o.OrderName)
		return e.Resend(ctx, o)
	case domain.OrderRunning:
		key := blobs.ResultKey(o.RunID, o.OrderNum, o.Attempt)
		if data, err := e.Blobs.Get(ctx, key); err == nil {
			return s.Orchestrator.RecordObject(ctx, key, data)
		} else if !errors.Is(err, blobs.ErrNotFound) {
			return fmt.Errorf("look for result: %w", err)
		}
		reason := fmt.Sprintf("timed out: no result within the order's timeout of %ds", o.Timeout)
		_, err := e.Finish(ctx, o, []domain.OrderStatus{domain.OrderRunning}, o.Attempt,
			engine.Outcome{Status: domain.OrderTimedOut, Reason: reason})
		return err
	}
	return nil
}

func (s *Sweeper) sweepRun(ctx context.Context, r domain.Run) error {
	e := s.Engine
	switch {
	case r.Status.Terminal():
		return e.Report(ctx, r)
	case e.Time().After(r.Deadline):
		e.Logger().InfoContext(ctx, "job deadline passed", "run_id", r.RunID, "trace_id", r.TraceID)
		return e.TimeOutRun(ctx, r)
	case r.Open == 0 && r.Status == domain.RunRunning:
		return e.Finalize(ctx, r, false)
	}
	return nil
}
