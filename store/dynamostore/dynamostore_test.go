package dynamostore

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/store"
	"github.com/iac-ci/iac-ci/store/storetest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// emulatorLock lets one request at a time into moto_server. moto serves each request on its own
// thread without a lock, and a TransactWriteItems that fails restores a copy of the whole table
// taken when it began, undoing what other requests wrote meanwhile; DynamoDB applies each item
// write atomically. The store's goroutines still race each other; only the emulator is serial.
var emulatorLock sync.Mutex

// recorder is the HTTP client of a test's DynamoDB client: it counts calls by operation.
type recorder struct {
	next aws.HTTPClient

	mu    sync.Mutex
	calls map[string]int
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	op := req.Header.Get("X-Amz-Target")
	op = op[strings.LastIndex(op, ".")+1:]
	r.mu.Lock()
	r.calls[op]++
	r.mu.Unlock()
	emulatorLock.Lock()
	defer emulatorLock.Unlock()
	return r.next.Do(req)
}

// take returns the calls counted since the last take.
func (r *recorder) take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = map[string]int{}
	return c
}

var (
	tablesOnce sync.Once
	tables     Tables
	tablesErr  error
)

// setup returns a client of the emulator and the test binary's pair of tables, created on
// first use.
func setup(t *testing.T) (*dynamodb.Client, *recorder) {
	t.Helper()
	cfg := awstest.Config(t)
	rec := &recorder{next: awshttp.NewBuildableClient(), calls: map[string]int{}}
	cfg.HTTPClient = rec
	client := dynamodb.NewFromConfig(cfg)
	tablesOnce.Do(func() {
		suffix := domain.NewTraceID()
		tables = Tables{Orders: "iac-ci-orders-" + suffix, Events: "iac-ci-events-" + suffix}
		tablesErr = CreateTables(t.Context(), client, tables)
	})
	if tablesErr != nil {
		t.Fatalf("create tables: %v", tablesErr)
	}
	return client, rec
}

func TestConformance(t *testing.T) {
	client, _ := setup(t)
	s := New(client, tables)
	storetest.Run(t, storetest.Harness{Open: func(*testing.T) store.Store { return s }})
}

// Small pages make every Query of the suite follow LastEvaluatedKey, and one due shard puts
// every order in one index partition.
func TestConformanceSmallPages(t *testing.T) {
	client, _ := setup(t)
	s := New(client, tables, WithDueShards(1))
	s.pageLimit = 3
	storetest.Run(t, storetest.Harness{Open: func(*testing.T) store.Store { return s }})
}

func newRun(n int) (domain.Run, []domain.OrderRecord) {
	now := time.Now()
	run := domain.Run{RunID: domain.NewRunID(now), TraceID: domain.NewTraceID(), Status: domain.RunRunning,
		OrderCount: n, Open: n, CreatedAt: now, Deadline: now.Add(time.Hour)}
	orders := make([]domain.OrderRecord, n)
	for i := range orders {
		orders[i] = domain.OrderRecord{RunID: run.RunID, OrderNum: i + 1, TraceID: run.TraceID,
			OrderName: "order", Target: domain.TargetLambda, MustSucceed: true, Timeout: 60,
			Status: domain.OrderRunning, Attempt: 1, DueAt: now.Add(time.Hour)}
	}
	return run, orders
}

// The work on the path of one result costs a fixed number of calls, whatever the run's size.
func TestCallCounts(t *testing.T) {
	t.Parallel()
	client, rec := setup(t)
	s := New(client, tables)
	run, orders := newRun(300)
	orders[1].MustSucceed = false
	if err := s.CreateRun(t.Context(), run, orders); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	if got := rec.take(); !maps.Equal(got, map[string]int{"BatchWriteItem": 12, "Query": 1, "PutItem": 1}) {
		t.Errorf("CreateRun of 300 orders: got calls %v, want 12 BatchWriteItem, 1 Query, 1 PutItem", got)
	}
	running := []domain.OrderStatus{domain.OrderRunning}

	steps := []struct {
		name string
		do   func() error
		want map[string]int
	}{
		{"GetOrders of 2", func() error {
			got, err := s.GetOrders(t.Context(), run.RunID, []int{250, 7})
			if err == nil && (len(got) != 2 || got[0].OrderNum != 250 || got[1].OrderNum != 7) {
				t.Errorf("GetOrders: got %d orders", len(got))
			}
			return err
		}, map[string]int{"BatchGetItem": 1}},
		{"GetRun", func() error { _, err := s.GetRun(t.Context(), run.RunID); return err },
			map[string]int{"GetItem": 1}},
		{"re-claim", func() error {
			return errOf(s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 3, From: running,
				Attempt: 1, To: domain.OrderRunning, NextAttempt: true, DueAt: time.Now()}))
		}, map[string]int{"UpdateItem": 1}},
		{"claim returning the order", func() error {
			moved, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 4, From: running,
				Attempt: store.AnyAttempt, To: domain.OrderRunning, NextAttempt: true, DueAt: time.Now(), ReturnOrder: true})
			if err == nil && (moved.Order.Attempt != 2 || moved.Order.OrderNum != 4) {
				t.Errorf("claim returned order %d attempt %d, want order 4 attempt 2", moved.Order.OrderNum, moved.Order.Attempt)
			}
			return err
		}, map[string]int{"UpdateItem": 1}},
		{"move with its event", func() error {
			return errOf(s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 5, From: running,
				Attempt: 1, To: domain.OrderRunning, DueAt: time.Now(), Events: []domain.Event{{TraceID: run.TraceID,
					RunID: run.RunID, OrderName: "order", OrderNum: 5, Epoch: 1, Type: domain.EventOrderState, Status: "running"}}}))
		}, map[string]int{"TransactWriteItems": 1}},
		{"terminal move with its events", func() error {
			return errOf(s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 6, From: running,
				Attempt: 1, To: domain.OrderSucceeded, Events: []domain.Event{
					{TraceID: run.TraceID, RunID: run.RunID, OrderName: "order", OrderNum: 6, Epoch: 1, Type: domain.EventOrderState, Status: "running"},
					{TraceID: run.TraceID, RunID: run.RunID, OrderName: "order", OrderNum: 6, Epoch: 2, Type: domain.EventOrderState, Status: "succeeded"},
				}}))
		}, map[string]int{"TransactWriteItems": 1}},
		{"terminal move", func() error {
			return errOf(s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1, From: running,
				Attempt: 1, To: domain.OrderFailed}))
		}, map[string]int{"TransactWriteItems": 1}},
		{"terminal move of an order that need not succeed", func() error {
			return errOf(s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 2, From: running,
				Attempt: 1, To: domain.OrderFailed}))
		}, map[string]int{"TransactWriteItems": 2}},
		{"refused terminal move", func() error {
			_, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1, From: running,
				Attempt: 1, To: domain.OrderFailed})
			if err == nil {
				t.Errorf("second terminal move of order 1: got nil, want ErrConflict")
			}
			return nil
		}, map[string]int{"TransactWriteItems": 1}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := rec.take(); !maps.Equal(got, st.want) {
			t.Errorf("%s: got calls %v, want %v", st.name, got, st.want)
		}
	}
	if r, err := s.GetRun(t.Context(), run.RunID); err != nil || r.Open != 297 || r.Failed != 1 {
		t.Errorf("run after two failures and a success: got open %d failed %d (%v), want 297 1", r.Open, r.Failed, err)
	}

	// The last open order of a run: the write that assumed others open fails on that alone,
	// and the second says LastOpen.
	small, smallOrders := newRun(1)
	if err := s.CreateRun(t.Context(), small, smallOrders); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	rec.take()
	moved, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: small.RunID, OrderNum: 1, From: running,
		Attempt: 1, To: domain.OrderSucceeded})
	if err != nil || !moved.LastOpen {
		t.Errorf("terminal move of a run's last order: got LastOpen %v (%v), want true", moved.LastOpen, err)
	}
	if got := rec.take(); !maps.Equal(got, map[string]int{"TransactWriteItems": 2}) {
		t.Errorf("terminal move of a run's last order: got calls %v, want 2 TransactWriteItems", got)
	}
}

// A run's events share the BatchWriteItem calls of its orders. A CreateRun that stopped before
// its run item (here the item is deleted, as if the process had died before writing it) is
// made again whole by the next one, which deletes the events of the first try that it does not
// replace: the history then holds the retry's events alone.
func TestCreateRunWithEventsAfterACrash(t *testing.T) {
	t.Parallel()
	client, rec := setup(t)
	s := New(client, tables)
	run, orders := newRun(10)
	queued := func(base int64) []domain.Event {
		events := make([]domain.Event, len(orders))
		for i, o := range orders {
			events[i] = domain.Event{TraceID: run.TraceID, RunID: run.RunID, OrderName: o.OrderName, OrderNum: o.OrderNum,
				Epoch: base + int64(i), Type: domain.EventOrderState, Status: "queued", Time: time.Unix(0, base+int64(i))}
		}
		return events
	}
	epochs := func(events []domain.Event) []int64 {
		out := make([]int64, len(events))
		for i, e := range events {
			out[i] = e.Epoch
		}
		return out
	}
	first := queued(1000)
	if err := s.CreateRun(t.Context(), run, orders, first...); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	if got := rec.take(); !maps.Equal(got, map[string]int{"Query": 1, "BatchWriteItem": 1, "PutItem": 1}) {
		t.Errorf("CreateRun of 10 orders and 10 events: got calls %v, want 1 Query, 1 BatchWriteItem, 1 PutItem", got)
	}
	if _, err := client.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: aws.String(tables.Orders),
		Key: key(run.RunID, runSK)}); err != nil {
		t.Fatalf("DeleteItem: %v", err)
	}

	retry := run
	retry.CreatedAt = run.CreatedAt.Add(time.Minute)
	second := queued(5000)
	second[0] = first[0] // one event of the same key: it is replaced, not deleted
	second[0].Details = "from the retry"
	rec.take()
	if err := s.CreateRun(t.Context(), retry, orders, second...); err != nil {
		t.Fatalf("CreateRun again: %v", err)
	}
	// The partition's last item, the first try's events, then 10 orders, 10 events and 9
	// deletes in two batches.
	if got := rec.take(); !maps.Equal(got, map[string]int{"Query": 2, "BatchWriteItem": 2, "PutItem": 1}) {
		t.Errorf("CreateRun after a crash: got calls %v, want 2 Query, 2 BatchWriteItem, 1 PutItem", got)
	}
	got, err := s.ListEvents(t.Context(), run.TraceID)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if !slices.Equal(epochs(got), epochs(second)) || got[0].Details != "from the retry" {
		t.Errorf("events after the retry: got epochs %v (first details %q), want %v (%q)", epochs(got), got[0].Details,
			epochs(second), "from the retry")
	}
	if r, err := s.GetRun(t.Context(), run.RunID); err != nil || !r.CreatedAt.Equal(retry.CreatedAt.Truncate(time.Millisecond)) {
		t.Errorf("run after the retry: created %v (%v), want %v", r.CreatedAt, err, retry.CreatedAt)
	}

	// Now that the run item exists, a third CreateRun reads and writes nothing else.
	rec.take()
	if err := s.CreateRun(t.Context(), run, orders, first...); err != nil {
		t.Fatalf("third CreateRun: %v", err)
	}
	if got := rec.take(); !maps.Equal(got, map[string]int{"Query": 1}) {
		t.Errorf("CreateRun of an existing run: got calls %v, want 1 Query", got)
	}
	if again, err := s.ListEvents(t.Context(), run.TraceID); err != nil || !slices.Equal(epochs(again), epochs(second)) {
		t.Errorf("events after a third CreateRun: got epochs %v (%v), want %v", epochs(again), err, epochs(second))
	}
}

func getItem(t *testing.T, client *dynamodb.Client, table string, k map[string]types.AttributeValue) map[string]types.AttributeValue {
	t.Helper()
	out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: k,
		ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	return out.Item
}

// The due and active indexes hold only what the sweeper must look at: index keys leave an
// order when it ends and a run when it is reported.
func TestSparseIndexes(t *testing.T) {
	t.Parallel()
	client, _ := setup(t)
	s := New(client, tables)
	run, orders := newRun(2)
	if err := s.CreateRun(t.Context(), run, orders); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	order := getItem(t, client, tables.Orders, key(run.RunID, orderSK(1)))
	if _, ok := order[attrDueShard]; !ok {
		t.Fatalf("a running order has no %s", attrDueShard)
	}
	if _, ok := getItem(t, client, tables.Orders, key(run.RunID, runSK))[attrActiveShard]; !ok {
		t.Fatalf("a new run has no %s", attrActiveShard)
	}
	_, err := s.UpdateOrder(t.Context(), store.OrderChange{RunID: run.RunID, OrderNum: 1,
		From: []domain.OrderStatus{domain.OrderRunning}, Attempt: 1, To: domain.OrderSucceeded})
	if err != nil {
		t.Fatalf("UpdateOrder: %v", err)
	}
	order = getItem(t, client, tables.Orders, key(run.RunID, orderSK(1)))
	for _, a := range []string{attrDueShard, attrDueAt} {
		if _, ok := order[a]; ok {
			t.Errorf("a succeeded order keeps %s", a)
		}
	}
	err = s.UpdateRun(t.Context(), store.RunChange{RunID: run.RunID, From: []domain.RunStatus{domain.RunRunning},
		To: domain.RunSucceeded, Reported: true})
	if err != nil {
		t.Fatalf("UpdateRun: %v", err)
	}
	if _, ok := getItem(t, client, tables.Orders, key(run.RunID, runSK))[attrActiveShard]; ok {
		t.Errorf("a reported run keeps %s", attrActiveShard)
	}
}

// Events expire after the configured retention, and the by_order index finds an order's events
// (run-level events, which have no order name, stay out of it).
func TestEventsExpireAndIndexByOrder(t *testing.T) {
	t.Parallel()
	client, _ := setup(t)
	s := New(client, tables, WithEventRetention(48*time.Hour))
	at := time.Now()
	name := "order-" + domain.NewTraceID()
	events := []domain.Event{
		{TraceID: domain.NewTraceID(), OrderName: name, Epoch: at.UnixNano(), Type: domain.EventOrderState, Time: at},
		{TraceID: domain.NewTraceID(), Epoch: at.UnixNano(), Type: domain.EventRunAccepted, Time: at},
	}
	if err := s.AppendEvents(t.Context(), events...); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	it := getItem(t, client, tables.Events, map[string]types.AttributeValue{
		attrTraceID: str(events[0].TraceID), attrSK: str(eventSK(events[0]))})
	r := reader{it: it}
	if got, want := r.n(attrExpiresAt), at.Add(48*time.Hour).Unix(); got != want || r.err != nil {
		t.Errorf("expires_at: got %d (%v), want %d", got, r.err, want)
	}
	if _, ok := getItem(t, client, tables.Events, map[string]types.AttributeValue{
		attrTraceID: str(events[1].TraceID), attrSK: str(eventSK(events[1]))})[attrOrderName]; ok {
		t.Errorf("a run-level event has an order_name attribute")
	}

	out, err := client.Query(t.Context(), &dynamodb.QueryInput{
		TableName:                 aws.String(tables.Events),
		IndexName:                 aws.String(IndexEventsByOrder),
		KeyConditionExpression:    aws.String("#n = :v"),
		ExpressionAttributeNames:  map[string]string{"#n": attrOrderName},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": str(name)},
	})
	if err != nil {
		t.Fatalf("query %s: %v", IndexEventsByOrder, err)
	}
	if len(out.Items) != 1 {
		t.Fatalf("query %s: got %d events, want 1", IndexEventsByOrder, len(out.Items))
	}
}

func TestCreateTablesTwice(t *testing.T) {
	t.Parallel()
	client, _ := setup(t)
	if err := CreateTables(t.Context(), client, tables); err != nil {
		t.Fatalf("CreateTables on existing tables: %v", err)
	}
	ttl, err := client.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tables.Events)})
	if err != nil {
		t.Fatalf("DescribeTimeToLive: %v", err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != attrExpiresAt ||
		d.TimeToLiveStatus != types.TimeToLiveStatusEnabled {
		t.Errorf("events TTL: got %+v, want enabled on %s", d, attrExpiresAt)
	}
}

// errOf drops what a move reported, for callers that want only its error.
func errOf(_ store.Moved, err error) error { return err }

// An ended order and a reported run carry the TTL their history has, so the table drops them
// with it (an ended run's items are kept as long as its history, no longer); an order that has
// not ended and a run not reported carry none.
func TestEndedRunsExpire(t *testing.T) {
	t.Parallel()
	client, _ := setup(t)
	s := New(client, tables, WithEventRetention(48*time.Hour))
	ctx := t.Context()
	now := time.Now().UTC()
	runID := domain.NewRunID(now)
	run := domain.Run{RunID: runID, TraceID: domain.NewTraceID(), Status: domain.RunRunning, OrderCount: 2, Open: 2,
		CreatedAt: now, Deadline: now.Add(time.Hour)}
	orders := []domain.OrderRecord{
		{RunID: runID, OrderNum: 1, OrderName: "a", TraceID: run.TraceID, Status: domain.OrderRunning, Attempt: 1, Timeout: 60, DueAt: now.Add(time.Hour)},
		{RunID: runID, OrderNum: 2, OrderName: "b", TraceID: run.TraceID, Status: domain.OrderQueued, Timeout: 60, DueAt: now.Add(time.Hour)},
	}
	if err := s.CreateRun(ctx, run, orders); err != nil {
		t.Fatal(err)
	}
	end := now.Add(time.Minute)
	code := 0
	if _, err := s.UpdateOrder(ctx, store.OrderChange{RunID: runID, OrderNum: 1, From: []domain.OrderStatus{domain.OrderRunning},
		Attempt: 1, To: domain.OrderSucceeded, FinishedAt: end, ExitCode: &code}); err != nil {
		t.Fatal(err)
	}
	expires := func(sk string) (int64, bool) {
		it := getItem(t, client, tables.Orders, map[string]types.AttributeValue{attrRunID: str(runID), attrSK: str(sk)})
		if _, ok := it[attrExpiresAt]; !ok {
			return 0, false
		}
		r := reader{it: it}
		return r.n(attrExpiresAt), r.err == nil
	}
	if got, ok := expires(orderSK(1)); !ok || got != end.Add(48*time.Hour).Unix() {
		t.Errorf("the ended order's expires_at: %d (%v), want %d", got, ok, end.Add(48*time.Hour).Unix())
	}
	if _, ok := expires(orderSK(2)); ok {
		t.Errorf("an order that has not ended carries expires_at")
	}
	if _, ok := expires(runSK); ok {
		t.Errorf("a run not yet reported carries expires_at")
	}
	if err := s.UpdateRun(ctx, store.RunChange{RunID: runID, From: []domain.RunStatus{domain.RunRunning}, To: domain.RunSucceeded,
		FinishedAt: end}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRun(ctx, store.RunChange{RunID: runID, From: []domain.RunStatus{domain.RunSucceeded}, To: domain.RunSucceeded,
		Reported: true}); err != nil {
		t.Fatal(err)
	}
	if got, ok := expires(runSK); !ok || got < now.Add(47*time.Hour).Unix() || got > time.Now().Add(49*time.Hour).Unix() {
		t.Errorf("the reported run's expires_at: %d (%v), want about two days from now", got, ok)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tables.Orders)})
	if err != nil || ttl.TimeToLiveDescription == nil || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != attrExpiresAt {
		t.Errorf("the orders table's TTL: %+v %v", ttl, err)
	}
}
