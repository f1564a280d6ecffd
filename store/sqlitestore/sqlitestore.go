// Package sqlitestore is the embedded adapter of the store port, on SQLite. It shares its
// database file with the embedded queues, so its tables are prefixed store_ and created if
// missing when the store is opened.
//
// Each record is kept whole as JSON beside the columns that queries and conditions need. Every
// conditional move is one write transaction (the database is opened with _txlock=immediate, so
// the write lock is taken at BEGIN and two movers never both read the old state): it reads the
// order's status and attempt, checks them, writes the order and, for a terminal move, the run's
// counters. It passes the conformance suite in store/storetest.
package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/store"
)

// The counters of a run live in columns so that a terminal move updates them with one UPDATE
// instead of rewriting the run's JSON; the open, failed and timed_out inside store_runs.record
// are those the run was created with and are never read. Times in columns are unix
// milliseconds, the precision the port promises.
const schema = `
CREATE TABLE IF NOT EXISTS store_runs (
	run_id     TEXT PRIMARY KEY,
	status     TEXT NOT NULL,
	reported   INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	open       INTEGER NOT NULL,
	failed     INTEGER NOT NULL,
	timed_out  INTEGER NOT NULL,
	record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS store_runs_active ON store_runs (created_at, run_id) WHERE reported = 0;
CREATE INDEX IF NOT EXISTS store_runs_created ON store_runs (created_at, run_id);

CREATE TABLE IF NOT EXISTS store_orders (
	run_id    TEXT NOT NULL,
	order_num INTEGER NOT NULL,
	status    TEXT NOT NULL,
	attempt   INTEGER NOT NULL,
	due_at    INTEGER, -- NULL when terminal
	record    TEXT NOT NULL,
	PRIMARY KEY (run_id, order_num)
);
CREATE INDEX IF NOT EXISTS store_orders_due ON store_orders (due_at, run_id, order_num) WHERE due_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS store_events (
	trace_id   TEXT NOT NULL,
	epoch      INTEGER NOT NULL,
	order_name TEXT NOT NULL,
	type       TEXT NOT NULL,
	record     TEXT NOT NULL,
	PRIMARY KEY (trace_id, epoch, order_name, type)
);
`

// Statements prepared once at Open; they run inside transactions through Tx.StmtContext, which
// reuses a connection's prepared form.
const (
	sqlInsertRun = `INSERT INTO store_runs (run_id, status, reported, created_at, open, failed, timed_out, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING`
	sqlInsertOrder = `INSERT INTO store_orders (run_id, order_num, status, attempt, due_at, record)
		VALUES (?, ?, ?, ?, ?, ?)`
	sqlGetRun      = `SELECT open, failed, timed_out, record FROM store_runs WHERE run_id = ?`
	sqlGetRunState = `SELECT status, reported, record FROM store_runs WHERE run_id = ?`
	sqlSetRun      = `UPDATE store_runs SET status = ?, reported = ?, record = ? WHERE run_id = ?`
	sqlCountRun    = `UPDATE store_runs SET open = open - 1, failed = failed + ?, timed_out = timed_out + ?
		WHERE run_id = ? RETURNING open`
	sqlActiveRuns = `SELECT open, failed, timed_out, record FROM store_runs WHERE reported = 0
		ORDER BY created_at, run_id LIMIT ?`
	sqlGetOrder      = `SELECT record FROM store_orders WHERE run_id = ? AND order_num = ?`
	sqlGetOrderState = `SELECT status, attempt, record FROM store_orders WHERE run_id = ? AND order_num = ?`
	// The numbers come as one JSON array so that one prepared statement serves any count.
	sqlGetOrders = `SELECT order_num, record FROM store_orders
		WHERE run_id = ? AND order_num IN (SELECT value FROM json_each(?))`
	sqlListOrders = `SELECT record FROM store_orders WHERE run_id = ? ORDER BY order_num`
	sqlSetOrder   = `UPDATE store_orders SET status = ?, attempt = ?, due_at = ?, record = ?
		WHERE run_id = ? AND order_num = ?`
	sqlDueOrders = `SELECT record FROM store_orders WHERE due_at IS NOT NULL AND due_at <= ?
		ORDER BY due_at, run_id, order_num LIMIT ?`
	sqlPutEvent = `INSERT INTO store_events (trace_id, epoch, order_name, type, record) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (trace_id, epoch, order_name, type) DO UPDATE SET record = excluded.record`
	sqlListEvents = `SELECT record FROM store_events WHERE trace_id = ? ORDER BY epoch, order_name, type`
)

// Store is the SQLite store. It does not own the database: Close releases its statements only.
type Store struct {
	db     *sql.DB
	writer *sqlitedb.Writer // every write goes through it, combined with those waiting
	stmts  map[string]*sql.Stmt
}

var _ store.Store = (*Store)(nil)

// Open creates the store's tables in db if they are missing and prepares its statements. db
// should come from internal/sqlitedb, whose settings (WAL, busy timeout, immediate
// transactions) the store relies on.
func Open(db *sql.DB) (*Store, error) {
	if _, err := db.Exec(schema); err != nil {
		return nil, fmt.Errorf("create store tables: %w", err)
	}
	s := &Store{db: db, writer: sqlitedb.NewWriter(db), stmts: map[string]*sql.Stmt{}}
	for _, q := range []string{sqlInsertRun, sqlInsertOrder, sqlGetRun, sqlGetRunState, sqlSetRun, sqlCountRun,
		sqlActiveRuns, sqlGetOrder, sqlGetOrderState, sqlGetOrders, sqlListOrders, sqlSetOrder, sqlDueOrders,
		sqlPutEvent, sqlListEvents} {
		st, err := db.Prepare(q)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("prepare store statement: %w", err)
		}
		s.stmts[q] = st
	}
	return s, nil
}

// Close releases the prepared statements. The database stays open.
func (s *Store) Close() error {
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// stmt returns the prepared form of q, bound to tx when there is one.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	if tx != nil {
		return tx.StmtContext(ctx, s.stmts[q])
	}
	return s.stmts[q]
}

// storeError is where SQLite's errors become the port's: a missing row is ErrNotFound, and
// everything else is wrapped as it is. Conflicts are not backend errors here: the adapter
// detects them itself after reading the row in the transaction.
func storeError(op string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func conflict(op string) error { return fmt.Errorf("%s: %w", op, store.ErrConflict) }

// write runs fn, which wraps its own errors, in a transaction of the store's Writer; an error of
// the transaction itself (its start, its commit) is wrapped with op.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	var fnErr error
	err := s.writer.Write(ctx, func(tx *sql.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if err != nil && fnErr == nil {
		return storeError(op, err)
	}
	return err
}

func millis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateRun inserts the run, its orders and events in one transaction, or does nothing when
// the run exists.
func (s *Store) CreateRun(ctx context.Context, run domain.Run, orders []domain.OrderRecord, events ...domain.Event) error {
	op := "create run " + run.RunID
	if err := store.CheckRun(run, orders); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	runJSON, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error { return s.createRun(ctx, tx, op, run, runJSON, orders, events) })
}

func (s *Store) createRun(ctx context.Context, tx *sql.Tx, op string, run domain.Run, runJSON []byte, orders []domain.OrderRecord, events []domain.Event) error {
	res, err := s.stmt(ctx, tx, sqlInsertRun).ExecContext(ctx, run.RunID, string(run.Status), boolInt(run.Reported),
		run.CreatedAt.UnixMilli(), run.Open, run.Failed, run.TimedOut, runJSON)
	if err != nil {
		return storeError(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return storeError(op, err)
	} else if n == 0 {
		return nil // the run exists: a retried intake; nothing is written
	}
	insert := s.stmt(ctx, tx, sqlInsertOrder)
	for _, o := range orders {
		if o.Status.Terminal() {
			o.DueAt = time.Time{} // as a terminal move does
		}
		raw, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if _, err := insert.ExecContext(ctx, o.RunID, o.OrderNum, string(o.Status), o.Attempt, dueAt(o), raw); err != nil {
			return storeError(fmt.Sprintf("%s: order %d", op, o.OrderNum), err)
		}
	}
	if err := s.putEvents(ctx, tx, events); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// dueAt is the due_at column of an order: only non-terminal orders are the sweeper's concern.
func dueAt(o domain.OrderRecord) any {
	if o.Status.Terminal() {
		return nil
	}
	return millis(o.DueAt)
}

// GetRun returns a run.
func (s *Store) GetRun(ctx context.Context, runID string) (domain.Run, error) {
	r, err := scanRun(s.stmt(ctx, nil, sqlGetRun).QueryRowContext(ctx, runID))
	if err != nil {
		return domain.Run{}, storeError("get run "+runID, err)
	}
	return r, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(row scanner) (domain.Run, error) {
	var (
		r                      domain.Run
		open, failed, timedOut int
		raw                    []byte
	)
	if err := row.Scan(&open, &failed, &timedOut, &raw); err != nil {
		return r, err
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, err
	}
	r.Open, r.Failed, r.TimedOut = open, failed, timedOut
	return r, nil
}

// GetOrder returns one order.
func (s *Store) GetOrder(ctx context.Context, runID string, orderNum int) (domain.OrderRecord, error) {
	var raw []byte
	var o domain.OrderRecord
	err := s.stmt(ctx, nil, sqlGetOrder).QueryRowContext(ctx, runID, orderNum).Scan(&raw)
	if err == nil {
		err = json.Unmarshal(raw, &o)
	}
	if err != nil {
		return domain.OrderRecord{}, storeError(fmt.Sprintf("get order %s/%d", runID, orderNum), err)
	}
	return o, nil
}

// GetOrders returns the named orders with one indexed query.
func (s *Store) GetOrders(ctx context.Context, runID string, nums []int) ([]domain.OrderRecord, error) {
	op := fmt.Sprintf("get orders %s %v", runID, nums)
	if len(nums) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(nums)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	rows, err := s.stmt(ctx, nil, sqlGetOrders).QueryContext(ctx, runID, string(list))
	if err != nil {
		return nil, storeError(op, err)
	}
	defer rows.Close()
	byNum := make(map[int]domain.OrderRecord, len(nums))
	for rows.Next() {
		var num int
		var raw []byte
		var o domain.OrderRecord
		if err := rows.Scan(&num, &raw); err != nil {
			return nil, storeError(op, err)
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		byNum[num] = o
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(op, err)
	}
	out := make([]domain.OrderRecord, len(nums))
	for i, n := range nums {
		o, ok := byNum[n]
		if !ok {
			return nil, fmt.Errorf("%s: order %d: %w", op, n, store.ErrNotFound)
		}
		out[i] = o
	}
	return out, nil
}

// ListOrders returns every order of a run by number.
func (s *Store) ListOrders(ctx context.Context, runID string) ([]domain.OrderRecord, error) {
	return s.queryOrders(ctx, "list orders "+runID, sqlListOrders, runID)
}

// DueOrders returns non-terminal orders due at or before now, earliest first.
func (s *Store) DueOrders(ctx context.Context, now time.Time, limit int) ([]domain.OrderRecord, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.queryOrders(ctx, "due orders", sqlDueOrders, now.UnixMilli(), limit)
}

func (s *Store) queryOrders(ctx context.Context, op, q string, args ...any) ([]domain.OrderRecord, error) {
	return queryRecords[domain.OrderRecord](ctx, s, op, q, args...)
}

// queryRecords runs a query whose one column is a JSON record, and decodes each row.
func queryRecords[T any](ctx context.Context, s *Store, op, q string, args ...any) ([]T, error) {
	rows, err := s.stmt(ctx, nil, q).QueryContext(ctx, args...)
	if err != nil {
		return nil, storeError(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var raw []byte
		var rec T
		if err := rows.Scan(&raw); err != nil {
			return nil, storeError(op, err)
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(op, err)
	}
	return out, nil
}

// UpdateOrder applies one conditional move, with its events and (for a terminal move) the run's
// counters, in one transaction (which may carry other callers' writes too: sqlitedb.Writer).
func (s *Store) UpdateOrder(ctx context.Context, c store.OrderChange) (moved store.Moved, err error) {
	op := fmt.Sprintf("update order %s/%d to %s", c.RunID, c.OrderNum, c.To)
	if err := checkChange(c); err != nil {
		return moved, fmt.Errorf("%s: %w", op, err)
	}
	err = s.write(ctx, op, func(tx *sql.Tx) error {
		var err error
		moved, err = s.updateOrder(ctx, tx, op, c)
		return err
	})
	if err != nil {
		return store.Moved{}, err
	}
	return moved, nil
}

func (s *Store) updateOrder(ctx context.Context, tx *sql.Tx, op string, c store.OrderChange) (moved store.Moved, err error) {
	var (
		status  string
		attempt int
		raw     []byte
	)
	if err := s.stmt(ctx, tx, sqlGetOrderState).QueryRowContext(ctx, c.RunID, c.OrderNum).Scan(&status, &attempt, &raw); err != nil {
		return moved, storeError(op, err)
	}
	if !movable(domain.OrderStatus(status), attempt, c) {
		return moved, conflict(op)
	}
	var o domain.OrderRecord
	if err := json.Unmarshal(raw, &o); err != nil {
		return moved, fmt.Errorf("%s: %w", op, err)
	}
	apply(&o, c)
	if raw, err = json.Marshal(o); err != nil {
		return moved, fmt.Errorf("%s: %w", op, err)
	}
	if _, err := s.stmt(ctx, tx, sqlSetOrder).ExecContext(ctx, string(o.Status), o.Attempt, dueAt(o), raw,
		c.RunID, c.OrderNum); err != nil {
		return moved, storeError(op, err)
	}
	if c.To.Terminal() {
		failed, timedOut := countsOf(o)
		var open int
		err := s.stmt(ctx, tx, sqlCountRun).QueryRowContext(ctx, failed, timedOut, c.RunID).Scan(&open)
		if errors.Is(err, sql.ErrNoRows) {
			return moved, fmt.Errorf("%s: run: %w", op, store.ErrNotFound)
		}
		if err != nil {
			return moved, storeError(op, err)
		}
		moved.LastOpen = open == 0
	}
	if err := s.putEvents(ctx, tx, c.Events); err != nil {
		return moved, fmt.Errorf("%s: %w", op, err)
	}
	if c.ReturnOrder {
		moved.Order = o
	}
	return moved, nil
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

// movable reports whether an order in status with attempt satisfies c's condition and may make
// its move.
func movable(status domain.OrderStatus, attempt int, c store.OrderChange) bool {
	return slices.Contains(c.From, status) && domain.CanMoveOrder(status, c.To) &&
		(c.Attempt == store.AnyAttempt || c.Attempt == attempt)
}

// apply writes c's fields into o; zero fields leave o's as they are.
func apply(o *domain.OrderRecord, c store.OrderChange) {
	o.Status = c.To
	if c.NextAttempt {
		o.Attempt++
	}
	if c.To.Terminal() {
		o.DueAt = time.Time{}
	} else if !c.DueAt.IsZero() {
		o.DueAt = c.DueAt
	}
	for _, f := range []struct {
		dst *time.Time
		src time.Time
	}{{&o.QueuedAt, c.QueuedAt}, {&o.StartedAt, c.StartedAt}, {&o.FinishedAt, c.FinishedAt}} {
		if !f.src.IsZero() {
			*f.dst = f.src
		}
	}
	if c.ExitCode != nil {
		code := *c.ExitCode
		o.ExitCode = &code
	}
	for _, f := range []struct {
		dst *string
		src string
	}{{&o.Reason, c.Reason}, {&o.LogKey, c.LogKey}, {&o.LogTail, c.LogTail}} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
}

// countsOf is what an order now terminal adds to its run's Failed and TimedOut.
func countsOf(o domain.OrderRecord) (failed, timedOut int) {
	if !o.MustSucceed {
		return 0, 0
	}
	switch o.Status {
	case domain.OrderFailed, domain.OrderSkipped:
		return 1, 0
	case domain.OrderTimedOut:
		return 0, 1
	}
	return 0, 0
}

// UpdateRun applies one conditional move of a run, with its events, in one transaction.
func (s *Store) UpdateRun(ctx context.Context, c store.RunChange) error {
	op := fmt.Sprintf("update run %s to %s", c.RunID, c.To)
	return s.write(ctx, op, func(tx *sql.Tx) error { return s.updateRun(ctx, tx, op, c) })
}

func (s *Store) updateRun(ctx context.Context, tx *sql.Tx, op string, c store.RunChange) (err error) {
	var (
		status   string
		reported bool
		raw      []byte
	)
	if err := s.stmt(ctx, tx, sqlGetRunState).QueryRowContext(ctx, c.RunID).Scan(&status, &reported, &raw); err != nil {
		return storeError(op, err)
	}
	if !runMovable(domain.RunStatus(status), reported, c) {
		return conflict(op)
	}
	var r domain.Run
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r.Status = c.To
	if !c.FinishedAt.IsZero() {
		r.FinishedAt = c.FinishedAt
	}
	r.Reported = r.Reported || c.Reported
	if raw, err = json.Marshal(r); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if _, err := s.stmt(ctx, tx, sqlSetRun).ExecContext(ctx, string(r.Status), boolInt(r.Reported), raw, c.RunID); err != nil {
		return storeError(op, err)
	}
	if err := s.putEvents(ctx, tx, c.Events); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// runMovable reports whether a run in status satisfies c's condition and may make its move (or
// stay where it is, to be marked Reported).
func runMovable(status domain.RunStatus, reported bool, c store.RunChange) bool {
	return slices.Contains(c.From, status) && (status == c.To || domain.CanMoveRun(status, c.To)) &&
		!(c.OnlyIfUnreported && reported)
}

// ActiveRuns returns runs not yet reported, oldest first.
func (s *Store) ActiveRuns(ctx context.Context, limit int) ([]domain.Run, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.stmt(ctx, nil, sqlActiveRuns).QueryContext(ctx, limit)
	if err != nil {
		return nil, storeError("active runs", err)
	}
	defer rows.Close()
	var out []domain.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, storeError("active runs", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("active runs", err)
	}
	return out, nil
}

// ListRuns walks the store_runs_created index backwards. Status is a column; the other filters
// read the record's JSON, which costs a row read per run passed over (the embedded store holds
// one machine's runs).
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter) (store.RunPage, error) {
	const op = "list runs"
	q := `SELECT open, failed, timed_out, record FROM store_runs WHERE 1 = 1`
	var args []any
	if f.After != "" {
		ms, id, err := store.ParseRunCursor(f.After)
		if err != nil {
			return store.RunPage{}, fmt.Errorf("%s: %w", op, err)
		}
		q += ` AND (created_at, run_id) < (?, ?)`
		args = append(args, ms, id)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	if f.GitRepo != "" {
		q += ` AND json_extract(record, '$.git_repo') = ?`
		args = append(args, f.GitRepo)
	}
	if f.PRNumber != 0 {
		q += ` AND json_extract(record, '$.pr_number') = ?`
		args = append(args, f.PRNumber)
	}
	if f.Username != "" {
		q += ` AND json_extract(record, '$.username') = ?`
		args = append(args, f.Username)
	}
	size := f.PageSize()
	q += ` ORDER BY created_at DESC, run_id DESC LIMIT ?`
	args = append(args, size+1) // one more tells whether there is a next page
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return store.RunPage{}, storeError(op, err)
	}
	defer rows.Close()
	var page store.RunPage
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return store.RunPage{}, storeError(op, err)
		}
		page.Runs = append(page.Runs, r)
	}
	if err := rows.Err(); err != nil {
		return store.RunPage{}, storeError(op, err)
	}
	if len(page.Runs) > size {
		page.Runs = page.Runs[:size]
		page.Next = store.RunCursor(page.Runs[size-1])
	}
	return page, nil
}

// AppendEvents writes events in one transaction, replacing those with the same key.
func (s *Store) AppendEvents(ctx context.Context, events ...domain.Event) error {
	if len(events) == 0 {
		return nil
	}
	const op = "append events"
	return s.write(ctx, op, func(tx *sql.Tx) error {
		if err := s.putEvents(ctx, tx, events); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
}

// putEvents writes events inside tx, replacing those with the same key.
func (s *Store) putEvents(ctx context.Context, tx *sql.Tx, events []domain.Event) error {
	if len(events) == 0 {
		return nil
	}
	put := s.stmt(ctx, tx, sqlPutEvent)
	for _, e := range events {
		raw, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("event: %w", err)
		}
		if _, err := put.ExecContext(ctx, e.TraceID, e.Epoch, e.OrderName, e.Type, raw); err != nil {
			return storeError("event", err)
		}
	}
	return nil
}

// ListEvents returns a trace's events by Epoch, OrderName, Type.
func (s *Store) ListEvents(ctx context.Context, traceID string) ([]domain.Event, error) {
	return queryRecords[domain.Event](ctx, s, "list events "+traceID, sqlListEvents, traceID)
}
