package sqlitestore_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/store"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
	"github.com/iac-ci/iac-ci/store/storetest"
)

type setup struct {
	path  string
	store *sqlitestore.Store
}

// newStore opens a store on a fresh database file.
func newStore(t testing.TB) setup {
	t.Helper()
	path := filepath.Join(t.TempDir(), "iac-ci.db")
	return setup{path: path, store: openStore(t, path)}
}

func openStore(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := sqlitestore.Open(db)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Every subtest shares one database, as the engine's consumers do.
func TestConformance(t *testing.T) {
	s := newStore(t).store
	storetest.Run(t, storetest.Harness{Open: func(*testing.T) store.Store { return s }})
}

func newRun(n int) (domain.Run, []domain.OrderRecord) {
	now := time.Now()
	run := domain.Run{RunID: domain.NewRunID(now), TraceID: domain.NewTraceID(), Status: domain.RunAccepted,
		OrderCount: n, Open: n, CreatedAt: now, Deadline: now.Add(time.Hour)}
	orders := make([]domain.OrderRecord, n)
	for i := range orders {
		orders[i] = domain.OrderRecord{RunID: run.RunID, OrderNum: i + 1, TraceID: run.TraceID,
			OrderName: fmt.Sprintf("order-%d", i+1), Target: domain.TargetLambda, MustSucceed: true, Timeout: 60,
			Status: domain.OrderQueued, DueAt: now.Add(time.Hour)}
	}
	return run, orders
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	run, orders := newRun(1)
	if err := st.store.CreateRun(t.Context(), run, orders); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	again := openStore(t, st.path)
	if _, err := again.GetRun(t.Context(), run.RunID); err != nil {
		t.Fatalf("GetRun after reopening: %v", err)
	}
}

// A failure part-way through CreateRun leaves nothing behind: the run and its orders are one
// transaction.
func TestCreateRunIsAtomic(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	run, orders := newRun(1000)
	db, err := sqlitedb.Open(st.path)
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	defer db.Close()
	// A stray row with the key of the last order makes its insert fail.
	if _, err := db.Exec(`INSERT INTO store_orders (run_id, order_num, status, attempt, record) VALUES (?, ?, 'queued', 0, '{}')`,
		run.RunID, 1000); err != nil {
		t.Fatalf("insert stray order: %v", err)
	}
	if err := st.store.CreateRun(t.Context(), run, orders); err == nil {
		t.Fatalf("CreateRun over a stray order: got nil, want an error")
	}
	if _, err := st.store.GetRun(t.Context(), run.RunID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRun after a failed CreateRun: got %v, want ErrNotFound", err)
	}
	if _, err := st.store.GetOrder(t.Context(), run.RunID, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetOrder after a failed CreateRun: got %v, want ErrNotFound", err)
	}
}

func TestCreateRunRefusesForeignOrders(t *testing.T) {
	t.Parallel()
	s := newStore(t).store
	run, orders := newRun(2)
	orders[1].RunID = "another-run"
	if err := s.CreateRun(t.Context(), run, orders); err == nil {
		t.Fatalf("CreateRun with an order of another run: got nil, want an error")
	}
	run, orders = newRun(2)
	orders[1].OrderNum = 1
	if err := s.CreateRun(t.Context(), run, orders); err == nil {
		t.Fatalf("CreateRun with a repeated order number: got nil, want an error")
	}
	if _, err := s.GetRun(t.Context(), run.RunID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRun of a refused run: got %v, want ErrNotFound", err)
	}
}

func TestCreateRunOfAThousandOrders(t *testing.T) {
	t.Parallel()
	s := newStore(t).store
	run, orders := newRun(1000)
	start := time.Now()
	if err := s.CreateRun(t.Context(), run, orders); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	t.Logf("CreateRun of 1000 orders: %v", time.Since(start))
	got, err := s.ListOrders(t.Context(), run.RunID)
	if err != nil || len(got) != 1000 {
		t.Fatalf("ListOrders: got %d orders, %v, want 1000", len(got), err)
	}
}

// BenchmarkUpdateOrder measures one conditional move: "claim" re-claims a running order (a
// non-terminal move: one row), "finish" moves queued orders to succeeded (a terminal move: the
// order and its run's counters).
func BenchmarkUpdateOrder(b *testing.B) {
	b.Run("claim", func(b *testing.B) {
		s := newStore(b).store
		run, orders := newRun(1)
		orders[0].Status, orders[0].Attempt = domain.OrderRunning, 1
		if err := s.CreateRun(b.Context(), run, orders); err != nil {
			b.Fatalf("CreateRun: %v", err)
		}
		due := time.Now().Add(time.Hour)
		attempt := 1
		for b.Loop() {
			_, err := s.UpdateOrder(b.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1,
				From: []domain.OrderStatus{domain.OrderRunning}, Attempt: attempt, To: domain.OrderRunning,
				NextAttempt: true, DueAt: due, StartedAt: due})
			if err != nil {
				b.Fatalf("UpdateOrder: %v", err)
			}
			attempt++
		}
	})
	b.Run("finish", func(b *testing.B) {
		s := newStore(b).store
		const perRun = 1000
		var runs []string
		next := 0
		b.ResetTimer()
		for b.Loop() {
			if next%perRun == 0 {
				b.StopTimer()
				run, orders := newRun(perRun)
				if err := s.CreateRun(b.Context(), run, orders); err != nil {
					b.Fatalf("CreateRun: %v", err)
				}
				runs = append(runs, run.RunID)
				b.StartTimer()
			}
			_, err := s.UpdateOrder(b.Context(), store.OrderChange{RunID: runs[len(runs)-1], OrderNum: next%perRun + 1,
				From: []domain.OrderStatus{domain.OrderQueued}, Attempt: store.AnyAttempt, To: domain.OrderSucceeded,
				FinishedAt: time.Now(), ExitCode: new(int)})
			if err != nil {
				b.Fatalf("UpdateOrder: %v", err)
			}
			next++
		}
	})
}
