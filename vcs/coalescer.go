package vcs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Coalescer paces the publishing of runs: however often a run changes, it is published at most
// once per interval, always with its state as loaded at publishing time, so the last change is
// never lost, only merged into a later publish.
//
// Publishes are made one at a time, for all runs together. That keeps a run's publishes in order
// (a slow publish of an older state can never land after a newer one), and follows GitHub's advice
// to make content-creating requests serially to stay clear of its secondary rate limits.
//
// A failed load or publish is logged and not retried on its own: the next RunChanged or Flush of
// that run tries again. So a provider that is down costs one failed call per change, and never
// holds up the engine.
type Coalescer struct {
	load     func(ctx context.Context, runID string) (RunView, error)
	publish  func(ctx context.Context, v RunView) error
	interval time.Duration
	log      *slog.Logger

	wake chan struct{} // holds one token when there may be work; never blocks a sender

	mu    sync.Mutex
	dirty map[string]bool      // runs changed since their last publish started
	last  map[string]time.Time // when each recently published run was last published

	publishing sync.Mutex // held for each load and publish
}

// NewCoalescer returns a Coalescer that loads a run's view with load and publishes it with
// publish, at most once per interval per run. A nil log discards.
func NewCoalescer(load func(ctx context.Context, runID string) (RunView, error),
	publish func(ctx context.Context, v RunView) error, interval time.Duration, log *slog.Logger) *Coalescer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coalescer{
		load:     load,
		publish:  publish,
		interval: interval,
		log:      log,
		wake:     make(chan struct{}, 1),
		dirty:    map[string]bool{},
		last:     map[string]time.Time{},
	}
}

// RunChanged notes that a run changed. It never blocks; calls for one run before its next publish
// are merged into that publish. Run must be running for the change to be published.
func (c *Coalescer) RunChanged(runID string) {
	c.mu.Lock()
	c.dirty[runID] = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run publishes changed runs as their intervals allow, until ctx ends.
func (c *Coalescer) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := c.publishDue(ctx)
		if ctx.Err() != nil {
			return
		}
		var tick <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-tick:
		}
	}
}

// Flush loads and publishes a run now, whatever its interval, and waits for the publish. The
// engine calls it when a run is finalized, so the final state is published before it reports
// the run done.
func (c *Coalescer) Flush(ctx context.Context, runID string) error {
	c.mu.Lock()
	delete(c.dirty, runID) // this publish covers every change made so far
	c.mu.Unlock()
	return c.publishRun(ctx, runID)
}

// PublishDue publishes now every changed run whose interval has passed, and waits for it: for a
// host that is frozen between its invocations (a Lambda function), where Run's timer would fire
// only in a later one.
func (c *Coalescer) PublishDue(ctx context.Context) { c.publishDue(ctx) }

// publishDue publishes every changed run whose interval has passed, and returns how long until
// the next changed run's interval passes, or -1 when no run is waiting.
func (c *Coalescer) publishDue(ctx context.Context) time.Duration {
	for ctx.Err() == nil {
		runID, wait := c.nextDue()
		if runID == "" {
			return wait
		}
		if err := c.publishRun(ctx, runID); err != nil {
			c.log.WarnContext(ctx, "publish run", "run_id", runID, "err", err)
		}
	}
	return -1
}

// nextDue picks a changed run that may be published now and clears its change, or says how long
// until one may be. It also forgets publish times that no longer hold anything back, so the
// Coalescer's memory follows the runs in flight, not every run ever seen.
func (c *Coalescer) nextDue() (string, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	wait := time.Duration(-1)
	for runID, at := range c.last {
		if !c.dirty[runID] && now.Sub(at) >= c.interval {
			delete(c.last, runID)
		}
	}
	for runID := range c.dirty {
		left := c.interval - now.Sub(c.last[runID])
		if _, seen := c.last[runID]; !seen || left <= 0 {
			delete(c.dirty, runID)
			return runID, 0
		}
		if wait < 0 || left < wait {
			wait = left
		}
	}
	return "", wait
}

func (c *Coalescer) publishRun(ctx context.Context, runID string) error {
	c.publishing.Lock()
	defer c.publishing.Unlock()
	c.mu.Lock()
	c.last[runID] = time.Now()
	c.mu.Unlock()
	v, err := c.load(ctx, runID)
	if err != nil {
		return fmt.Errorf("load run %s: %w", runID, err)
	}
	if err := c.publish(ctx, v); err != nil {
		return fmt.Errorf("publish run %s: %w", runID, err)
	}
	return nil
}
