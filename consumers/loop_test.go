package consumers_test

import (
	"context"
	"log/slog"
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

// Consume deletes handled messages in batches, and the last ones when it stops: none is left
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
		_ = consumers.Consume(ctx, q, queues.MaxBatch, slog.New(slog.DiscardHandler), func(context.Context, queues.Message) error {
			if handled.Add(1) == n {
				cancel()
			}
			return nil
		})
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
