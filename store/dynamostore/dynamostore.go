// Package dynamostore is the AWS adapter of the store port, on DynamoDB. It passes the
// conformance suite in store/storetest.
//
// Two tables hold everything (CreateTables makes them):
//
//   - orders, keyed by run_id and sk: the run's own item has sk "run", each order "order#0001".
//     GetRun and GetOrder are one GetItem each, GetOrders one BatchGetItem per 100 orders, so its
//     cost follows the number of orders asked for, not the size of the run. Two sparse global
//     secondary indexes serve the sweeper: "due" (due_shard, due_at) holds only non-terminal
//     orders, "active" (active_shard, created_at) only runs not yet reported. A third, "runs"
//     (runs_shard, created_at), holds every run item and no order, newest first for ListRuns:
//     its filters are a FilterExpression on that index's Query, so listing reads the runs
//     passed over, never the orders nor the whole table. It carries only the filtered
//     attributes (RunsIndexAttributes), so an order's end, which changes its run's counters,
//     writes nothing to it; ListRuns reads the page's runs whole with one BatchGetItem.
//   - events, keyed by trace_id and sk "<order_name>:<epoch, 20 digits>:<type>", with an index
//     "by_order" (order_name, epoch) and a TTL attribute expires_at.
//
// A non-terminal move of an order is one conditional UpdateItem; a terminal move is one
// TransactWriteItems of that update and the run's counters. A failed condition is
// store.ErrConflict and is never retried; a transaction that clashed with another one in flight
// (TransactionConflict) did not evaluate its condition and is retried after a pause. Reads of
// the base table are strongly consistent; the two indexes are eventually consistent, which
// costs the sweeper at worst a stale entry whose conditional move then fails with ErrConflict.
// Times are kept to the millisecond.
package dynamostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/store"
)

// Index names, for the infrastructure code that creates the tables outside CreateTables.
const (
	IndexDue           = "due"
	IndexActive        = "active"
	IndexRuns          = "runs"
	IndexEventsByOrder = "by_order"
)

// RunsIndexAttributes are the attributes the runs index carries beside its keys: those ListRuns
// filters on. A run's counters change with every order that ends, and the index is not written
// for those changes as long as it does not carry them.
var RunsIndexAttributes = []string{attrStatus, attrGitRepo, attrPRNumber, attrUsername}

// DynamoDB's own limits.
const (
	maxBatchGet   = 100
	maxBatchWrite = 25
)

// Defaults of the options.
const (
	DefaultEventRetention = 90 * 24 * time.Hour
	DefaultDueShards      = 4
)

// maxAttempts bounds the retries of work DynamoDB left undone: unprocessed batch items and
// transactions that clashed with others.
const maxAttempts = 10

// Tables names the two tables.
type Tables struct {
	Orders string // runs and orders
	Events string
}

// Store is the DynamoDB store.
type Store struct {
	client    *dynamodb.Client
	tables    Tables
	retention time.Duration
	shards    int
	pageLimit int32 // Limit of each Query page; 0 lets DynamoDB fill 1 MB pages (tests lower it)
}

var _ store.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithEventRetention sets how long events, ended orders and reported runs are kept (their TTL,
// counted from the event's time, the order's end and the run's report).
func WithEventRetention(d time.Duration) Option { return func(s *Store) { s.retention = d } }

// WithDueShards sets how many partitions the due index is spread over. Every DueOrders call
// queries each of them. Raising the number is safe; lowering it strands orders written to the
// shards that no longer exist until their next move.
func WithDueShards(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.shards = n
		}
	}
}

// New returns a store on existing tables (see CreateTables).
func New(client *dynamodb.Client, t Tables, opts ...Option) *Store {
	s := &Store{client: client, tables: t, retention: DefaultEventRetention, shards: DefaultDueShards}
	for _, o := range opts {
		o(s)
	}
	return s
}

// expr collects the placeholders of one expression's names and values.
type expr struct {
	names  map[string]string
	values map[string]types.AttributeValue
}

func newExpr() *expr {
	return &expr{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

func (e *expr) name(attr string) string {
	for p, a := range e.names {
		if a == attr {
			return p
		}
	}
	p := fmt.Sprintf("#n%d", len(e.names))
	e.names[p] = attr
	return p
}

func (e *expr) value(v types.AttributeValue) string {
	p := fmt.Sprintf(":v%d", len(e.values))
	e.values[p] = v
	return p
}

// in is "attr = v" or "attr IN (v1, v2, ...)".
func (e *expr) in(attr string, vs []string) string {
	ps := make([]string, len(vs))
	for i, v := range vs {
		ps[i] = e.value(str(v))
	}
	if len(ps) == 1 {
		return e.name(attr) + " = " + ps[0]
	}
	return e.name(attr) + " IN (" + strings.Join(ps, ", ") + ")"
}

// pause waits before retry number attempt: exponential from 20 ms, capped at 1 s, with full
// jitter so that clashing writers spread out.
func pause(ctx context.Context, attempt int) error {
	d := min(20*time.Millisecond<<attempt, time.Second)
	t := time.NewTimer(rand.N(d) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// CreateRun writes the run's orders and events, then the run item with a condition that it
// does not exist. It needs no transaction, so a run may have any number of orders: no order
// moves before its run item exists (intake sends its first orders' messages only after
// CreateRun returns), so rewriting the orders of a run whose item is missing is safe, and a run
// whose item exists is left alone. The orders and events share BatchWriteItem calls, 25 items a
// call over both tables, so a run's first queued events cost no call of their own.
//
// One read comes first: a Query for the last item of the run's partition. That is the run item
// when the run exists (its sort key "run" sorts after every "order#"); an order when an earlier
// CreateRun of the run stopped before its run item (a crash, an error); nothing otherwise. The
// read cannot be dropped. BatchWriteItem takes no condition, so without it a second CreateRun
// of a run whose orders have moved would put them back; and writing the run item first, with
// its condition, would leave a run without its orders after a crash between the calls, which a
// retry, finding the run, would never repair. A Query rather than a GetItem, at the same cost,
// because it also tells the second case: the events that earlier CreateRun wrote are then
// deleted in the same calls (those the new ones do not replace), since a retried intake's clock
// has moved on and its events have other keys, and the history would show each first order
// queued twice. (Only events written while DynamoDB left every order of their batch
// unprocessed, and the process died before sending them again, escape this.)
//
// The one race: two intakes of the same run at once (the intake message redelivered while its
// first delivery is still being processed) may both find no run item; if one has written the
// run item and its orders have started to move before the other rewrites the orders, those
// orders go back to their initial state, and the history may show them queued twice. Their
// messages then fail their conditional moves and the sweeper re-sends them, so the run still
// ends.
func (s *Store) CreateRun(ctx context.Context, run domain.Run, orders []domain.OrderRecord, events ...domain.Event) error {
	op := "create run " + run.RunID
	if err := store.CheckRun(run, orders); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	last, err := s.lastSK(ctx, run.RunID)
	if err != nil {
		return storeError(op, err)
	}
	if last == runSK {
		return nil
	}
	events = latestByKey(events)
	writes := make([]tableWrite, 0, len(orders)+len(events))
	for _, o := range orders {
		writes = append(writes, tableWrite{s.tables.Orders, types.WriteRequest{PutRequest: &types.PutRequest{Item: orderItem(o, s.shards)}}})
	}
	for _, e := range events {
		writes = append(writes, tableWrite{s.tables.Events, types.WriteRequest{PutRequest: &types.PutRequest{Item: eventItem(e, s.retention)}}})
	}
	if last != "" {
		stale, err := s.ListEvents(ctx, run.TraceID)
		if err != nil {
			return fmt.Errorf("%s: events of an earlier try: %w", op, err)
		}
		written := make(map[string]bool, len(events))
		for _, e := range events {
			written[eventKey(e)] = true
		}
		for _, e := range stale {
			if e.RunID == run.RunID && !written[eventKey(e)] {
				writes = append(writes, tableWrite{s.tables.Events, types.WriteRequest{DeleteRequest: &types.DeleteRequest{
					Key: map[string]types.AttributeValue{attrTraceID: str(e.TraceID), attrSK: str(eventSK(e))}}}})
			}
		}
	}
	if err := s.batchWrite(ctx, writes); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	e := newExpr()
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.tables.Orders),
		Item:                     runItem(run),
		ConditionExpression:      aws.String("attribute_not_exists(" + e.name(attrSK) + ")"),
		ExpressionAttributeNames: e.names,
	})
	if err != nil && !classify(err).conditionFailed {
		return storeError(op, err)
	}
	return nil // created, or created by a concurrent intake in the meantime
}

// lastSK returns the sort key of the last item of a run's partition (runSK when the run item
// exists), or "" when the partition is empty, with one strongly consistent Query.
func (s *Store) lastSK(ctx context.Context, runID string) (string, error) {
	e := newExpr()
	out, err := s.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Orders),
		KeyConditionExpression:    aws.String(e.name(attrRunID) + " = " + e.value(str(runID))),
		ProjectionExpression:      aws.String(e.name(attrSK)),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ConsistentRead:            aws.Bool(true),
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(1),
	})
	if err != nil || len(out.Items) == 0 {
		return "", err
	}
	r := reader{it: out.Items[0]}
	return r.s(attrSK), r.err
}

// tableWrite is one request of a BatchWriteItem call and the table it writes.
type tableWrite struct {
	table string
	req   types.WriteRequest
}

// batchWrite sends requests 25 at a time, whatever their tables (one BatchWriteItem call takes
// up to 25 over several tables), re-sending what DynamoDB leaves unprocessed. No two requests
// may name the same item.
func (s *Store) batchWrite(ctx context.Context, writes []tableWrite) error {
	for chunk := range slices.Chunk(writes, maxBatchWrite) {
		pending := map[string][]types.WriteRequest{}
		for _, w := range chunk {
			pending[w.table] = append(pending[w.table], w.req)
		}
		for attempt := 0; ; attempt++ {
			left := 0
			for _, reqs := range pending {
				left += len(reqs)
			}
			if left == 0 {
				break
			}
			if attempt == maxAttempts {
				return fmt.Errorf("%d items still unprocessed after %d attempts", left, attempt)
			}
			if attempt > 0 {
				if err := pause(ctx, attempt); err != nil {
					return err
				}
			}
			out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return storeError("batch write", err)
			}
			pending = out.UnprocessedItems
		}
	}
	return nil
}

// GetRun returns a run with one strongly consistent GetItem.
func (s *Store) GetRun(ctx context.Context, runID string) (domain.Run, error) {
	op := "get run " + runID
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.tables.Orders),
		Key:            key(runID, runSK),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return domain.Run{}, storeError(op, err)
	}
	if len(out.Item) == 0 {
		return domain.Run{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return decodeRun(out.Item)
}

// GetOrder returns one order with one strongly consistent GetItem.
func (s *Store) GetOrder(ctx context.Context, runID string, orderNum int) (domain.OrderRecord, error) {
	op := fmt.Sprintf("get order %s/%d", runID, orderNum)
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.tables.Orders),
		Key:            key(runID, orderSK(orderNum)),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return domain.OrderRecord{}, storeError(op, err)
	}
	if len(out.Item) == 0 {
		return domain.OrderRecord{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return decodeOrder(out.Item)
}

// GetOrders reads the named orders with one BatchGetItem per 100 distinct numbers.
func (s *Store) GetOrders(ctx context.Context, runID string, nums []int) ([]domain.OrderRecord, error) {
	op := fmt.Sprintf("get orders %s %v", runID, nums)
	distinct := slices.Compact(slices.Sorted(slices.Values(nums))) // BatchGetItem refuses repeated keys
	byNum := make(map[int]domain.OrderRecord, len(distinct))
	for chunk := range slices.Chunk(distinct, maxBatchGet) {
		keys := make([]map[string]types.AttributeValue, len(chunk))
		for i, n := range chunk {
			keys[i] = key(runID, orderSK(n))
		}
		pending := map[string]types.KeysAndAttributes{
			s.tables.Orders: {Keys: keys, ConsistentRead: aws.Bool(true)},
		}
		for attempt := 0; len(pending[s.tables.Orders].Keys) > 0; attempt++ {
			if attempt == maxAttempts {
				return nil, fmt.Errorf("%s: %d keys still unprocessed after %d attempts", op,
					len(pending[s.tables.Orders].Keys), attempt)
			}
			if attempt > 0 {
				if err := pause(ctx, attempt); err != nil {
					return nil, fmt.Errorf("%s: %w", op, err)
				}
			}
			out, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return nil, storeError(op, err)
			}
			for _, it := range out.Responses[s.tables.Orders] {
				o, err := decodeOrder(it)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", op, err)
				}
				byNum[o.OrderNum] = o
			}
			pending = out.UnprocessedKeys
		}
	}
	orders := make([]domain.OrderRecord, len(nums))
	for i, n := range nums {
		o, ok := byNum[n]
		if !ok {
			return nil, fmt.Errorf("%s: order %d: %w", op, n, store.ErrNotFound)
		}
		orders[i] = o
	}
	return orders, nil
}

// query runs a Query to the end or until limit items (limit <= 0: no limit), page by page.
func (s *Store) query(ctx context.Context, in *dynamodb.QueryInput, limit int,
	each func(map[string]types.AttributeValue) error) error {
	n := 0
	for {
		page := s.pageLimit
		if limit > 0 && (page == 0 || int(page) > limit-n) {
			page = int32(min(limit-n, 1<<30))
		}
		if page > 0 {
			in.Limit = aws.Int32(page)
		}
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return err
		}
		for _, it := range out.Items {
			if err := each(it); err != nil {
				return err
			}
			n++
		}
		if len(out.LastEvaluatedKey) == 0 || (limit > 0 && n >= limit) {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// ListOrders reads every order of a run, strongly consistent, by order number.
func (s *Store) ListOrders(ctx context.Context, runID string) ([]domain.OrderRecord, error) {
	op := "list orders " + runID
	e := newExpr()
	cond := e.name(attrRunID) + " = " + e.value(str(runID)) +
		" AND begins_with(" + e.name(attrSK) + ", " + e.value(str(orderPrefix)) + ")"
	var orders []domain.OrderRecord
	err := s.query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Orders),
		KeyConditionExpression:    aws.String(cond),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ConsistentRead:            aws.Bool(true),
	}, 0, func(it map[string]types.AttributeValue) error {
		o, err := decodeOrder(it)
		orders = append(orders, o)
		return err
	})
	if err != nil {
		return nil, storeError(op, err)
	}
	// The sort key orders by number only up to 9999 orders.
	slices.SortFunc(orders, func(a, b domain.OrderRecord) int { return cmp.Compare(a.OrderNum, b.OrderNum) })
	return orders, nil
}

// DueOrders queries each shard of the due index and merges them.
func (s *Store) DueOrders(ctx context.Context, now time.Time, limit int) ([]domain.OrderRecord, error) {
	if limit <= 0 {
		return nil, nil
	}
	var due []domain.OrderRecord
	for shard := range s.shards {
		e := newExpr()
		cond := e.name(attrDueShard) + " = " + e.value(str(fmt.Sprintf(dueShardFmt, shard))) +
			" AND " + e.name(attrDueAt) + " <= " + e.value(num(now.UnixMilli()))
		err := s.query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.tables.Orders),
			IndexName:                 aws.String(IndexDue),
			KeyConditionExpression:    aws.String(cond),
			ExpressionAttributeNames:  e.names,
			ExpressionAttributeValues: e.values,
			ScanIndexForward:          aws.Bool(true),
		}, limit, func(it map[string]types.AttributeValue) error {
			o, err := decodeOrder(it)
			due = append(due, o)
			return err
		})
		if err != nil {
			return nil, storeError("due orders", err)
		}
	}
	slices.SortFunc(due, func(a, b domain.OrderRecord) int {
		return cmp.Or(a.DueAt.Compare(b.DueAt), cmp.Compare(a.RunID, b.RunID), cmp.Compare(a.OrderNum, b.OrderNum))
	})
	return due[:min(len(due), limit)], nil
}

// ActiveRuns queries the active index, oldest run first.
func (s *Store) ActiveRuns(ctx context.Context, limit int) ([]domain.Run, error) {
	if limit <= 0 {
		return nil, nil
	}
	e := newExpr()
	var runs []domain.Run
	err := s.query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Orders),
		IndexName:                 aws.String(IndexActive),
		KeyConditionExpression:    aws.String(e.name(attrActiveShard) + " = " + e.value(str(activeShard))),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ScanIndexForward:          aws.Bool(true),
	}, limit, func(it map[string]types.AttributeValue) error {
		r, err := decodeRun(it)
		runs = append(runs, r)
		return err
	})
	if err != nil {
		return nil, storeError("active runs", err)
	}
	return runs, nil
}

// ListRuns queries the runs index backwards, the filters as a FilterExpression. A page reads
// one run more than it returns, to know whether another matches.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter) (store.RunPage, error) {
	const op = "list runs"
	e := newExpr()
	in := &dynamodb.QueryInput{
		TableName:        aws.String(s.tables.Orders),
		IndexName:        aws.String(IndexRuns),
		ScanIndexForward: aws.Bool(false),
	}
	cond := e.name(attrRunsShard) + " = " + e.value(str(runsShard))
	if f.After != "" {
		ms, id, err := store.ParseRunCursor(f.After)
		if err != nil {
			return store.RunPage{}, fmt.Errorf("%s: %w", op, err)
		}
		in.ExclusiveStartKey = map[string]types.AttributeValue{attrRunsShard: str(runsShard),
			attrCreatedAt: num(ms), attrRunID: str(id), attrSK: str(runSK)}
	}
	var filters []string
	if f.Status != "" {
		filters = append(filters, e.name(attrStatus)+" = "+e.value(str(string(f.Status))))
	}
	if f.GitRepo != "" {
		filters = append(filters, e.name(attrGitRepo)+" = "+e.value(str(f.GitRepo)))
	}
	if f.PRNumber != 0 {
		filters = append(filters, e.name(attrPRNumber)+" = "+e.value(num(int64(f.PRNumber))))
	}
	if f.Username != "" {
		filters = append(filters, e.name(attrUsername)+" = "+e.value(str(f.Username)))
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
	in.KeyConditionExpression = aws.String(cond)
	in.ExpressionAttributeNames, in.ExpressionAttributeValues = e.names, e.values
	size := f.PageSize()
	// A Query's Limit counts the items read, before the filter: without filters it is the
	// page size (one more), with them DynamoDB fills its own pages and the walk stops once
	// enough runs matched.
	limit := size + 1
	if len(filters) > 0 {
		limit = 0
	}
	var ids []string
	var last domain.Run // the position of the page's last run, for its cursor
	err := s.query(ctx, in, limit, func(it map[string]types.AttributeValue) error {
		if len(ids) > size {
			return errEnough
		}
		r := &reader{it: it}
		id, created := r.s(attrRunID), r.n(attrCreatedAt)
		if r.err != nil {
			return r.err
		}
		if len(ids) < size {
			last = domain.Run{RunID: id, CreatedAt: time.UnixMilli(created)}
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return store.RunPage{}, storeError(op, err)
	}
	var page store.RunPage
	if len(ids) > size {
		ids = ids[:size]
		page.Next = store.RunCursor(last)
	}
	if page.Runs, err = s.getRuns(ctx, ids); err != nil {
		return store.RunPage{}, fmt.Errorf("%s: %w", op, err)
	}
	return page, nil
}

// getRuns reads runs whole, strongly consistent, in the order of ids; a run no longer there is
// left out.
func (s *Store) getRuns(ctx context.Context, ids []string) ([]domain.Run, error) {
	byID := make(map[string]domain.Run, len(ids))
	for chunk := range slices.Chunk(ids, maxBatchGet) {
		keys := make([]map[string]types.AttributeValue, len(chunk))
		for i, id := range chunk {
			keys[i] = key(id, runSK)
		}
		pending := map[string]types.KeysAndAttributes{s.tables.Orders: {Keys: keys, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(pending[s.tables.Orders].Keys) > 0; attempt++ {
			if attempt == maxAttempts {
				return nil, fmt.Errorf("get runs: %d keys still unprocessed after %d attempts", len(pending[s.tables.Orders].Keys), attempt)
			}
			if attempt > 0 {
				if err := pause(ctx, attempt); err != nil {
					return nil, fmt.Errorf("get runs: %w", err)
				}
			}
			out, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return nil, storeError("get runs", err)
			}
			for _, it := range out.Responses[s.tables.Orders] {
				r, err := decodeRun(it)
				if err != nil {
					return nil, fmt.Errorf("get runs: %w", err)
				}
				byID[r.RunID] = r
			}
			pending = out.UnprocessedKeys
		}
	}
	runs := make([]domain.Run, 0, len(ids))
	for _, id := range ids {
		if r, ok := byID[id]; ok {
			runs = append(runs, r)
		}
	}
	return runs, nil
}

// errEnough stops a query walk that has read all it needs.
var errEnough = errors.New("enough items")

// UpdateOrder applies one conditional move: an UpdateItem, or a TransactWriteItems when the
// move carries events (put in the same transaction) or is terminal (with the run's counters).
//
// Which counter a terminal move bumps depends on the order's must_succeed, which the change does
// not carry. Rather than read the order first, the write assumes must_succeed (the job default)
// and makes that part of its condition; when the condition fails on that alone, the item that
// came back with the failure says so, and the write is made once more with the other value.
//
// Whether a terminal move ended the run's last open order (Moved.LastOpen) is learnt the same
// way: the run's part of the transaction is conditioned on more than one order being open; when
// that alone fails, the move was the last, and is made again without it. So a terminal move
// costs one call, and two for the last order of a run or for an order that need not succeed
// ending failed, skipped or timed out. A move asking for its order back (ReturnOrder) costs one
// UpdateItem without events, and a read more with them.
func (s *Store) UpdateOrder(ctx context.Context, c store.OrderChange) (store.Moved, error) {
	op := fmt.Sprintf("update order %s/%d to %s", c.RunID, c.OrderNum, c.To)
	if err := checkChange(c); err != nil {
		return store.Moved{}, fmt.Errorf("%s: %w", op, err)
	}
	var from []string
	for _, f := range c.From {
		if domain.CanMoveOrder(f, c.To) {
			from = append(from, string(f))
		}
	}
	if len(from) == 0 {
		return store.Moved{}, fmt.Errorf("%s: no status in %v may move there: %w", op, c.From, store.ErrConflict)
	}
	events := s.eventPuts(c.Events)
	counted := c.To == domain.OrderFailed || c.To == domain.OrderSkipped || c.To == domain.OrderTimedOut
	must, flipped, last := true, false, false
	for attempt := 0; ; attempt++ {
		var (
			moved store.Moved
			err   error
		)
		if c.To.Terminal() {
			err = s.finishOrder(ctx, c, from, events, counted, must, last)
			moved.LastOpen = last
		} else {
			moved.Order, err = s.moveOrder(ctx, c, from, events)
		}
		if err == nil {
			if c.ReturnOrder && (c.To.Terminal() || len(events) > 0) {
				if moved.Order, err = s.GetOrder(ctx, c.RunID, c.OrderNum); err != nil {
					return store.Moved{}, fmt.Errorf("%s: read it back: %w", op, err)
				}
			}
			return moved, nil
		}
		f := classify(err)
		switch {
		case f.conditionFailed && f.failedItem == 0 && len(f.old) == 0:
			return store.Moved{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
		case f.conditionFailed && f.failedItem == 1 && c.To.Terminal() && !last:
			last = true // fewer than two orders open: this one is the last (or the run is gone)
			continue
		case f.conditionFailed && f.failedItem == 1 && c.To.Terminal():
			return store.Moved{}, fmt.Errorf("%s: run: %w", op, store.ErrNotFound)
		case f.conditionFailed && counted && !flipped && wrongGuess(f.old, c, from, must):
			must, flipped = !must, true
			continue
		case f.retry && attempt+1 < maxAttempts:
			if err := pause(ctx, attempt); err != nil {
				return store.Moved{}, fmt.Errorf("%s: %w", op, err)
			}
			continue
		}
		return store.Moved{}, storeError(op, err)
	}
}

// checkChange refuses changes the port rules out whatever the order's state.
func checkChange(c store.OrderChange) error {
	switch {
	case !c.To.Valid():
		return fmt.Errorf("unknown order status %q", c.To)
	case !c.To.Terminal() && c.DueAt.IsZero():
		return fmt.Errorf("a move to %s must give DueAt", c.To)
	}
	return nil
}

// orderUpdate builds the update of the order item and its condition.
func (s *Store) orderUpdate(c store.OrderChange, from []string, e *expr) (update, cond string) {
	set := []string{e.name(attrStatus) + " = " + e.value(str(string(c.To)))}
	var remove []string
	setN := func(attr string, v int64) { set = append(set, e.name(attr)+" = "+e.value(num(v))) }
	setS := func(attr, v string) {
		if v != "" {
			set = append(set, e.name(attr)+" = "+e.value(str(v)))
		}
	}
	setT := func(attr string, v time.Time) {
		if !v.IsZero() {
			setN(attr, v.UnixMilli())
		}
	}
	if c.NextAttempt {
		set = append(set, e.name(attrAttempt)+" = if_not_exists("+e.name(attrAttempt)+", "+e.value(num(0))+") + "+e.value(num(1)))
	}
	if c.To.Terminal() {
		remove = append(remove, e.name(attrDueAt), e.name(attrDueShard))
		// An ended order goes, by the table's TTL, as long after its end as its history does.
		end := c.FinishedAt
		if end.IsZero() {
			end = time.Now()
		}
		setN(attrExpiresAt, end.Add(s.retention).Unix())
	} else {
		setT(attrDueAt, c.DueAt)
		setS(attrDueShard, dueShard(c.RunID, c.OrderNum, s.shards))
	}
	setT(attrQueuedAt, c.QueuedAt)
	setT(attrStartedAt, c.StartedAt)
	setT(attrFinishedAt, c.FinishedAt)
	if c.ExitCode != nil {
		setN(attrExitCode, int64(*c.ExitCode))
	}
	setS(attrReason, c.Reason)
	setS(attrLogKey, c.LogKey)
	setS(attrLogTail, c.LogTail)

	update = "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		update += " REMOVE " + strings.Join(remove, ", ")
	}
	cond = "attribute_exists(" + e.name(attrSK) + ") AND " + e.in(attrStatus, from)
	if c.Attempt != store.AnyAttempt {
		cond += " AND " + e.name(attrAttempt) + " = " + e.value(num(int64(c.Attempt)))
	}
	return update, cond
}

// moveOrder makes a non-terminal move: an UpdateItem (returning the order, when asked), or
// with events the order's update (item 0) and the events' puts in one transaction.
func (s *Store) moveOrder(ctx context.Context, c store.OrderChange, from []string, events []types.TransactWriteItem) (domain.OrderRecord, error) {
	e := newExpr()
	update, cond := s.orderUpdate(c, from, e)
	item, err := s.write(ctx, &types.Update{
		TableName:                           aws.String(s.tables.Orders),
		Key:                                 key(c.RunID, orderSK(c.OrderNum)),
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            e.names,
		ExpressionAttributeValues:           e.values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}, events, c.ReturnOrder)
	if err != nil || !c.ReturnOrder || len(events) > 0 {
		return domain.OrderRecord{}, err
	}
	return decodeOrder(item)
}

// write makes one conditional update with its events: an UpdateItem when there are none
// (returning the item as written when returnNew), else a TransactWriteItems with the update as
// item 0 (which returns nothing).
func (s *Store) write(ctx context.Context, u *types.Update, events []types.TransactWriteItem, returnNew bool) (map[string]types.AttributeValue, error) {
	if len(events) > 0 {
		_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems: append([]types.TransactWriteItem{{Update: u}}, events...),
		})
		return nil, err
	}
	in := &dynamodb.UpdateItemInput{
		TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression,
		ConditionExpression: u.ConditionExpression, ExpressionAttributeNames: u.ExpressionAttributeNames,
		ExpressionAttributeValues:           u.ExpressionAttributeValues,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailure(u.ReturnValuesOnConditionCheckFailure),
	}
	if returnNew {
		in.ReturnValues = types.ReturnValueAllNew
	}
	out, err := s.client.UpdateItem(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.Attributes, nil
}

// finishOrder makes a terminal move: the order's update (item 0), the run's counters (item 1)
// and the events' puts in one transaction. When the move is counted, must is the must_succeed
// the condition expects; unless last, the run's part holds only while more than one order is
// open.
func (s *Store) finishOrder(ctx context.Context, c store.OrderChange, from []string, events []types.TransactWriteItem, counted, must, last bool) error {
	oe := newExpr()
	update, cond := s.orderUpdate(c, from, oe)
	if counted {
		cond += " AND " + oe.name(attrMustSucceed) + " = " + oe.value(boolean(must))
	}
	re := newExpr()
	add := []string{re.name(attrOpen) + " " + re.value(num(-1))}
	if counted && must {
		counter := attrFailed
		if c.To == domain.OrderTimedOut {
			counter = attrTimedOut
		}
		add = append(add, re.name(counter)+" "+re.value(num(1)))
	}
	runCond := "attribute_exists(" + re.name(attrSK) + ")"
	if !last {
		runCond += " AND " + re.name(attrOpen) + " > " + re.value(num(1))
	}
	_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: append([]types.TransactWriteItem{
			{Update: &types.Update{
				TableName:                           aws.String(s.tables.Orders),
				Key:                                 key(c.RunID, orderSK(c.OrderNum)),
				UpdateExpression:                    aws.String(update),
				ConditionExpression:                 aws.String(cond),
				ExpressionAttributeNames:            oe.names,
				ExpressionAttributeValues:           oe.values,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			{Update: &types.Update{
				TableName:                 aws.String(s.tables.Orders),
				Key:                       key(c.RunID, runSK),
				UpdateExpression:          aws.String("ADD " + strings.Join(add, ", ")),
				ConditionExpression:       aws.String(runCond),
				ExpressionAttributeNames:  re.names,
				ExpressionAttributeValues: re.values,
			}},
		}, events...),
	})
	return err
}

// eventPuts makes the transaction items that put events (a transaction may not name one item
// twice: of two events with one key, the last is kept).
func (s *Store) eventPuts(events []domain.Event) []types.TransactWriteItem {
	events = latestByKey(events)
	puts := make([]types.TransactWriteItem, len(events))
	for i, e := range events {
		puts[i] = types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.tables.Events), Item: eventItem(e, s.retention)}}
	}
	return puts
}

// latestByKey keeps one event of each key, the last given, in the place of the first: a batch
// or a transaction may not name one item twice.
func latestByKey(events []domain.Event) []domain.Event {
	index := make(map[string]int, len(events))
	var out []domain.Event
	for _, e := range events {
		k := eventKey(e)
		if i, ok := index[k]; ok {
			out[i] = e
			continue
		}
		index[k] = len(out)
		out = append(out, e)
	}
	return out
}

// eventKey is an event's item key, trace and sort key, as one string.
func eventKey(e domain.Event) string { return e.TraceID + "\x00" + eventSK(e) }

// wrongGuess reports whether old, the order as it was when the condition failed, met every part
// of the condition but must_succeed.
func wrongGuess(old map[string]types.AttributeValue, c store.OrderChange, from []string, must bool) bool {
	o, err := decodeOrder(old)
	if err != nil || len(old) == 0 {
		return false
	}
	return o.MustSucceed != must && slices.Contains(from, string(o.Status)) &&
		(c.Attempt == store.AnyAttempt || c.Attempt == o.Attempt)
}

// UpdateRun applies one conditional move of a run with one UpdateItem, or with its events one
// TransactWriteItems.
func (s *Store) UpdateRun(ctx context.Context, c store.RunChange) error {
	op := fmt.Sprintf("update run %s to %s", c.RunID, c.To)
	var from []string
	for _, f := range c.From {
		if f == c.To || domain.CanMoveRun(f, c.To) {
			from = append(from, string(f))
		}
	}
	if len(from) == 0 {
		return fmt.Errorf("%s: no status in %v may move there: %w", op, c.From, store.ErrConflict)
	}
	e := newExpr()
	set := []string{e.name(attrStatus) + " = " + e.value(str(string(c.To)))}
	if !c.FinishedAt.IsZero() {
		set = append(set, e.name(attrFinishedAt)+" = "+e.value(num(c.FinishedAt.UnixMilli())))
	}
	remove := ""
	if c.Reported {
		set = append(set, e.name(attrReported)+" = "+e.value(boolean(true)))
		remove = " REMOVE " + e.name(attrActiveShard) // leaves the active index
		// A reported run goes, by the table's TTL, as long after as its orders and history do.
		set = append(set, e.name(attrExpiresAt)+" = "+e.value(num(time.Now().Add(s.retention).Unix())))
	}
	update := "SET " + strings.Join(set, ", ") + remove
	cond := "attribute_exists(" + e.name(attrSK) + ") AND " + e.in(attrStatus, from)
	if c.OnlyIfUnreported {
		cond += " AND " + e.name(attrReported) + " = " + e.value(boolean(false))
	}
	events := s.eventPuts(c.Events)
	for attempt := 0; ; attempt++ {
		_, err := s.write(ctx, &types.Update{
			TableName:                           aws.String(s.tables.Orders),
			Key:                                 key(c.RunID, runSK),
			UpdateExpression:                    aws.String(update),
			ConditionExpression:                 aws.String(cond),
			ExpressionAttributeNames:            e.names,
			ExpressionAttributeValues:           e.values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}, events, false)
		if err == nil {
			return nil
		}
		f := classify(err)
		switch {
		case f.conditionFailed && len(f.old) == 0:
			return fmt.Errorf("%s: %w", op, store.ErrNotFound)
		case f.retry && attempt+1 < maxAttempts:
			if err := pause(ctx, attempt); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			continue
		}
		return storeError(op, err)
	}
}

// AppendEvents writes events 25 at a time. A put replaces an item with the same key, so a
// retried write does not duplicate history; of two events with one key in one call, the last
// is kept (a batch may not name one key twice).
func (s *Store) AppendEvents(ctx context.Context, events ...domain.Event) error {
	events = latestByKey(events)
	writes := make([]tableWrite, len(events))
	for i, e := range events {
		writes[i] = tableWrite{s.tables.Events, types.WriteRequest{PutRequest: &types.PutRequest{Item: eventItem(e, s.retention)}}}
	}
	if err := s.batchWrite(ctx, writes); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// ListEvents reads a trace's events, strongly consistent, and sorts them by Epoch, OrderName,
// Type (the sort key orders them by name first).
func (s *Store) ListEvents(ctx context.Context, traceID string) ([]domain.Event, error) {
	e := newExpr()
	var events []domain.Event
	err := s.query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Events),
		KeyConditionExpression:    aws.String(e.name(attrTraceID) + " = " + e.value(str(traceID))),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ConsistentRead:            aws.Bool(true),
	}, 0, func(it map[string]types.AttributeValue) error {
		ev, err := decodeEvent(it)
		events = append(events, ev)
		return err
	})
	if err != nil {
		return nil, storeError("list events "+traceID, err)
	}
	slices.SortFunc(events, func(a, b domain.Event) int {
		return cmp.Or(cmp.Compare(a.Epoch, b.Epoch), cmp.Compare(a.OrderName, b.OrderName), cmp.Compare(a.Type, b.Type))
	})
	return events, nil
}
