package engine_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
	"github.com/iac-ci/iac-ci/store"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
)

// readCounter is a store that records which orders each GetOrders call read.
type readCounter struct {
	store.Store
	mu    sync.Mutex
	reads [][]int
}

func (s *readCounter) GetOrders(ctx context.Context, runID string, nums []int) ([]domain.OrderRecord, error) {
	s.mu.Lock()
	s.reads = append(s.reads, slices.Clone(nums))
	s.mu.Unlock()
	return s.Store.GetOrders(ctx, runID, nums)
}

// Ending an order reads its dependents, and of their dependencies only the others: an order
// waiting for the one that ended alone is queued (or skipped) without reading it again.
func TestFinishReadsOnlyTheOtherDependencies(t *testing.T) {
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "iac-ci.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	broker, err := sqlitequeue.Open(db, queues.Topology())
	if err != nil {
		t.Fatal(err)
	}
	inner, err := sqlitestore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	st := &readCounter{Store: inner}
	e := &engine.Engine{Store: st, Queues: broker}

	// 1 -> 2 (waits for 1 alone), 1 + 3 -> 4 (waits for 1 and 3).
	now := time.Now()
	run := domain.Run{RunID: domain.NewRunID(now), TraceID: domain.NewTraceID(), Status: domain.RunRunning,
		OrderCount: 4, Open: 4, CreatedAt: now, Deadline: now.Add(time.Hour)}
	orders := make([]domain.OrderRecord, 4)
	for i := range orders {
		orders[i] = domain.OrderRecord{RunID: run.RunID, TraceID: run.TraceID, OrderNum: i + 1,
			OrderName: domain.OrderNumString(i + 1), Target: domain.TargetLambda, MustSucceed: true, Timeout: 60,
			Status: domain.OrderWaiting, DueAt: now.Add(time.Hour)}
	}
	orders[0].Status, orders[0].Attempt, orders[0].StartedAt = domain.OrderRunning, 1, now
	orders[0].Dependents = []int{2, 4}
	orders[1].Deps = []int{1}
	orders[3].Deps = []int{1, 3}
	orders[2].Status = domain.OrderQueued
	if err := st.CreateRun(t.Context(), run, orders); err != nil {
		t.Fatal(err)
	}
	moved, err := e.Finish(t.Context(), orders[0], []domain.OrderStatus{domain.OrderRunning}, 1,
		engine.Outcome{Status: domain.OrderSucceeded})
	if err != nil || !moved {
		t.Fatalf("Finish: moved %v, %v", moved, err)
	}
	if want := [][]int{{2, 4}, {3}}; !slices.EqualFunc(st.reads, want, slices.Equal) {
		t.Errorf("orders read: got %v, want %v (the dependents, then order 4's other dependency)", st.reads, want)
	}
	got, err := st.GetOrders(t.Context(), run.RunID, []int{2, 4})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Status != domain.OrderQueued || got[1].Status != domain.OrderWaiting {
		t.Errorf("after order 1 succeeded: order 2 %s (want queued), order 4 %s (want waiting for 3)", got[0].Status, got[1].Status)
	}
}
