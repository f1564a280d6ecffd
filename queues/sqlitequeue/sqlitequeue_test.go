package sqlitequeue_test

import (
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/queuetest"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
)

func openBroker(tb testing.TB, db *sql.DB, specs []queues.Spec, opts ...sqlitequeue.Option) *sqlitequeue.Broker {
	tb.Helper()
	b, err := sqlitequeue.Open(db, specs, opts...)
	if err != nil {
		tb.Fatalf("open broker: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func mustQueue(tb testing.TB, b queues.Broker, name string) queues.Queue {
	tb.Helper()
	q, err := b.Queue(name)
	if err != nil {
		tb.Fatalf("Queue(%q): %v", name, err)
	}
	return q
}

func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, queuetest.Harness{Open: func(t *testing.T, specs []queues.Spec) queues.Broker {
		return openBroker(t, sqlitedbtest.Open(t, ""), specs)
	}})
}

// clock is a settable clock for tests that must see time pass without waiting for it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestStaleReceiptIsRejected(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	b := openBroker(t, sqlitedbtest.Open(t, ""), []queues.Spec{{Name: "work", Visibility: 30 * time.Second}}, sqlitequeue.WithClock(clk.Now))
	q := mustQueue(t, b, "work")
	if err := q.Send(t.Context(), queues.Outgoing{Body: []byte(`{"n":1}`)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	first, err := q.Receive(t.Context(), queues.ReceiveOptions{})
	if err != nil || len(first) != 1 {
		t.Fatalf("first Receive: %d messages, error %v", len(first), err)
	}
	clk.Advance(31 * time.Second)
	second, err := q.Receive(t.Context(), queues.ReceiveOptions{})
	if err != nil || len(second) != 1 {
		t.Fatalf("second Receive: %d messages, error %v", len(second), err)
	}

	// The first holder's visibility ran out and someone else has the message now.
	if err := q.ChangeVisibility(t.Context(), first[0].Receipt, time.Minute); !errors.Is(err, queues.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility with the stale receipt: error = %v, want ErrInvalidReceipt", err)
	}
	if err := q.Delete(t.Context(), first[0].Receipt); !errors.Is(err, queues.ErrInvalidReceipt) {
		t.Errorf("Delete with the stale receipt: error = %v, want ErrInvalidReceipt", err)
	}
	if err := q.Delete(t.Context(), second[0].Receipt); err != nil {
		t.Errorf("Delete with the current receipt: %v", err)
	}
	if err := q.Delete(t.Context(), second[0].Receipt); !errors.Is(err, queues.ErrInvalidReceipt) {
		t.Errorf("second Delete of a deleted message: error = %v, want ErrInvalidReceipt", err)
	}
}

func TestReceiptBelongsToItsQueue(t *testing.T) {
	t.Parallel()
	b := openBroker(t, sqlitedbtest.Open(t, ""), []queues.Spec{{Name: "a", Visibility: time.Minute}, {Name: "b", Visibility: time.Minute}})
	a, other := mustQueue(t, b, "a"), mustQueue(t, b, "b")
	if err := a.Send(t.Context(), queues.Outgoing{Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs, err := a.Receive(t.Context(), queues.ReceiveOptions{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %d messages, error %v", len(msgs), err)
	}
	if err := other.Delete(t.Context(), msgs[0].Receipt); !errors.Is(err, queues.ErrInvalidReceipt) {
		t.Errorf("Delete on another queue: error = %v, want ErrInvalidReceipt", err)
	}
	if err := a.Delete(t.Context(), msgs[0].Receipt); err != nil {
		t.Errorf("Delete on its own queue: %v", err)
	}
}

// The port promises that a dead-lettered message keeps its body and ID and starts counting
// receives again in the dead-letter queue.
func TestDeadLetterRestartsReceiveCount(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	b := openBroker(t, sqlitedbtest.Open(t, ""), []queues.Spec{
		{Name: "work", Visibility: 10 * time.Second, DeadLetter: "work-dlq", MaxReceives: 3},
		{Name: "work-dlq", Visibility: 10 * time.Second},
	}, sqlitequeue.WithClock(clk.Now))
	work, dlq := mustQueue(t, b, "work"), mustQueue(t, b, "work-dlq")
	if err := work.Send(t.Context(), queues.Outgoing{Body: []byte(`{"n":1}`)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var id string
	for want := 1; want <= 3; want++ {
		msgs, err := work.Receive(t.Context(), queues.ReceiveOptions{})
		if err != nil || len(msgs) != 1 || msgs[0].ReceiveCount != want {
			t.Fatalf("receive %d: %v, error %v", want, msgs, err)
		}
		id = msgs[0].ID
		clk.Advance(11 * time.Second)
	}
	if msgs, err := work.Receive(t.Context(), queues.ReceiveOptions{}); err != nil || len(msgs) != 0 {
		t.Fatalf("fourth receive: %d messages, error %v; want none", len(msgs), err)
	}
	msgs, err := dlq.Receive(t.Context(), queues.ReceiveOptions{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("dead-letter Receive: %d messages, error %v", len(msgs), err)
	}
	if m := msgs[0]; m.ID != id || m.ReceiveCount != 1 || string(m.Body) != `{"n":1}` {
		t.Errorf("dead letter = ID %q count %d body %q, want ID %q count 1 body {\"n\":1}", m.ID, m.ReceiveCount, m.Body, id)
	}
}

// A receive waiting on a dead-letter queue wakes when a receive on the source queue moves a
// message there.
func TestDeadLetterMoveWakesWaiter(t *testing.T) {
	t.Parallel()
	b := openBroker(t, sqlitedbtest.Open(t, ""), []queues.Spec{
		{Name: "work", Visibility: time.Minute, DeadLetter: "work-dlq", MaxReceives: 1},
		{Name: "work-dlq", Visibility: time.Minute},
	})
	work, dlq := mustQueue(t, b, "work"), mustQueue(t, b, "work-dlq")
	if err := work.Send(t.Context(), queues.Outgoing{Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs, err := work.Receive(t.Context(), queues.ReceiveOptions{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %d messages, error %v", len(msgs), err)
	}
	if err := work.ChangeVisibility(t.Context(), msgs[0].Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility: %v", err)
	}
	got := make(chan int, 1)
	go func() {
		dead, _ := dlq.Receive(t.Context(), queues.ReceiveOptions{Wait: 10 * time.Second})
		got <- len(dead)
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if msgs, err := work.Receive(t.Context(), queues.ReceiveOptions{}); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive past MaxReceives: %d messages, error %v; want none", len(msgs), err)
	}
	if n := <-got; n != 1 {
		t.Fatalf("waiting dead-letter Receive got %d messages, want 1", n)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("waiting dead-letter Receive woke %v after the move", took)
	}
}

// A waiting receive sleeps until the queue's earliest hidden message becomes visible and wakes
// then, with nothing else to wake it.
func TestWaitWakesWhenHiddenMessageBecomesVisible(t *testing.T) {
	t.Parallel()
	b := openBroker(t, sqlitedbtest.Open(t, ""), []queues.Spec{{Name: "work", Visibility: time.Minute}})
	q := mustQueue(t, b, "work")
	sent := time.Now()
	if err := q.Send(t.Context(), queues.Outgoing{Body: []byte(`{}`), Delay: 700 * time.Millisecond}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Wait: 10 * time.Second})
	took := time.Since(sent)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %d messages, error %v", len(msgs), err)
	}
	if took < 700*time.Millisecond || took > 1200*time.Millisecond {
		t.Errorf("Receive returned %v after a send delayed 700ms", took)
	}
}

func TestMessagesSurviveReopen(t *testing.T) {
	t.Parallel()
	db := sqlitedbtest.Open(t, "")
	specs := []queues.Spec{{Name: "work", Visibility: time.Minute}}
	first := openBroker(t, db, specs)
	if err := mustQueue(t, first, "work").Send(t.Context(), queues.Outgoing{Body: []byte(`{"kept":true}`)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	second := openBroker(t, db, specs)
	msgs, err := mustQueue(t, second, "work").Receive(t.Context(), queues.ReceiveOptions{})
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != `{"kept":true}` {
		t.Fatalf("Receive after reopening: %v, error %v", msgs, err)
	}
}

func TestOpenRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	db := sqlitedbtest.Open(t, "")
	tests := []struct {
		name  string
		specs []queues.Spec
	}{
		{"no name", []queues.Spec{{Visibility: time.Second}}},
		{"duplicate", []queues.Spec{{Name: "a", Visibility: time.Second}, {Name: "a", Visibility: time.Second}}},
		{"unknown dead-letter queue", []queues.Spec{{Name: "a", Visibility: time.Second, DeadLetter: "nope", MaxReceives: 3}}},
		{"own dead-letter queue", []queues.Spec{{Name: "a", Visibility: time.Second, DeadLetter: "a", MaxReceives: 3}}},
		{"no MaxReceives", []queues.Spec{{Name: "a", Visibility: time.Second, DeadLetter: "b"}, {Name: "b", Visibility: time.Second}}},
		{"visibility too long", []queues.Spec{{Name: "a", Visibility: 13 * time.Hour}}},
	}
	for _, tc := range tests {
		if _, err := sqlitequeue.Open(db, tc.specs); err == nil {
			t.Errorf("%s: Open accepted %+v", tc.name, tc.specs)
		}
	}
	b := openBroker(t, db, queues.Topology())
	for _, s := range queues.Topology() {
		mustQueue(t, b, s.Name)
	}
}

// BenchmarkSendReceiveDelete measures one hop of the engine: a message sent, received and
// deleted, each its own transaction.
func BenchmarkSendReceiveDelete(b *testing.B) {
	b.ReportAllocs()
	broker := openBroker(b, sqlitedbtest.Open(b, ""), queues.Topology())
	q := mustQueue(b, broker, queues.Orders("lambda"))
	ctx := b.Context()
	body := []byte(`{"run_id":"r-20260101-0001","order_num":"0001","attempt":1,"trace_id":"4f2a9c"}`)
	for b.Loop() {
		if err := q.Send(ctx, queues.Outgoing{Body: body}); err != nil {
			b.Fatal(err)
		}
		msgs, err := q.Receive(ctx, queues.ReceiveOptions{})
		if err != nil || len(msgs) != 1 {
			b.Fatalf("Receive: %d messages, error %v", len(msgs), err)
		}
		if err := q.Delete(ctx, msgs[0].Receipt); err != nil {
			b.Fatal(err)
		}
	}
}

// A message sent in the caller's transaction exists only if that transaction commits, and wake
// reaches a receive already waiting.
func TestSendInTx(t *testing.T) {
	t.Parallel()
	db := sqlitedbtest.Open(t, "")
	b := openBroker(t, db, []queues.Spec{{Name: "work", Visibility: time.Minute}})
	work := mustQueue(t, b, "work")
	ctx := t.Context()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SendInTx(ctx, tx, "work", queues.Outgoing{Body: []byte(`"rolled back"`)}); err != nil {
		t.Fatalf("SendInTx: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if msgs, err := work.Receive(ctx, queues.ReceiveOptions{Max: 10}); err != nil || len(msgs) != 0 {
		t.Fatalf("after a rollback: %d messages, error %v; want none", len(msgs), err)
	}

	got := make(chan []queues.Message, 1)
	go func() {
		msgs, _ := work.Receive(ctx, queues.ReceiveOptions{Max: 10, Wait: 10 * time.Second})
		got <- msgs
	}()
	time.Sleep(200 * time.Millisecond) // the receive is waiting
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	wake, err := b.SendInTx(ctx, tx, "work", queues.Outgoing{Body: []byte(`"committed"`)})
	if err != nil {
		t.Fatalf("SendInTx: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wake()
	msgs := <-got
	if len(msgs) != 1 || string(msgs[0].Body) != `"committed"` {
		t.Fatalf("waiting receive got %d messages, want the committed one", len(msgs))
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("waiting receive woke %v after wake", took)
	}
	if _, err := b.SendInTx(ctx, nil, "nope"); !errors.Is(err, queues.ErrNotFound) {
		t.Errorf("SendInTx to an unknown queue: %v, want ErrNotFound", err)
	}
}

func TestStatsAgeIsTheOldestVisibleMessages(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	b := openBroker(t, sqlitedbtest.Open(t, ""), []queues.Spec{{Name: "work", Visibility: 30 * time.Second}}, sqlitequeue.WithClock(clk.Now))
	q := mustQueue(t, b, "work")
	for i := range 2 {
		if err := q.Send(t.Context(), queues.Outgoing{Body: []byte(`{"n":1}`)}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		clk.Advance(time.Minute)
	}
	s, err := q.Stats(t.Context())
	if err != nil || !s.AgeKnown || s.OldestAge != 2*time.Minute || s.Visible != 2 {
		t.Fatalf("Stats: %+v, %v; want 2 visible, the oldest 2m old", s, err)
	}
	// The oldest, received, is in flight: the age is the other one's.
	if msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{}); err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %v, %v", msgs, err)
	}
	s, err = q.Stats(t.Context())
	if err != nil || s.OldestAge != time.Minute || s.Visible != 1 || s.InFlight != 1 {
		t.Fatalf("Stats after a receive: %+v, %v; want 1 visible a minute old, 1 in flight", s, err)
	}
}
