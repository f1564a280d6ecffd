package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxCombined bounds how many writes one transaction combines.
const maxCombined = 64

// Writer runs the short write transactions of many goroutines on one database, combining the
// writes that wait for the database into one transaction: SQLite takes one writer at a time,
// and a transaction's fixed cost (taking the lock, writing each changed page to the log once,
// releasing it) is most of a small write's. The first caller to find no transaction under way
// runs one; callers that come while it runs queue their writes, and the next of them runs all
// those queued in one transaction, each inside its own savepoint, so a write that fails
// (a conflict, say) is undone alone and the others still commit. A caller returns once its own
// write is committed, or has failed, as with a transaction of its own; a write may see the
// effects of the writes combined before it, as it would had they committed just before it.
type Writer struct {
	db *sql.DB

	mu      sync.Mutex
	queue   []*write
	running bool
}

type write struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	err  error
	done chan error // gets the write's outcome, or errLead
}

// errLead tells a queued caller to run the next transaction, its own write among those queued.
var errLead = errors.New("run the next transaction")

// NewWriter returns a Writer of db.
func NewWriter(db *sql.DB) *Writer { return &Writer{db: db} }

// Write runs fn in a transaction, combined with other callers' writes, and returns fn's error,
// or the commit's. fn must use only tx, and must not keep it.
func (w *Writer) Write(ctx context.Context, fn func(*sql.Tx) error) error {
	op := &write{ctx: ctx, fn: fn, done: make(chan error, 1)}
	w.mu.Lock()
	if !w.running {
		w.running = true
		w.mu.Unlock()
		return w.lead(op)
	}
	w.queue = append(w.queue, op)
	w.mu.Unlock()
	select {
	case err := <-op.done:
		if err == errLead {
			return w.lead(op)
		}
		return err
	case <-ctx.Done():
	}
	w.mu.Lock()
	for i, q := range w.queue {
		if q == op {
			// Not taken yet: withdrawn, so it will never run.
			w.queue = append(w.queue[:i], w.queue[i+1:]...)
			w.mu.Unlock()
			return ctx.Err()
		}
	}
	w.mu.Unlock()
	// Taken: it runs (and fails on its ended context) or was told to lead.
	if err := <-op.done; err != errLead {
		return err
	}
	return w.lead(op)
}

// lead runs op with the writes queued so far in one transaction, answers their callers, and
// hands the running on to the first caller queued meanwhile, if any.
func (w *Writer) lead(op *write) error {
	w.mu.Lock()
	n := min(len(w.queue), maxCombined-1)
	batch := append([]*write{op}, w.queue[:n]...)
	w.queue = append(w.queue[:0:0], w.queue[n:]...)
	w.mu.Unlock()

	w.run(batch)
	for _, o := range batch[1:] {
		o.done <- o.err
	}

	w.mu.Lock()
	if len(w.queue) > 0 {
		next := w.queue[0]
		w.queue = w.queue[1:]
		next.done <- errLead
	} else {
		w.running = false
	}
	w.mu.Unlock()
	return op.err
}

// run runs a batch of writes in one transaction and sets each one's err.
func (w *Writer) run(batch []*write) {
	failAll := func(err error) {
		for _, o := range batch {
			if o.err == nil {
				o.err = err
			}
		}
	}
	// A write alone has a transaction of its own context, as without a Writer: waiting for the
	// connection ends with it. Combined writes share one that outlives any caller's context:
	// each write's statements use its caller's, and a caller whose context ends fails alone.
	ctx := context.Background()
	if len(batch) == 1 {
		ctx = batch[0].ctx
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		failAll(err)
		return
	}
	if len(batch) == 1 {
		if batch[0].err = batch[0].fn(tx); batch[0].err != nil {
			_ = tx.Rollback()
			return
		}
		if err := tx.Commit(); err != nil {
			batch[0].err = err
		}
		return
	}
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		if _, err := tx.Exec("SAVEPOINT write"); err != nil {
			failAll(err)
			_ = tx.Rollback()
			return
		}
		if o.err = o.fn(tx); o.err != nil {
			// Undo this write alone. If that fails, SQLite has already rolled the whole
			// transaction back (as after an I/O error), and every write in it fails.
			if _, err := tx.Exec("ROLLBACK TO write"); err != nil {
				failAll(err)
				_ = tx.Rollback()
				return
			}
			if _, err := tx.Exec("RELEASE write"); err != nil {
				failAll(err)
				_ = tx.Rollback()
				return
			}
			continue
		}
		if _, err := tx.Exec("RELEASE write"); err != nil {
			failAll(err)
			_ = tx.Rollback()
			return
		}
	}
	if err := tx.Commit(); err != nil {
		failAll(err)
	}
}
