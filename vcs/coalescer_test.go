package vcs

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
)

// testLog routes slog into the test's log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// fakeRuns is the load and publish side of a Coalescer under test: each run has a version that
// changes bump, and each publish records the version it saw.
type fakeRuns struct {
	mu        sync.Mutex
	version   map[string]int
	published map[string][]publishRecord
	fail      int // how many of the next publishes fail
	attempts  int
}

type publishRecord struct {
	at      time.Time
	version int
}

func newFakeRuns() *fakeRuns {
	return &fakeRuns{version: map[string]int{}, published: map[string][]publishRecord{}}
}

func (f *fakeRuns) change(c *Coalescer, runID string) {
	f.mu.Lock()
	f.version[runID]++
	f.mu.Unlock()
	c.RunChanged(runID)
}

func (f *fakeRuns) load(_ context.Context, runID string) (RunView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return RunView{Run: domain.Run{RunID: runID, FlowID: strconv.Itoa(f.version[runID])}}, nil
}

func (f *fakeRuns) publish(_ context.Context, v RunView) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail > 0 {
		f.fail--
		return errors.New("provider down")
	}
	version, _ := strconv.Atoi(v.Run.FlowID)
	f.published[v.Run.RunID] = append(f.published[v.Run.RunID], publishRecord{time.Now(), version})
	return nil
}

func (f *fakeRuns) records(runID string) []publishRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]publishRecord(nil), f.published[runID]...)
}

func (f *fakeRuns) attemptCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

// startCoalescer runs a Coalescer until the test ends.
func startCoalescer(t *testing.T, f *fakeRuns, interval time.Duration) *Coalescer {
	c := NewCoalescer(f.load, f.publish, interval, testLog(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCoalescerPacesPublishes(t *testing.T) {
	t.Parallel()
	const interval = 150 * time.Millisecond
	f := newFakeRuns()
	c := startCoalescer(t, f, interval)

	start := time.Now()
	for range 200 {
		f.change(c, "run-a")
		f.change(c, "run-b")
	}
	elapsed := time.Since(start)

	for _, runID := range []string{"run-a", "run-b"} {
		waitFor(t, runID+"'s last change to be published", func() bool {
			recs := f.records(runID)
			return len(recs) > 0 && recs[len(recs)-1].version == 200
		})
	}
	time.Sleep(2 * interval) // nothing more should come
	for _, runID := range []string{"run-a", "run-b"} {
		recs := f.records(runID)
		if limit := 2 + int(elapsed/interval); len(recs) > limit {
			t.Errorf("%s: %d publishes for 200 changes in %v, want at most %d", runID, len(recs), elapsed, limit)
		}
		for i := 1; i < len(recs); i++ {
			// The fake notes the time a little after the Coalescer does; pacing that broke would
			// give gaps near zero, not a few milliseconds short.
			if gap := recs[i].at.Sub(recs[i-1].at); gap < interval*9/10 {
				t.Errorf("%s: publishes %d and %d are %v apart, want at least %v", runID, i-1, i, gap, interval)
			}
		}
		if last := recs[len(recs)-1].version; last != 200 {
			t.Errorf("%s: last published version %d, want 200", runID, last)
		}
	}
}

func TestCoalescerRetriesAFailedPublishAtTheNextChange(t *testing.T) {
	t.Parallel()
	const interval = 20 * time.Millisecond
	f := newFakeRuns()
	f.fail = 1
	c := startCoalescer(t, f, interval)

	f.change(c, "run-a")
	waitFor(t, "the first publish attempt", func() bool { return f.attemptCount() == 1 })
	time.Sleep(10 * interval)
	if got := f.attemptCount(); got != 1 {
		t.Fatalf("publish attempts without a new change: got %d, want 1", got)
	}
	if got := len(f.records("run-a")); got != 0 {
		t.Fatalf("publishes recorded after a failure: got %d, want 0", got)
	}

	f.change(c, "run-a")
	waitFor(t, "the retried publish", func() bool { return len(f.records("run-a")) == 1 })
	if got := f.records("run-a")[0].version; got != 2 {
		t.Fatalf("retried publish saw version %d, want 2", got)
	}
}

func TestCoalescerFlushPublishesNow(t *testing.T) {
	t.Parallel()
	f := newFakeRuns()
	c := startCoalescer(t, f, time.Hour)

	f.change(c, "run-a")
	waitFor(t, "the first publish", func() bool { return len(f.records("run-a")) == 1 })
	f.change(c, "run-a") // held back by the interval
	f.change(c, "run-a")
	if err := c.Flush(t.Context(), "run-a"); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	recs := f.records("run-a")
	if len(recs) != 2 {
		t.Fatalf("publishes after Flush: got %d, want 2", len(recs))
	}
	if recs[1].version != 3 {
		t.Fatalf("Flush published version %d, want 3", recs[1].version)
	}

	f.fail = 1
	if err := c.Flush(t.Context(), "run-a"); err == nil {
		t.Fatalf("Flush with a failing publish: got nil error")
	}
}

func TestCoalescerFlushWithoutRun(t *testing.T) {
	t.Parallel()
	f := newFakeRuns()
	c := NewCoalescer(f.load, f.publish, time.Minute, nil)
	for range 10_000 { // RunChanged must not block though no loop drains it
		c.RunChanged("run-a")
	}
	if err := c.Flush(t.Context(), "run-a"); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := len(f.records("run-a")); got != 1 {
		t.Fatalf("publishes: got %d, want 1", got)
	}
}

func TestCoalescerRunReturnsWhenContextEnds(t *testing.T) {
	t.Parallel()
	f := newFakeRuns()
	c := NewCoalescer(f.load, f.publish, time.Minute, testLog(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	c.RunChanged("run-a")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not return after its context ended")
	}
}
