package engine_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
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

// openEmbedded opens the embedded queues and store on a new database.
func openEmbedded(t *testing.T) (*sqlitequeue.Broker, *sqlitestore.Store) {
	t.Helper()
	return sqlitedbtest.Ports(t, sqlitedbtest.Open(t, ""))
}

// Ending an order reads its dependents, and of their dependencies only the others: an order
// waiting for the one that ended alone is queued (or skipped) without reading it again.
func TestFinishReadsOnlyTheOtherDependencies(t *testing.T) {
	broker, inner := openEmbedded(t)
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

// A run's first orders inserted queued (QueueFirst, then CreateRun with its events, then
// SendAll) are stored, recorded and sent exactly as EnqueueAll moves and sends them after an
// insert as waiting: same status, times and events, one message each.
func TestQueueFirstIsEnqueueAllWithoutTheMoves(t *testing.T) {
	broker, st := openEmbedded(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	e := &engine.Engine{Store: st, Queues: broker, RequeueAfter: 3 * time.Minute, Now: func() time.Time { return now }}

	// 1 and 3 wait for nothing, 2 waits for 1, 4 failed at intake.
	newRun := func() (domain.Run, []domain.OrderRecord) {
		run := domain.Run{RunID: domain.NewRunID(now), TraceID: domain.NewTraceID(), Status: domain.RunAccepted,
			OrderCount: 4, Open: 3, CreatedAt: now, Deadline: now.Add(time.Hour)}
		orders := make([]domain.OrderRecord, 4)
		for i := range orders {
			orders[i] = domain.OrderRecord{RunID: run.RunID, TraceID: run.TraceID, OrderNum: i + 1,
				OrderName: "order-" + domain.OrderNumString(i+1), Target: domain.TargetLambda, MustSucceed: true,
				Timeout: 60, Status: domain.OrderWaiting, DueAt: now.Add(time.Minute)}
		}
		orders[1].Deps, orders[0].Dependents = []int{1}, []int{2}
		orders[3].Status, orders[3].DueAt, orders[3].FinishedAt = domain.OrderFailed, time.Time{}, now
		return run, orders
	}
	queue, err := broker.Queue(queues.Orders(string(domain.TargetLambda)))
	if err != nil {
		t.Fatal(err)
	}
	sent := func() []int {
		msgs, err := queue.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch})
		if err != nil {
			t.Fatal(err)
		}
		var nums []int
		for _, m := range msgs {
			var om domain.OrderMessage
			if err := json.Unmarshal(m.Body, &om); err != nil {
				t.Fatal(err)
			}
			nums = append(nums, om.OrderNum)
		}
		slices.Sort(nums)
		return nums
	}
	// What is stored of a run, without its ids.
	stored := func(run domain.Run) ([]domain.OrderRecord, []domain.Event) {
		orders, err := st.ListOrders(t.Context(), run.RunID)
		if err != nil {
			t.Fatal(err)
		}
		events, err := st.ListEvents(t.Context(), run.TraceID)
		if err != nil {
			t.Fatal(err)
		}
		for i := range orders {
			orders[i].RunID, orders[i].TraceID = "", ""
		}
		for i := range events {
			events[i].RunID, events[i].TraceID = "", ""
		}
		return orders, events
	}

	moved, movedOrders := newRun()
	if err := st.CreateRun(t.Context(), moved, movedOrders); err != nil {
		t.Fatal(err)
	}
	if err := e.EnqueueAll(t.Context(), []domain.OrderRecord{movedOrders[0], movedOrders[2]}); err != nil {
		t.Fatalf("EnqueueAll: %v", err)
	}
	wantOrders, wantEvents := stored(moved)
	if got := sent(); !slices.Equal(got, []int{1, 3}) {
		t.Fatalf("EnqueueAll sent orders %v, want [1 3]", got)
	}

	inserted, insertedOrders := newRun()
	events := e.QueueFirst(insertedOrders, now)
	if err := st.CreateRun(t.Context(), inserted, insertedOrders, events...); err != nil {
		t.Fatal(err)
	}
	var queued []domain.OrderRecord
	for _, o := range insertedOrders {
		if o.Status == domain.OrderQueued {
			queued = append(queued, o)
		}
	}
	if err := e.SendAll(t.Context(), queued); err != nil {
		t.Fatalf("SendAll: %v", err)
	}
	gotOrders, gotEvents := stored(inserted)
	if got := sent(); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("SendAll sent orders %v, want [1 3]", got)
	}
	if !reflect.DeepEqual(gotOrders, wantOrders) {
		t.Errorf("orders inserted queued:\n got %+v\nwant %+v", gotOrders, wantOrders)
	}
	if !reflect.DeepEqual(gotEvents, wantEvents) || len(gotEvents) != 2 {
		t.Errorf("events of the orders inserted queued:\n got %+v\nwant %+v (two queued events)", gotEvents, wantEvents)
	}
}
