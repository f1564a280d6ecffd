package consumers_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/queues"
)

// deleteCounter counts Delete calls and the receipts they carried.
type deleteCounter struct {
	queues.Queue
	mu       sync.Mutex
	calls    int
	receipts int
}

func (q *deleteCounter) Delete(ctx context.Context, receipts ...string) error {
	q.mu.Lock()
	q.calls++
	q.receipts += len(receipts)
	q.mu.Unlock()
	return q.Queue.Delete(ctx, receipts...)
}

// A Loop deletes handled messages in batches, and the last ones when it stops: none is left
// to come back.
func TestConsumeDeletesInBatchesAndAllWhenStopping(t *testing.T) {
	t.Parallel()
	raw := sqlitedbtest.Queue(t, "work")
	const n = 25
	for i := range n {
		if err := raw.Send(t.Context(), queues.Outgoing{Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	q := &deleteCounter{Queue: raw}
	ctx, cancel := context.WithCancel(t.Context())
	var handled atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		l := &consumers.Loop{Queue: q, Batch: queues.MaxBatch, Log: slog.New(slog.DiscardHandler),
			Handler: func(context.Context, queues.Message) error {
				if handled.Add(1) == n {
					cancel()
				}
				return nil
			}}
		l.Run(ctx)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d", handled.Load(), n)
	}
	q.mu.Lock()
	calls, receipts := q.calls, q.receipts
	q.mu.Unlock()
	if receipts != n || calls > 4 {
		t.Errorf("deletes: %d calls for %d receipts, want %d receipts in at most 4 calls", calls, receipts, n)
	}
	left, err := raw.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch, Visibility: time.Second})
	if err != nil || len(left) != 0 {
		t.Errorf("after Consume stopped: %d messages left (%v), want none", len(left), err)
	}
}

// deleteRecorder is a queue that records the receipts of each Delete call.
type deleteRecorder struct {
	queues.Queue
	mu      sync.Mutex
	batches [][]string
}

func (q *deleteRecorder) Name() string { return "q" }

func (q *deleteRecorder) Delete(_ context.Context, receipts ...string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.batches = append(q.batches, receipts)
	return nil
}

func (q *deleteRecorder) deleted() (calls int, receipts []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, b := range q.batches {
		receipts = append(receipts, b...)
	}
	return len(q.batches), receipts
}

func TestDeleterDeletesTenToACallAndNothingLate(t *testing.T) {
	t.Parallel()
	q := &deleteRecorder{}
	d := consumers.NewDeleter(q, consumers.DeleteDelay, slog.New(slog.DiscardHandler))
	var want []string
	for i := range 25 {
		r := string(rune('a' + i))
		want = append(want, r)
		d.Add(r)
	}
	if calls, got := q.deleted(); calls != 2 || len(got) != 20 {
		t.Fatalf("after 25 receipts: %d calls deleting %d, want 2 calls deleting 20 at once", calls, len(got))
	}
	deadline := time.Now().Add(consumers.DeleteDelay + 2*time.Second)
	for time.Now().Before(deadline) {
		if _, got := q.deleted(); len(got) == 25 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	calls, got := q.deleted()
	if calls != 3 || !slices.Equal(got, want) {
		t.Fatalf("after the delay: %d calls deleting %v, want 3 calls deleting %v", calls, got, want)
	}
	d.Add("late")
	d.Flush()
	if _, got := q.deleted(); got[len(got)-1] != "late" {
		t.Errorf("Flush left a receipt: %v", got)
	}
}

type oneMessage struct {
	deleteRecorder
	given   atomic.Bool
	extends atomic.Int64
}

func (q *oneMessage) Receive(ctx context.Context, opts queues.ReceiveOptions) ([]queues.Message, error) {
	if q.given.CompareAndSwap(false, true) {
		return []queues.Message{{ID: "m", Receipt: "r"}}, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (q *oneMessage) ChangeVisibility(context.Context, string, time.Duration) error {
	q.extends.Add(1)
	return nil
}

// A slow handler's message is kept hidden while it runs, and deleted once it succeeded; a failed
// one is left to come back.
func TestLoopKeepsSlowWorkHiddenAndDeletesWhatSucceeded(t *testing.T) {
	t.Parallel()
	for _, fail := range []bool{false, true} {
		q := &oneMessage{}
		log := slog.New(slog.DiscardHandler)
		c := &consumers.Loop{Queue: q, Batch: 1, Deleter: consumers.NewDeleter(q, consumers.DeleteDelay, log), Log: log, KeepHidden: 300 * time.Millisecond}
		ctx, cancel := context.WithCancel(t.Context())
		handled, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			c.Handler = func(ctx context.Context, m queues.Message) error {
				defer close(handled)
				time.Sleep(350 * time.Millisecond)
				if fail {
					return errors.New("intake failed")
				}
				return nil
			}
			c.Run(ctx)
		}()
		<-handled
		cancel()
		<-stopped
		c.Deleter.Flush()
		if n := q.extends.Load(); n < 2 {
			t.Errorf("fail %v: a 350 ms handler with a 300 ms visibility was extended %d times, want at least 2", fail, n)
		}
		if _, got := q.deleted(); len(got) != map[bool]int{false: 1, true: 0}[fail] {
			t.Errorf("fail %v: deleted %v", fail, got)
		}
	}
}

// receiveCounter records the Max of each receive that returned messages.
type receiveCounter struct {
	queues.Queue
	mu   sync.Mutex
	maxs []int
}

func (q *receiveCounter) Receive(ctx context.Context, opts queues.ReceiveOptions) ([]queues.Message, error) {
	msgs, err := q.Queue.Receive(ctx, opts)
	if len(msgs) > 0 {
		q.mu.Lock()
		q.maxs = append(q.maxs, opts.Max)
		q.mu.Unlock()
	}
	return msgs, err
}

// A pool of handlers reads the queue several messages a receive, never holds more messages than
// it has idle handlers, and handles and deletes every one.
func TestLoopPoolReceivesForEveryIdleHandler(t *testing.T) {
	t.Parallel()
	raw := sqlitedbtest.Queue(t, "work")
	const n, handlers = 24, 4
	for i := range n {
		if err := raw.Send(t.Context(), queues.Outgoing{Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	q := &receiveCounter{Queue: raw}
	log := slog.New(slog.DiscardHandler)
	c := &consumers.Loop{Queue: q, Batch: queues.MaxBatch, Deleter: consumers.NewDeleter(raw, consumers.DeleteDelay, log), Log: log, Handlers: handlers}
	ctx, cancel := context.WithCancel(t.Context())
	var (
		running, peak, handled atomic.Int64
		all                    = make(chan struct{})
	)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		c.Handler = func(ctx context.Context, m queues.Message) error {
			now := running.Add(1)
			for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			running.Add(-1)
			if handled.Add(1) == n {
				close(all)
			}
			return nil
		}
		c.Run(ctx)
	}()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d messages", handled.Load(), n)
	}
	cancel()
	<-stopped
	c.Deleter.Flush()
	if p := peak.Load(); p > handlers || p < 2 {
		t.Errorf("handlers at once: peak %d, want 2 to %d", p, handlers)
	}
	q.mu.Lock()
	maxs := slices.Clone(q.maxs)
	q.mu.Unlock()
	if len(maxs) == 0 || maxs[0] != handlers || slices.Max(maxs) > handlers {
		t.Errorf("receive sizes %v: want the first to ask for %d and none for more", maxs, handlers)
	}
	if len(maxs) >= n {
		t.Errorf("%d receives for %d messages: want fewer receives than messages", len(maxs), n)
	}
	left, err := raw.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch, Visibility: time.Second})
	if err != nil || len(left) != 0 {
		t.Errorf("after the pool: %d messages left (%v), want every one deleted", len(left), err)
	}
}
