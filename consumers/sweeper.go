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
	// Observer is told what each pass did (metrics); optional.
	Observer SweepObserver
}

// SweepObserver is told what each sweeper pass did. It must not block.
type SweepObserver interface {
	Swept(p SweepPass)
}

// SweepPass counts what one pass did, by what it did it to (see the Sweeper).
type SweepPass struct {
	// Actions counts the repairs: "resent" (queued orders), "rechecked" (waiting orders),
	// "recorded" (a running order's stored result), "timed_out" (running orders), "reported",
	// "deadline" and "finalized" (runs).
	Actions map[string]int
	Errors  int
	Failed  bool // the pass could not read what to sweep
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
	pass := SweepPass{Actions: map[string]int{}}
	defer func() {
		if s.Observer != nil {
			s.Observer.Swept(pass)
		}
	}()
	keep := func(action string, err error) {
		if action != "" && err == nil {
			pass.Actions[action]++
		}
		if err != nil {
			pass.Errors++
		}
		if err != nil && first == nil {
			first = err
		}
	}
	due, err := e.Store.DueOrders(ctx, e.Time(), batch)
	if err != nil {
		pass.Failed = true
		return fmt.Errorf("due orders: %w", err)
	}
	for _, o := range due {
		keep(s.sweepOrder(ctx, o))
	}
	runs, err := e.Store.ActiveRuns(ctx, batch)
	if err != nil {
		pass.Failed = true
		return fmt.Errorf("active runs: %w", err)
	}
	for _, r := range runs {
		keep(s.sweepRun(ctx, r))
	}
	return first
}

// sweepOrder repairs one due order and says what it did (SweepPass.Actions).
func (s *Sweeper) sweepOrder(ctx context.Context, o domain.OrderRecord) (string, error) {
	e := s.Engine
	switch o.Status {
	case domain.OrderWaiting:
		return "rechecked", e.RecheckWaiting(ctx, o)
	case domain.OrderQueued:
		e.Logger().InfoContext(ctx, "re-sending order stuck in queued", "run_id", o.RunID, "order", o.OrderName)
		return "resent", e.Resend(ctx, o)
	case domain.OrderRunning:
		key := blobs.ResultKey(o.RunID, o.OrderNum, o.Attempt)
		if data, err := e.Blobs.Get(ctx, key); err == nil {
			return "recorded", s.Orchestrator.RecordObject(ctx, key, data)
		} else if !errors.Is(err, blobs.ErrNotFound) {
			return "", fmt.Errorf("look for result: %w", err)
		}
		reason := fmt.Sprintf("timed out: no result within the order's timeout of %ds", o.Timeout)
		_, err := e.Finish(ctx, o, []domain.OrderStatus{domain.OrderRunning}, o.Attempt,
			engine.Outcome{Status: domain.OrderTimedOut, Reason: reason})
		return "timed_out", err
	}
	return "", nil
}

// sweepRun repairs one active run and says what it did (SweepPass.Actions).
func (s *Sweeper) sweepRun(ctx context.Context, r domain.Run) (string, error) {
	e := s.Engine
	switch {
	case r.Status.Terminal():
		return "reported", e.Report(ctx, r)
	case e.Time().After(r.Deadline):
		e.Logger().InfoContext(ctx, "job deadline passed", "run_id", r.RunID, "trace_id", r.TraceID)
		return "deadline", e.TimeOutRun(ctx, r)
	case r.Open == 0 && r.Status == domain.RunRunning:
		return "finalized", e.Finalize(ctx, r, false)
	}
	return "", nil
}
