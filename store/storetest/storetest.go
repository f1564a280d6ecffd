// Package storetest is the conformance suite of the store port. Every adapter runs Run, and a
// behaviour of store.Store is promised only if this suite checks it.
//
// Times round-trip to Precision (a millisecond): an adapter may drop anything finer (the DynamoDB
// adapter keeps unix milliseconds) and may return times in another location, so the suite
// compares times with Equal after truncating both sides to Precision. DueOrders compares DueAt
// with now at that precision too.
//
// Beyond what the store package documents, the suite promises:
//   - UpdateOrder and UpdateRun of a missing order or run return store.ErrNotFound;
//   - a move that the state machine (domain.CanMoveOrder, domain.CanMoveRun) forbids from every
//     status in From returns store.ErrConflict, like a move from the wrong status;
//   - events appended twice in one call keep the last;
//   - Moved.LastOpen is false for every move that is not terminal.
//
// Subtests run in parallel, each with its own random run and trace ids, so an adapter may share
// one backend across them. Two subtests look at the whole store: DueOrders gives its orders due
// times in a random hour decades before the suite runs (no other subtest writes such times, and
// it moves its orders out of the way when it ends), and ActiveRuns looks for its own runs among
// all the active ones. ListRuns lists only runs of a username of its own.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/store"
)

// Precision is the finest time resolution the store port promises.
const Precision = time.Millisecond

// Harness describes the adapter under test.
type Harness struct {
	// Open is called once per subtest and may return the same store every time: every subtest
	// uses run ids of its own.
	Open func(t *testing.T) store.Store
}

// Run runs the suite against the adapter h describes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	open := h.Open
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"ManyOrders", testManyOrders},
		{"CreateRunTwice", testCreateRunTwice},
		{"CreateRunWithEvents", testCreateRunWithEvents},
		{"NotFound", testNotFound},
		{"WrongStatus", testWrongStatus},
		{"Attempt", testAttempt},
		{"PutBack", testPutBack},
		{"Moves", testMoves},
		{"Counters", testCounters},
		{"TerminalIsFinal", testTerminalIsFinal},
		{"RaceOrder", testRaceOrder},
		{"DueOrders", testDueOrders},
		{"ActiveRuns", testActiveRuns},
		{"ListRuns", testListRuns},
		{"UpdateRun", testUpdateRun},
		{"RaceRun", testRaceRun},
		{"Events", testEvents},
		{"MoveWithEvents", testMoveWithEvents},
		{"ReturnOrder", testReturnOrder},
		{"LastOpen", testLastOpen},
		{"RunMoveWithEvents", testRunMoveWithEvents},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// newRun returns a run with n orders, every one queued, must_succeed, due in an hour.
func newRun(n int) (domain.Run, []domain.OrderRecord) {
	now := time.Now()
	traceID := domain.NewTraceID()
	run := domain.Run{
		RunID:         domain.NewRunID(now),
		TraceID:       traceID,
		FlowID:        domain.FlowID("tester", traceID, domain.DefaultFlowLabel),
		Username:      "tester",
		Status:        domain.RunAccepted,
		OrderCount:    n,
		Open:          n,
		CreatedAt:     now,
		Deadline:      now.Add(time.Hour),
		PresignExpiry: domain.DefaultPresignExpiry,
		Source:        "cli",
	}
	orders := make([]domain.OrderRecord, n)
	for i := range orders {
		num := i + 1
		orders[i] = domain.OrderRecord{
			RunID:       run.RunID,
			OrderNum:    num,
			TraceID:     traceID,
			OrderName:   "order-" + domain.OrderNumString(num),
			QueueID:     "q" + domain.OrderNumString(num),
			Target:      domain.TargetCodeBuild,
			MustSucceed: true,
			Timeout:     600,
			Status:      domain.OrderQueued,
			DueAt:       now.Add(time.Hour),
			QueuedAt:    now,
		}
	}
	return run, orders
}

func create(t *testing.T, s store.Store, run domain.Run, orders []domain.OrderRecord) {
	t.Helper()
	if err := s.CreateRun(t.Context(), run, orders); err != nil {
		t.Fatalf("CreateRun %s: %v", run.RunID, err)
	}
}

func getRun(t *testing.T, s store.Store, runID string) domain.Run {
	t.Helper()
	r, err := s.GetRun(t.Context(), runID)
	if err != nil {
		t.Fatalf("GetRun %s: %v", runID, err)
	}
	return r
}

func getOrder(t *testing.T, s store.Store, runID string, num int) domain.OrderRecord {
	t.Helper()
	o, err := s.GetOrder(t.Context(), runID, num)
	if err != nil {
		t.Fatalf("GetOrder %s/%d: %v", runID, num, err)
	}
	return o
}

func update(t *testing.T, s store.Store, c store.OrderChange) {
	t.Helper()
	if _, err := s.UpdateOrder(t.Context(), c); err != nil {
		t.Fatalf("UpdateOrder %s/%d %v→%s: %v", c.RunID, c.OrderNum, c.From, c.To, err)
	}
}

func updateRun(t *testing.T, s store.Store, c store.RunChange) {
	t.Helper()
	if err := s.UpdateRun(t.Context(), c); err != nil {
		t.Fatalf("UpdateRun %s %v→%s: %v", c.RunID, c.From, c.To, err)
	}
}

// diff lists the fields in which two records of the same type differ. Times are compared with
// Equal after truncation to Precision, and an empty slice equals a nil one.
func diff(got, want any) []string {
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	var out []string
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		g, w := gv.Field(i), wv.Field(i)
		if gt, ok := g.Interface().(time.Time); ok {
			wt := w.Interface().(time.Time)
			if !gt.Truncate(Precision).Equal(wt.Truncate(Precision)) {
				out = append(out, fmt.Sprintf("%s: got %v, want %v", name, gt, wt))
			}
			continue
		}
		if g.Kind() == reflect.Slice && g.Len() == 0 && w.Len() == 0 {
			continue
		}
		if !reflect.DeepEqual(g.Interface(), w.Interface()) {
			out = append(out, fmt.Sprintf("%s: got %v, want %v", name, show(g), show(w)))
		}
	}
	return out
}

func show(v reflect.Value) any {
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		return v.Elem().Interface()
	}
	return v.Interface()
}

func sameRun(t *testing.T, what string, got, want domain.Run) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s: run %s differs:\n%v", what, want.RunID, d)
	}
}

func sameOrder(t *testing.T, what string, got, want domain.OrderRecord) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s: order %s/%d differs:\n%v", what, want.RunID, want.OrderNum, d)
	}
}

func sameOrders(t *testing.T, what string, got, want []domain.OrderRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d orders %v, want %d %v", what, len(got), keys(got), len(want), keys(want))
	}
	for i := range want {
		sameOrder(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

func keys(orders []domain.OrderRecord) []string {
	out := make([]string, len(orders))
	for i, o := range orders {
		out[i] = o.RunID + "/" + domain.OrderNumString(o.OrderNum)
	}
	return out
}

func ptr(v int) *int { return &v }

func testRoundTrip(t *testing.T, s store.Store) {
	now := time.Now()
	run, orders := newRun(3)
	// Every field set, with times finer than Precision to show they survive truncation.
	run.GitRepo = "acme/infra"
	run.PRNumber = 42
	run.IssueNumber = 7
	run.CommitHash = "0123456789abcdef0123456789abcdef01234567"
	run.CommentTag = "<!-- iac-ci:" + run.TraceID + " -->"
	run.Source = "github"
	run.Status = domain.RunRunning
	run.Open, run.Failed, run.TimedOut = 1, 1, 1
	run.CreatedAt = now.Add(-time.Minute + 123456*time.Nanosecond)
	run.Deadline = now.Add(time.Hour + 987654*time.Nanosecond)
	run.FinishedAt = now.Add(time.Second)
	run.Reported = true
	run.PresignExpiry = 9000
	run.DoneEndpoint = "https://done.example.com/hook?x=1&y=ü"

	full := &orders[0]
	full.Target = domain.TargetSSM
	full.Timeout = 172800
	full.Deps = []int{3, 2}
	full.Dependents = []int{5, 4}
	full.Status = domain.OrderRunning
	full.Attempt = 2
	full.DueAt = now.Add(2*time.Hour + 5*time.Microsecond)
	full.QueuedAt = now.Add(-time.Minute)
	full.StartedAt = now.Add(-30 * time.Second)
	full.FinishedAt = now.Add(time.Minute)
	full.ExitCode = ptr(3)
	full.Reason = "exit status 3"
	full.LogKey = "logs/" + run.RunID + "/0001/2.log"
	full.LogTail = "line one\nline \"two\" ✓\n"

	minimal := &orders[1] // zero times, no deps, no exit code, not must_succeed
	minimal.Target = domain.TargetLambda
	minimal.MustSucceed = false
	minimal.Status = domain.OrderWaiting
	minimal.QueuedAt = time.Time{}

	exited := &orders[2] // exit code 0 is a value, not an absence
	exited.Status = domain.OrderSucceeded
	exited.DueAt = time.Time{}
	exited.ExitCode = ptr(0)
	exited.FinishedAt = now

	// Inserted out of order: listing sorts by order number.
	create(t, s, run, []domain.OrderRecord{orders[2], orders[0], orders[1]})

	sameRun(t, "GetRun", getRun(t, s, run.RunID), run)
	for _, want := range orders {
		sameOrder(t, "GetOrder", getOrder(t, s, run.RunID, want.OrderNum), want)
	}
	got, err := s.GetOrders(t.Context(), run.RunID, []int{3, 1})
	if err != nil {
		t.Fatalf("GetOrders: %v", err)
	}
	sameOrders(t, "GetOrders(3,1)", got, []domain.OrderRecord{orders[2], orders[0]})
	got, err = s.GetOrders(t.Context(), run.RunID, []int{2, 2})
	if err != nil {
		t.Fatalf("GetOrders with a repeated number: %v", err)
	}
	sameOrders(t, "GetOrders(2,2)", got, []domain.OrderRecord{orders[1], orders[1]})
	got, err = s.GetOrders(t.Context(), run.RunID, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("GetOrders(none): got %v, %v, want nothing", keys(got), err)
	}
	got, err = s.ListOrders(t.Context(), run.RunID)
	if err != nil {
		t.Fatalf("ListOrders: %v", err)
	}
	sameOrders(t, "ListOrders", got, orders)
}

func testManyOrders(t *testing.T, s store.Store) {
	const n = 120 // more than one DynamoDB batch of reads (100) and of writes (25)
	run, orders := newRun(n)
	for i := range orders {
		orders[i].Deps = []int{i} // i is 0 for the first order: an empty list
		orders[i].DueAt = orders[i].DueAt.Add(time.Duration(i) * time.Second)
	}
	shuffled := slices.Clone(orders)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	create(t, s, run, shuffled)

	got, err := s.ListOrders(t.Context(), run.RunID)
	if err != nil {
		t.Fatalf("ListOrders: %v", err)
	}
	sameOrders(t, "ListOrders", got, orders)

	var nums []int
	var want []domain.OrderRecord
	for i := n; i >= 1; i -= 2 {
		nums = append(nums, i)
		want = append(want, orders[i-1])
	}
	got, err = s.GetOrders(t.Context(), run.RunID, nums)
	if err != nil {
		t.Fatalf("GetOrders of %d: %v", len(nums), err)
	}
	sameOrders(t, "GetOrders", got, want)
	if r := getRun(t, s, run.RunID); r.Open != n || r.OrderCount != n {
		t.Errorf("run counters: got open %d, order_count %d, want %d, %d", r.Open, r.OrderCount, n, n)
	}
}

func testCreateRunTwice(t *testing.T, s store.Store) {
	run, orders := newRun(2)
	create(t, s, run, orders)
	if err := s.CreateRun(t.Context(), run, orders); err != nil {
		t.Fatalf("second CreateRun: got %v, want nil", err)
	}
	sameOrders(t, "after second CreateRun", mustList(t, s, run.RunID), orders)

	// The run's orders progress; a retried intake must not reset them or the run.
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderQueued},
		Attempt: 0, To: domain.OrderRunning, NextAttempt: true, DueAt: time.Now().Add(time.Hour), StartedAt: time.Now()})
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 2, From: []domain.OrderStatus{domain.OrderQueued},
		Attempt: store.AnyAttempt, To: domain.OrderFailed, FinishedAt: time.Now()})
	updateRun(t, s, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunAccepted}, To: domain.RunRunning})
	wantRun := getRun(t, s, run.RunID)
	wantOrders := mustList(t, s, run.RunID)

	changed, changedOrders := run, slices.Clone(orders)
	changed.Username = "someone-else"
	changedOrders[0].OrderName = "renamed"
	if err := s.CreateRun(t.Context(), changed, changedOrders); err != nil {
		t.Fatalf("CreateRun after progress: got %v, want nil", err)
	}
	sameRun(t, "run after CreateRun again", getRun(t, s, run.RunID), wantRun)
	sameOrders(t, "orders after CreateRun again", mustList(t, s, run.RunID), wantOrders)
	if wantRun.Open != 1 || wantRun.Failed != 1 || wantOrders[0].Status != domain.OrderRunning {
		t.Errorf("progress before the retry: got open %d, failed %d, order 1 %s; want 1, 1, running",
			wantRun.Open, wantRun.Failed, wantOrders[0].Status)
	}
}

// testCreateRunWithEvents: the events given to CreateRun are stored with the run, and a second
// CreateRun of the run, with other orders and other events, changes nothing and stores none of
// its events (not even one that would replace a stored one).
func testCreateRunWithEvents(t *testing.T, s store.Store) {
	run, orders := newRun(3)
	orders[2].Status, orders[2].QueuedAt, orders[2].Deps = domain.OrderWaiting, time.Time{}, []int{1, 2}
	events := []domain.Event{stateEvent(run, 1, 100, "queued"), stateEvent(run, 2, 101, "queued")}
	if err := s.CreateRun(t.Context(), run, orders, events...); err != nil {
		t.Fatalf("CreateRun with events: %v", err)
	}
	sameRun(t, "GetRun", getRun(t, s, run.RunID), run)
	sameOrders(t, "ListOrders", mustList(t, s, run.RunID), orders)
	sameEvents(t, "ListEvents", listEvents(t, s, run.TraceID), events)

	// A retried intake, later: its orders and events differ from those stored.
	again, againOrders := run, slices.Clone(orders)
	again.CreatedAt = run.CreatedAt.Add(time.Minute)
	againOrders[2].Status, againOrders[2].Deps = domain.OrderQueued, nil
	replacing := events[0]
	replacing.Details = "from the retry"
	other := []domain.Event{replacing, stateEvent(run, 1, 200, "queued"), stateEvent(run, 3, 201, "queued")}
	if err := s.CreateRun(t.Context(), again, againOrders, other...); err != nil {
		t.Fatalf("second CreateRun with events: got %v, want nil", err)
	}
	sameRun(t, "run after CreateRun again", getRun(t, s, run.RunID), run)
	sameOrders(t, "orders after CreateRun again", mustList(t, s, run.RunID), orders)
	sameEvents(t, "events after CreateRun again", listEvents(t, s, run.TraceID), events)
}

func mustList(t *testing.T, s store.Store, runID string) []domain.OrderRecord {
	t.Helper()
	got, err := s.ListOrders(t.Context(), runID)
	if err != nil {
		t.Fatalf("ListOrders %s: %v", runID, err)
	}
	return got
}

func testNotFound(t *testing.T, s store.Store) {
	run, orders := newRun(1)
	create(t, s, run, orders)
	missing := domain.NewRunID(time.Now())
	ctx := t.Context()

	if _, err := s.GetRun(ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRun of a missing run: got %v, want ErrNotFound", err)
	}
	if _, err := s.GetOrder(ctx, missing, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetOrder of a missing run: got %v, want ErrNotFound", err)
	}
	if _, err := s.GetOrder(ctx, run.RunID, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetOrder of a missing order: got %v, want ErrNotFound", err)
	}
	if _, err := s.GetOrders(ctx, run.RunID, []int{1, 2}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetOrders with a missing order: got %v, want ErrNotFound", err)
	}
	for _, to := range []domain.OrderStatus{domain.OrderRunning, domain.OrderSucceeded} {
		_, err := s.UpdateOrder(ctx, store.OrderChange{RunID: run.RunID, OrderNum: 2,
			From: []domain.OrderStatus{domain.OrderQueued}, Attempt: store.AnyAttempt, To: to, NextAttempt: true,
			DueAt: time.Now()})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateOrder of a missing order to %s: got %v, want ErrNotFound", to, err)
		}
	}
	err := s.UpdateRun(ctx, store.RunChange{RunID: missing, From: []domain.RunStatus{domain.RunAccepted}, To: domain.RunRunning})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateRun of a missing run: got %v, want ErrNotFound", err)
	}
	if _, err := s.GetOrders(ctx, missing, []int{1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetOrders of a missing run: got %v, want ErrNotFound", err)
	}
}

func testWrongStatus(t *testing.T, s store.Store) {
	run, orders := newRun(2)
	orders[0].Status = domain.OrderWaiting
	orders[1].Status = domain.OrderRunning
	orders[1].Attempt = 1
	create(t, s, run, orders)

	changes := []store.OrderChange{
		// from the wrong status
		{OrderNum: 1, From: []domain.OrderStatus{domain.OrderQueued, domain.OrderRunning}, Attempt: store.AnyAttempt,
			To: domain.OrderRunning, NextAttempt: true, DueAt: time.Now()},
		{OrderNum: 1, From: []domain.OrderStatus{domain.OrderRunning}, Attempt: store.AnyAttempt,
			To: domain.OrderFailed, Reason: "nope"},
		// a move the state machine forbids, from the status the order is in
		{OrderNum: 2, From: []domain.OrderStatus{domain.OrderRunning}, Attempt: store.AnyAttempt,
			To: domain.OrderWaiting, DueAt: time.Now()},
		{OrderNum: 1, From: []domain.OrderStatus{domain.OrderWaiting}, Attempt: store.AnyAttempt,
			To: domain.OrderRunning, NextAttempt: true, DueAt: time.Now()},
	}
	for i, c := range changes {
		c.RunID = run.RunID
		if _, err := s.UpdateOrder(t.Context(), c); !errors.Is(err, store.ErrConflict) {
			t.Errorf("change %d (%v→%s): got %v, want ErrConflict", i, c.From, c.To, err)
		}
	}
	sameOrders(t, "after refused moves", mustList(t, s, run.RunID), orders)
	sameRun(t, "after refused moves", getRun(t, s, run.RunID), run)
}

// testPutBack moves a running order back to queued at its attempt (a launch its target turned
// away for capacity); the next claim is the attempt after it.
func testPutBack(t *testing.T, s store.Store) {
	run, orders := newRun(1)
	orders[0].Status, orders[0].Attempt = domain.OrderRunning, 2
	create(t, s, run, orders)
	running, queued := []domain.OrderStatus{domain.OrderRunning}, []domain.OrderStatus{domain.OrderQueued}
	due := time.Now().Add(time.Minute)

	_, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1, From: running, Attempt: 1,
		To: domain.OrderQueued, DueAt: due})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put back a stale attempt: got %v, want ErrConflict", err)
	}
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: running, Attempt: 2,
		To: domain.OrderQueued, DueAt: due, QueuedAt: due.Add(-time.Minute)})
	got := getOrder(t, s, run.RunID, 1)
	if got.Status != domain.OrderQueued || got.Attempt != 2 || !got.DueAt.Truncate(Precision).Equal(due.Truncate(Precision)) {
		t.Fatalf("put back: got %s attempt %d due %v, want queued attempt 2 due %v", got.Status, got.Attempt, got.DueAt, due)
	}
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: queued, Attempt: store.AnyAttempt,
		To: domain.OrderRunning, NextAttempt: true, DueAt: due})
	if got := getOrder(t, s, run.RunID, 1); got.Status != domain.OrderRunning || got.Attempt != 3 {
		t.Fatalf("claim after the put-back: got %s attempt %d, want running attempt 3", got.Status, got.Attempt)
	}
}

func testAttempt(t *testing.T, s store.Store) {
	run, orders := newRun(3)
	orders[0].Status, orders[0].Attempt = domain.OrderRunning, 1
	orders[1].Status, orders[1].Attempt = domain.OrderRunning, 3
	create(t, s, run, orders)
	running := []domain.OrderStatus{domain.OrderRunning}

	_, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1, From: running, Attempt: 2,
		To: domain.OrderSucceeded})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("finish with a stale attempt: got %v, want ErrConflict", err)
	}
	_, err = s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1, From: running, Attempt: 0,
		To: domain.OrderRunning, NextAttempt: true, DueAt: time.Now()})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("attempt 0 is a value, not a wildcard: got %v, want ErrConflict", err)
	}
	sameOrder(t, "after stale attempts", getOrder(t, s, run.RunID, 1), orders[0])

	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: running, Attempt: 1, To: domain.OrderSucceeded})
	if got := getOrder(t, s, run.RunID, 1); got.Status != domain.OrderSucceeded || got.Attempt != 1 {
		t.Errorf("order 1: got %s attempt %d, want succeeded attempt 1", got.Status, got.Attempt)
	}
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 2, From: running, Attempt: store.AnyAttempt,
		To: domain.OrderTimedOut})
	if got := getOrder(t, s, run.RunID, 2); got.Status != domain.OrderTimedOut || got.Attempt != 3 {
		t.Errorf("order 2: got %s attempt %d, want timed_out attempt 3", got.Status, got.Attempt)
	}
	// Attempt 0 is checked too: a queued order that was never claimed.
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 3, From: []domain.OrderStatus{domain.OrderQueued},
		Attempt: 0, To: domain.OrderRunning, NextAttempt: true, DueAt: time.Now()})
	if got := getOrder(t, s, run.RunID, 3); got.Status != domain.OrderRunning || got.Attempt != 1 {
		t.Errorf("order 3: got %s attempt %d, want running attempt 1", got.Status, got.Attempt)
	}
}

func testMoves(t *testing.T, s store.Store) {
	run, orders := newRun(2)
	orders[0].Status = domain.OrderWaiting
	orders[0].QueuedAt = time.Time{}
	orders[0].LogTail = "kept"
	create(t, s, run, orders)
	base := time.Now().Add(time.Minute)
	want := orders[0]

	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderWaiting},
		Attempt: 0, To: domain.OrderQueued, DueAt: base, QueuedAt: base.Add(-time.Second)})
	want.Status, want.DueAt, want.QueuedAt = domain.OrderQueued, base, base.Add(-time.Second)
	sameOrder(t, "waiting→queued", getOrder(t, s, run.RunID, 1), want)

	// A re-enqueue keeps the status and moves the due time.
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderQueued},
		Attempt: 0, To: domain.OrderQueued, DueAt: base.Add(time.Minute)})
	want.DueAt = base.Add(time.Minute)
	sameOrder(t, "queued→queued", getOrder(t, s, run.RunID, 1), want)

	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderQueued},
		Attempt: 0, To: domain.OrderRunning, NextAttempt: true, DueAt: base.Add(time.Hour), StartedAt: base})
	want.Status, want.Attempt, want.DueAt, want.StartedAt = domain.OrderRunning, 1, base.Add(time.Hour), base
	sameOrder(t, "queued→running", getOrder(t, s, run.RunID, 1), want)
	sameRun(t, "after non-terminal moves", getRun(t, s, run.RunID), run)

	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderRunning},
		Attempt: 1, To: domain.OrderSucceeded, FinishedAt: base.Add(time.Second), ExitCode: ptr(0),
		LogKey: "logs/x/0001/1.log", Reason: "done"})
	want.Status, want.DueAt, want.FinishedAt = domain.OrderSucceeded, time.Time{}, base.Add(time.Second)
	want.ExitCode, want.LogKey, want.Reason = ptr(0), "logs/x/0001/1.log", "done"
	sameOrder(t, "running→succeeded", getOrder(t, s, run.RunID, 1), want)
	sameOrder(t, "the other order", getOrder(t, s, run.RunID, 2), orders[1])

	wantRun := run
	wantRun.Open = 1
	sameRun(t, "after a succeeded order", getRun(t, s, run.RunID), wantRun)
}

func testCounters(t *testing.T, s store.Store) {
	moves := []struct {
		must bool
		to   domain.OrderStatus
	}{
		{true, domain.OrderFailed},
		{true, domain.OrderSkipped},
		{true, domain.OrderTimedOut},
		{true, domain.OrderSucceeded},
		{false, domain.OrderFailed},
		{false, domain.OrderSkipped},
		{false, domain.OrderTimedOut},
		{false, domain.OrderSucceeded},
	}
	run, orders := newRun(len(moves))
	for i, m := range moves {
		orders[i].MustSucceed = m.must
		orders[i].Status = domain.OrderRunning
		if m.to == domain.OrderSkipped {
			orders[i].Status = domain.OrderWaiting
		}
	}
	create(t, s, run, orders)

	var failed, timedOut int
	for i, m := range moves {
		update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: i + 1,
			From:    []domain.OrderStatus{domain.OrderWaiting, domain.OrderRunning},
			Attempt: store.AnyAttempt, To: m.to, FinishedAt: time.Now()})
		if m.must && (m.to == domain.OrderFailed || m.to == domain.OrderSkipped) {
			failed++
		}
		if m.must && m.to == domain.OrderTimedOut {
			timedOut++
		}
		got := getRun(t, s, run.RunID)
		if got.Open != len(moves)-i-1 || got.Failed != failed || got.TimedOut != timedOut {
			t.Errorf("after %d (must_succeed %v) → %s: got open %d failed %d timed_out %d, want %d %d %d",
				i+1, m.must, m.to, got.Open, got.Failed, got.TimedOut, len(moves)-i-1, failed, timedOut)
		}
		if o := getOrder(t, s, run.RunID, i+1); o.Status != m.to || !o.DueAt.IsZero() {
			t.Errorf("order %d: got %s due %v, want %s with no due time", i+1, o.Status, o.DueAt, m.to)
		}
	}
	if failed != 2 || timedOut != 1 {
		t.Fatalf("the table above should count 2 failed and 1 timed out, counted %d and %d", failed, timedOut)
	}
}

func testTerminalIsFinal(t *testing.T, s store.Store) {
	all := []domain.OrderStatus{domain.OrderWaiting, domain.OrderQueued, domain.OrderRunning, domain.OrderSucceeded,
		domain.OrderFailed, domain.OrderTimedOut, domain.OrderSkipped}
	run, orders := newRun(1)
	create(t, s, run, orders)
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderQueued},
		Attempt: store.AnyAttempt, To: domain.OrderSucceeded})
	wantOrder := getOrder(t, s, run.RunID, 1)
	wantRun := getRun(t, s, run.RunID)

	for _, to := range all {
		_, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1, From: all,
			Attempt: store.AnyAttempt, To: to, DueAt: time.Now(), Reason: "again"})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("move of a succeeded order to %s: got %v, want ErrConflict", to, err)
		}
	}
	sameOrder(t, "terminal order", getOrder(t, s, run.RunID, 1), wantOrder)
	sameRun(t, "run of a terminal order", getRun(t, s, run.RunID), wantRun)
}

// race runs fn from n goroutines released at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one error is nil and the others are ErrConflict, and returns
// the winner's index.
func oneWinner(t *testing.T, what string, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s: goroutines %d and %d both won", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("%s: goroutine %d: got %v, want nil or ErrConflict", what, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: nobody won: %v", what, errs)
	}
	return winner
}

// raceRounds is how many races each race subtest runs: the first may meet an adapter still
// opening connections, which lines the racers up; the later ones race in earnest. Every
// finishEvery-th round also races the terminal move, which costs more on some backends.
const (
	raceRounds  = 12
	finishEvery = 4
)

func testRaceOrder(t *testing.T, s store.Store) {
	const n = 8
	run, orders := newRun(raceRounds + 1)
	create(t, s, run, orders)
	claim := time.Now().Truncate(Precision)
	finished := 0
	for num := 1; num <= raceRounds; num++ {
		errs := race(n, func(i int) error {
			return errOf(s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: num,
				From: []domain.OrderStatus{domain.OrderQueued}, Attempt: 0, To: domain.OrderRunning, NextAttempt: true,
				DueAt: claim.Add(time.Hour), StartedAt: claim.Add(time.Duration(i) * time.Second)}))
		})
		w := oneWinner(t, fmt.Sprintf("claim of order %d", num), errs)
		got := getOrder(t, s, run.RunID, num)
		if got.Status != domain.OrderRunning || got.Attempt != 1 || !got.StartedAt.Equal(claim.Add(time.Duration(w)*time.Second)) {
			t.Errorf("claimed order %d: got %s attempt %d started %v, want running attempt 1 started by winner %d",
				num, got.Status, got.Attempt, got.StartedAt, w)
		}
		if num%finishEvery != 1 {
			continue
		}
		finished++

		errs = race(n, func(i int) error {
			return errOf(s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: num,
				From: []domain.OrderStatus{domain.OrderRunning}, Attempt: 1, To: domain.OrderFailed,
				Reason: fmt.Sprintf("result %d", i)}))
		})
		w = oneWinner(t, fmt.Sprintf("finish of order %d", num), errs)
		if got := getOrder(t, s, run.RunID, num); got.Status != domain.OrderFailed || got.Reason != fmt.Sprintf("result %d", w) {
			t.Errorf("finished order %d: got %s %q, want failed by winner %d", num, got.Status, got.Reason, w)
		}
	}
	if r := getRun(t, s, run.RunID); r.Open != raceRounds+1-finished || r.Failed != finished || r.TimedOut != 0 {
		t.Errorf("run counters after the races: got open %d failed %d timed_out %d, want %d %d 0",
			r.Open, r.Failed, r.TimedOut, raceRounds+1-finished, finished)
	}
}

func testDueOrders(t *testing.T, s store.Store) {
	// A random hour between 1990 and 2010: no other subtest writes due times there.
	base := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rand.N(20*365*24)) * time.Hour)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	now := at(5 * time.Minute)

	runA, a := newRun(6)
	a[0].DueAt = at(1 * time.Minute)
	a[1].DueAt, a[1].Status, a[1].Attempt = at(3*time.Minute), domain.OrderRunning, 1
	a[2].DueAt, a[2].Status = at(30*time.Second), domain.OrderWaiting // ends before the query
	a[3].DueAt, a[3].Status = now, domain.OrderWaiting                // due exactly now
	a[4].DueAt = at(6 * time.Minute)                                  // not yet due
	a[5].DueAt, a[5].Status = at(2*time.Minute), domain.OrderFailed   // created terminal: never due
	runB, b := newRun(2)
	b[0].DueAt = at(2 * time.Minute)
	b[1].DueAt = at(10 * time.Minute) // re-enqueued below, due at 4m
	create(t, s, runA, a)
	create(t, s, runB, b)
	t.Cleanup(func() {
		// Leave nothing due in this hour for a later run of the suite on the same backend.
		ctx := context.WithoutCancel(t.Context())
		for _, o := range append(slices.Clone(a), b...) {
			_, _ = s.UpdateOrder(ctx, store.OrderChange{RunID: o.RunID, OrderNum: o.OrderNum,
				From:    []domain.OrderStatus{domain.OrderWaiting, domain.OrderQueued, domain.OrderRunning},
				Attempt: store.AnyAttempt, To: domain.OrderSkipped})
		}
	})
	update(t, s, store.OrderChange{RunID: runA.RunID, OrderNum: 3, From: []domain.OrderStatus{domain.OrderWaiting},
		Attempt: store.AnyAttempt, To: domain.OrderSkipped})
	update(t, s, store.OrderChange{RunID: runB.RunID, OrderNum: 2, From: []domain.OrderStatus{domain.OrderQueued},
		Attempt: store.AnyAttempt, To: domain.OrderQueued, DueAt: at(4 * time.Minute)})
	b[1].DueAt = at(4 * time.Minute)

	want := []domain.OrderRecord{a[0], b[0], a[1], b[1], a[3]}
	got, err := s.DueOrders(t.Context(), now, 100)
	if err != nil {
		t.Fatalf("DueOrders: %v", err)
	}
	sameOrders(t, "DueOrders", got, want)

	got, err = s.DueOrders(t.Context(), now, 2)
	if err != nil {
		t.Fatalf("DueOrders limit 2: %v", err)
	}
	sameOrders(t, "DueOrders limit 2", got, want[:2])

	if got := getOrder(t, s, runA.RunID, 6); !got.DueAt.IsZero() {
		t.Errorf("an order created terminal keeps its due time %v", got.DueAt)
	}

	got, err = s.DueOrders(t.Context(), at(-time.Millisecond), 100)
	if err != nil || len(got) != 0 {
		t.Fatalf("DueOrders before anything is due: got %v, %v, want nothing", keys(got), err)
	}
}

func activeIDs(t *testing.T, s store.Store, limit int) map[string]domain.Run {
	t.Helper()
	runs, err := s.ActiveRuns(t.Context(), limit)
	if err != nil {
		t.Fatalf("ActiveRuns: %v", err)
	}
	out := make(map[string]domain.Run, len(runs))
	for _, r := range runs {
		if r.Reported {
			t.Errorf("ActiveRuns returned reported run %s", r.RunID)
		}
		out[r.RunID] = r
	}
	return out
}

func testActiveRuns(t *testing.T, s store.Store) {
	const all = 1 << 20
	run, orders := newRun(1)
	done, doneOrders := newRun(1)
	done.Status, done.Reported, done.FinishedAt = domain.RunSucceeded, true, time.Now()
	create(t, s, run, orders)
	create(t, s, done, doneOrders)

	active := activeIDs(t, s, all)
	got, ok := active[run.RunID]
	if !ok {
		t.Fatalf("ActiveRuns: new run %s missing", run.RunID)
	}
	sameRun(t, "ActiveRuns", got, run)
	if _, ok := active[done.RunID]; ok {
		t.Errorf("ActiveRuns: run %s created reported is listed", done.RunID)
	}
	if runs, err := s.ActiveRuns(t.Context(), 1); err != nil || len(runs) != 1 {
		t.Errorf("ActiveRuns limit 1: got %d runs, %v, want 1", len(runs), err)
	}

	updateRun(t, s, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunAccepted}, To: domain.RunRunning})
	updateRun(t, s, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunRunning}, To: domain.RunFailed,
		FinishedAt: time.Now()})
	if _, ok := activeIDs(t, s, all)[run.RunID]; !ok {
		t.Errorf("ActiveRuns: a finished run not yet reported is missing")
	}
	updateRun(t, s, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunFailed},
		OnlyIfUnreported: true, To: domain.RunFailed, Reported: true})
	if _, ok := activeIDs(t, s, all)[run.RunID]; ok {
		t.Errorf("ActiveRuns: a reported run is still listed")
	}
}

func testUpdateRun(t *testing.T, s store.Store) {
	run, orders := newRun(1)
	create(t, s, run, orders)
	if err := s.UpdateRun(t.Context(), store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunRunning},
		To: domain.RunSucceeded, FinishedAt: time.Now()}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateRun from the wrong status: got %v, want ErrConflict", err)
	}
	sameRun(t, "after a refused move", getRun(t, s, run.RunID), run)

	finished := time.Now().Add(time.Minute)
	updateRun(t, s, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunAccepted}, To: domain.RunRunning})
	if err := s.UpdateRun(t.Context(), store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunRunning},
		To: domain.RunAccepted}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateRun running→accepted: got %v, want ErrConflict", err)
	}
	updateRun(t, s, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunRunning},
		OnlyIfUnreported: true, To: domain.RunTimedOut, FinishedAt: finished})
	want := run
	want.Status, want.FinishedAt = domain.RunTimedOut, finished
	sameRun(t, "after running→timed_out", getRun(t, s, run.RunID), want)

	// Reported alone, with the status unchanged and FinishedAt left as it is.
	report := store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunTimedOut}, OnlyIfUnreported: true,
		To: domain.RunTimedOut, Reported: true}
	updateRun(t, s, report)
	want.Reported = true
	sameRun(t, "after reporting", getRun(t, s, run.RunID), want)
	if err := s.UpdateRun(t.Context(), report); !errors.Is(err, store.ErrConflict) {
		t.Errorf("reporting twice with OnlyIfUnreported: got %v, want ErrConflict", err)
	}
	// Without OnlyIfUnreported the same move applies, and Reported is never cleared.
	updateRun(t, s, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunTimedOut}, To: domain.RunTimedOut})
	sameRun(t, "after a move that leaves Reported", getRun(t, s, run.RunID), want)
}

func testRaceRun(t *testing.T, s store.Store) {
	const n = 8
	for range raceRounds {
		run, orders := newRun(1)
		run.Status = domain.RunRunning
		create(t, s, run, orders)
		base := time.Now().Truncate(Precision)

		errs := race(n, func(i int) error {
			return s.UpdateRun(t.Context(), store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunRunning},
				OnlyIfUnreported: true, To: domain.RunSucceeded, FinishedAt: base.Add(time.Duration(i) * time.Second)})
		})
		w := oneWinner(t, "finalize", errs)
		got := getRun(t, s, run.RunID)
		if got.Status != domain.RunSucceeded || !got.FinishedAt.Equal(base.Add(time.Duration(w)*time.Second)) {
			t.Errorf("finalized run: got %s finished %v, want succeeded, finished by winner %d", got.Status, got.FinishedAt, w)
		}

		errs = race(n, func(int) error {
			return s.UpdateRun(t.Context(), store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunSucceeded},
				OnlyIfUnreported: true, To: domain.RunSucceeded, Reported: true})
		})
		oneWinner(t, "report", errs)
		if got := getRun(t, s, run.RunID); !got.Reported {
			t.Errorf("run not reported after the race")
		}
	}
}

func testEvents(t *testing.T, s store.Store) {
	traceID := domain.NewTraceID()
	runID := domain.NewRunID(time.Now())
	now := time.Now()
	ev := func(order string, num int, epoch int64, typ, status string) domain.Event {
		return domain.Event{TraceID: traceID, RunID: runID, OrderName: order, OrderNum: num, Epoch: epoch, Type: typ,
			Status: status, Details: "details of " + typ, Time: now.Add(time.Duration(epoch))}
	}
	want := []domain.Event{
		ev("", 0, 9, domain.EventRunAccepted, "accepted"), // epochs 9 and 10 sort as numbers
		ev("b", 2, 10, domain.EventOrderState, "queued"),
		ev("a", 1, 200, domain.EventOrderState, "queued"),
		ev("a", 1, 200, "z_other", "queued"),
		ev("b", 2, 200, domain.EventOrderState, "running"),
		ev("", 0, now.UnixNano(), domain.EventJobCompleted, "succeeded"),
	}
	want[0].Details = ""
	for i := range 60 { // more than one DynamoDB write batch (25)
		want = append(want, ev("bulk", 3, 1000+int64(i), domain.EventOrderState, "running"))
	}
	slices.SortFunc(want, func(x, y domain.Event) int {
		return cmp.Or(cmp.Compare(x.Epoch, y.Epoch), cmp.Compare(x.OrderName, y.OrderName), cmp.Compare(x.Type, y.Type))
	})
	// want[len-1] is job_completed: its epoch is far beyond the others.
	shuffled := slices.Clone(want)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if err := s.AppendEvents(t.Context(), shuffled...); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	if err := s.AppendEvents(t.Context()); err != nil {
		t.Fatalf("AppendEvents of nothing: %v", err)
	}
	sameEvents(t, "ListEvents", listEvents(t, s, traceID), want)

	// Writing the same keys again replaces them, also twice in one call.
	again := want[1]
	again.Details, again.Status = "retried", "running"
	last := want[len(want)-1]
	last.Details = "second"
	first := last
	first.Details = "first"
	if err := s.AppendEvents(t.Context(), again, first, last); err != nil {
		t.Fatalf("AppendEvents again: %v", err)
	}
	want[1], want[len(want)-1] = again, last
	sameEvents(t, "ListEvents after rewriting", listEvents(t, s, traceID), want)

	if got := listEvents(t, s, domain.NewTraceID()); len(got) != 0 {
		t.Errorf("ListEvents of another trace: got %d events, want none", len(got))
	}
}

func listEvents(t *testing.T, s store.Store, traceID string) []domain.Event {
	t.Helper()
	got, err := s.ListEvents(t.Context(), traceID)
	if err != nil {
		t.Fatalf("ListEvents %s: %v", traceID, err)
	}
	return got
}

func sameEvents(t *testing.T, what string, got, want []domain.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		if d := diff(got[i], want[i]); len(d) > 0 {
			t.Errorf("%s[%d]: event differs:\n%v", what, i, d)
		}
	}
}

// errOf drops what a move reported, for callers that want only its error.
func errOf(_ store.Moved, err error) error { return err }

// stateEvent is an order_state event of order num of run.
func stateEvent(run domain.Run, num int, epoch int64, status string) domain.Event {
	return domain.Event{TraceID: run.TraceID, RunID: run.RunID, OrderName: "order-" + domain.OrderNumString(num),
		OrderNum: num, Epoch: epoch, Type: domain.EventOrderState, Status: status, Time: time.Unix(0, epoch)}
}

// testMoveWithEvents: a move's events are written with it, and a refused move writes none.
func testMoveWithEvents(t *testing.T, s store.Store) {
	run, orders := newRun(2)
	create(t, s, run, orders)
	queued := []domain.OrderStatus{domain.OrderQueued}
	claim := stateEvent(run, 1, 100, "running")
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: queued, Attempt: 0, To: domain.OrderRunning,
		NextAttempt: true, DueAt: time.Now(), Events: []domain.Event{claim}})
	// A refused move (order 1 is no longer queued) writes none of its events.
	_, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1, From: queued, Attempt: 0,
		To: domain.OrderRunning, NextAttempt: true, DueAt: time.Now(), Events: []domain.Event{stateEvent(run, 1, 150, "refused")}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second claim: got %v, want ErrConflict", err)
	}
	// A terminal move carries several events; one replaces an event stored before.
	replaced := claim
	replaced.Details = "attempt 1"
	end := stateEvent(run, 1, 300, "succeeded")
	update(t, s, store.OrderChange{RunID: run.RunID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderRunning},
		Attempt: 1, To: domain.OrderSucceeded, Events: []domain.Event{replaced, end}})
	// A refused terminal move writes nothing either.
	_, err = s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderRunning},
		Attempt: 1, To: domain.OrderFailed, Events: []domain.Event{stateEvent(run, 1, 400, "refused")}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second terminal move: got %v, want ErrConflict", err)
	}
	got, err := s.ListEvents(t.Context(), run.TraceID)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	want := []domain.Event{replaced, end}
	if len(got) != len(want) {
		t.Fatalf("events: got %d %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i].Epoch != want[i].Epoch || got[i].Status != want[i].Status || got[i].Details != want[i].Details ||
			got[i].OrderName != want[i].OrderName || got[i].OrderNum != want[i].OrderNum {
			t.Errorf("event %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if r := getRun(t, s, run.RunID); r.Open != 1 {
		t.Errorf("run open after one terminal move: got %d, want 1", r.Open)
	}
}

// testReturnOrder: a move asked for its order returns the order as stored after the move, the
// next attempt counted from the stored one, with or without events.
func testReturnOrder(t *testing.T, s store.Store) {
	run, orders := newRun(3)
	orders[1].Status, orders[1].Attempt = domain.OrderRunning, 4
	create(t, s, run, orders)
	start := time.Now().Truncate(Precision)
	for _, tc := range []struct {
		num         int
		from        domain.OrderStatus
		wantAttempt int
		events      []domain.Event
	}{
		{1, domain.OrderQueued, 1, nil},
		{2, domain.OrderRunning, 5, nil},
		{3, domain.OrderQueued, 1, []domain.Event{stateEvent(run, 3, 10, "running")}},
	} {
		moved, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: tc.num,
			From: []domain.OrderStatus{tc.from}, Attempt: store.AnyAttempt, To: domain.OrderRunning, NextAttempt: true,
			StartedAt: start, DueAt: start.Add(time.Hour), Events: tc.events, ReturnOrder: true})
		if err != nil {
			t.Fatalf("claim of order %d: %v", tc.num, err)
		}
		stored := getOrder(t, s, run.RunID, tc.num)
		sameOrder(t, fmt.Sprintf("order %d returned by its claim", tc.num), moved.Order, stored)
		if moved.Order.Status != domain.OrderRunning || moved.Order.Attempt != tc.wantAttempt ||
			!moved.Order.StartedAt.Truncate(Precision).Equal(start) || moved.Order.OrderName != orders[tc.num-1].OrderName {
			t.Errorf("order %d returned by its claim: got %s attempt %d started %v, want running attempt %d started %v",
				tc.num, moved.Order.Status, moved.Order.Attempt, moved.Order.StartedAt, tc.wantAttempt, start)
		}
		if moved.LastOpen {
			t.Errorf("claim of order %d: LastOpen is true for a move that is not terminal", tc.num)
		}
	}
	moved, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1,
		From: []domain.OrderStatus{domain.OrderRunning}, Attempt: 1, To: domain.OrderSucceeded})
	if err != nil {
		t.Fatalf("finish of order 1: %v", err)
	}
	if moved.Order.RunID != "" {
		t.Errorf("a move that did not ask for its order returned %+v", moved.Order)
	}
}

// testLastOpen: of the orders of a run ending at once, exactly the one that ends the last open
// order learns it, whatever the counters it bumps.
func testLastOpen(t *testing.T, s store.Store) {
	const n = 6
	run, orders := newRun(n + 1)
	orders[n].Status, orders[n].DueAt = domain.OrderSucceeded, time.Time{} // ended before: not open
	run.Open = n
	for i := range n {
		orders[i].Status, orders[i].Attempt = domain.OrderRunning, 1
		orders[i].MustSucceed = i%2 == 0
	}
	create(t, s, run, orders)
	var mu sync.Mutex
	last := 0
	errs := race(n, func(i int) error {
		to := domain.OrderSucceeded
		if i%3 == 1 {
			to = domain.OrderFailed
		}
		moved, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: i + 1,
			From: []domain.OrderStatus{domain.OrderRunning}, Attempt: 1, To: to,
			Events: []domain.Event{stateEvent(run, i+1, int64(1000+i), string(to))}})
		if moved.LastOpen {
			mu.Lock()
			last++
			mu.Unlock()
		}
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("terminal move of order %d: %v", i+1, err)
		}
	}
	if last != 1 {
		t.Errorf("terminal moves that reported LastOpen: got %d, want exactly 1", last)
	}
	r := getRun(t, s, run.RunID)
	wantFailed := 0
	for i := range n {
		if i%3 == 1 && i%2 == 0 {
			wantFailed++
		}
	}
	if r.Open != 0 || r.Failed != wantFailed {
		t.Errorf("run after every order ended: got open %d failed %d, want 0 and %d", r.Open, r.Failed, wantFailed)
	}
}

// testRunMoveWithEvents: a run's move writes its events with it; a refused one writes none.
func testRunMoveWithEvents(t *testing.T, s store.Store) {
	run, orders := newRun(1)
	create(t, s, run, orders)
	done := domain.Event{TraceID: run.TraceID, RunID: run.RunID, Epoch: 500, Type: domain.EventJobCompleted,
		Status: string(domain.RunFailed), Time: time.Unix(0, 500)}
	refused := store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunRunning}, To: domain.RunFailed,
		Events: []domain.Event{done}}
	if err := s.UpdateRun(t.Context(), refused); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("move from the wrong status: got %v, want ErrConflict", err)
	}
	if got, err := s.ListEvents(t.Context(), run.TraceID); err != nil || len(got) != 0 {
		t.Fatalf("events after a refused move: got %+v (%v), want none", got, err)
	}
	updateRun(t, s, store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunAccepted}, To: domain.RunFailed,
		FinishedAt: time.Now(), Events: []domain.Event{done}})
	got, err := s.ListEvents(t.Context(), run.TraceID)
	if err != nil || len(got) != 1 || got[0].Type != domain.EventJobCompleted || got[0].Status != string(domain.RunFailed) {
		t.Fatalf("events after the move: got %+v (%v), want the job_completed event", got, err)
	}
	if r := getRun(t, s, run.RunID); r.Status != domain.RunFailed {
		t.Errorf("run after the move: got %s, want failed", r.Status)
	}
}

// listAll pages through ListRuns with f and returns the run ids in the order listed.
func listAll(t *testing.T, s store.Store, f store.RunFilter) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("ListRuns %+v: more than 100 pages", f)
		}
		page, err := s.ListRuns(t.Context(), f)
		if err != nil {
			t.Fatalf("ListRuns %+v: %v", f, err)
		}
		if len(page.Runs) > f.PageSize() {
			t.Fatalf("ListRuns %+v: %d runs in a page of %d", f, len(page.Runs), f.PageSize())
		}
		if page.Next != "" && len(page.Runs) == 0 {
			t.Fatalf("ListRuns %+v: an empty page with a next cursor", f)
		}
		for _, r := range page.Runs {
			ids = append(ids, r.RunID)
		}
		if page.Next == "" {
			return ids
		}
		f.After = page.Next
	}
}

func testListRuns(t *testing.T, s store.Store) {
	user := "lister-" + domain.NewTraceID()
	base := time.Now().Add(-time.Hour).Truncate(Precision)
	var runs []domain.Run
	for i := range 5 {
		run, orders := newRun(1)
		run.Username = user
		run.CreatedAt = base.Add(time.Duration(i) * time.Second) // run i is the i-th oldest
		run.GitRepo = "acme/infra"
		if i%2 == 1 {
			run.GitRepo, run.PRNumber = "acme/other", 7
		}
		create(t, s, run, orders)
		runs = append(runs, run)
	}
	updateRun(t, s, store.RunChange{RunID: runs[3].RunID, From: []domain.RunStatus{domain.RunAccepted}, To: domain.RunRunning})
	ids := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, runs[i].RunID)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		f    store.RunFilter
		want []string
	}{
		{"all, one page", store.RunFilter{Username: user}, ids(4, 3, 2, 1, 0)},
		{"pages of two", store.RunFilter{Username: user, Limit: 2}, ids(4, 3, 2, 1, 0)},
		{"pages of five", store.RunFilter{Username: user, Limit: 5}, ids(4, 3, 2, 1, 0)},
		{"status", store.RunFilter{Username: user, Status: domain.RunRunning}, ids(3)},
		{"repository", store.RunFilter{Username: user, GitRepo: "acme/infra", Limit: 1}, ids(4, 2, 0)},
		{"pull request", store.RunFilter{Username: user, PRNumber: 7}, ids(3, 1)},
		{"repository and status", store.RunFilter{Username: user, GitRepo: "acme/other", Status: domain.RunAccepted}, ids(1)},
		{"nothing matches", store.RunFilter{Username: user, PRNumber: 8}, nil},
	} {
		if got := listAll(t, s, tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("ListRuns %s: got %v, want %v", tt.name, got, tt.want)
		}
	}

	page, err := s.ListRuns(t.Context(), store.RunFilter{Username: user, Limit: 2})
	if err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	if len(page.Runs) != 2 || page.Next == "" {
		t.Fatalf("ListRuns limit 2: got %d runs, next %q; want 2 and a next cursor", len(page.Runs), page.Next)
	}
	want := runs[3]
	want.Status = domain.RunRunning
	sameRun(t, "ListRuns", page.Runs[1], want)

	if _, err := s.ListRuns(t.Context(), store.RunFilter{After: "not a cursor"}); err == nil {
		t.Errorf("ListRuns with a malformed cursor: no error")
	}
}
