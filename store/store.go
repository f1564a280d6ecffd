// Package store is the state port: runs, their orders and their events, with conditional
// transitions so that two consumers working on one run at once cannot double-dispatch an order or
// lose a wake-up, and a duplicate message is a no-op. The embedded adapter is on SQLite
// (store/sqlitestore), the AWS adapter on DynamoDB (store/dynamostore); both pass the conformance
// suite in store/storetest.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/domain"
)

// Errors callers branch on. Adapters map their backend's errors onto these.
var (
	// ErrNotFound: no such run or order.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a conditional write found the record not in the expected state; nothing changed.
	ErrConflict = errors.New("conflict: record not in the expected state")
)

// AnyAttempt in OrderChange.Attempt skips the attempt check.
const AnyAttempt = -1

// OrderChange is one conditional move of an order. It applies only when the order's status is
// one of From and (unless Attempt is AnyAttempt) its attempt equals Attempt; otherwise UpdateOrder
// returns ErrConflict and changes nothing. The move must be allowed by domain.CanMoveOrder.
//
// Zero-valued fields below To are left unchanged, with one exception: a move to a terminal status
// clears DueAt. A move to a non-terminal status must give DueAt.
//
// A move to a terminal status also updates the run in the same atomic write: Open decreases by
// one, and for an order that must succeed Failed increases when To is failed or skipped, TimedOut
// when To is timed_out. So a run's counters always agree with its orders.
//
// Events are written in the same atomic write as the move, so an order's history records
// exactly the moves that happened (and a move refused writes none); an event with the key of
// one already stored replaces it, as in AppendEvents.
type OrderChange struct {
	RunID    string
	OrderNum int
	From     []domain.OrderStatus
	Attempt  int

	To          domain.OrderStatus
	NextAttempt bool // starts the next attempt: the stored attempt number goes up by one
	DueAt       time.Time
	QueuedAt    time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	ExitCode    *int
	Reason      string
	LogKey      string
	LogTail     string

	Events []domain.Event // written with the move, atomically

	// ReturnOrder asks for the order as the move left it, in Moved.Order (a claim needs the
	// record it claimed; asking saves reading it first).
	ReturnOrder bool
}

// Moved is what an applied move reports.
type Moved struct {
	// Order is the order as the move left it, when the change asked (ReturnOrder).
	Order domain.OrderRecord
	// LastOpen is true when the move was terminal and its order was the run's last open one:
	// the run is ready to be finalized. It is exact, even when several orders of the run end at
	// once, so no caller needs to read the run to learn it.
	LastOpen bool
}

// RunChange is one conditional move of a run: it applies only when the run's status is one of
// From, and (when OnlyIfUnreported) the run is not yet Reported; otherwise ErrConflict.
type RunChange struct {
	RunID            string
	From             []domain.RunStatus
	OnlyIfUnreported bool

	To         domain.RunStatus // may equal the current status (to set Reported alone)
	FinishedAt time.Time        // zero leaves it
	Reported   bool             // true sets Reported; it is never cleared

	Events []domain.Event // written with the move, atomically (as in OrderChange)
}

// Store keeps runs, orders and events. Every method is safe for concurrent use.
type Store interface {
	// CreateRun inserts a run and all its orders in one atomic write, with events: the history
	// of the states the orders are inserted in (intake inserts a run's first orders already
	// queued, with their queued events), written with them as a move writes its own
	// (OrderChange.Events). Inserting a run whose id already exists changes nothing, its events
	// included, and returns nil, so intake can be retried.
	CreateRun(ctx context.Context, run domain.Run, orders []domain.OrderRecord, events ...domain.Event) error
	// GetRun returns a run, or ErrNotFound. Reads are strongly consistent.
	GetRun(ctx context.Context, runID string) (domain.Run, error)
	// GetOrder returns one order, or ErrNotFound.
	GetOrder(ctx context.Context, runID string, orderNum int) (domain.OrderRecord, error)
	// GetOrders returns the named orders of a run in the order of nums (ErrNotFound if any is
	// missing). Its cost grows with len(nums), not with the size of the run.
	GetOrders(ctx context.Context, runID string, nums []int) ([]domain.OrderRecord, error)
	// ListOrders returns every order of a run by order number (for status pages and summaries,
	// never on the path of one result).
	ListOrders(ctx context.Context, runID string) ([]domain.OrderRecord, error)
	// UpdateOrder applies one conditional move (see OrderChange) and reports what it did.
	UpdateOrder(ctx context.Context, c OrderChange) (Moved, error)
	// UpdateRun applies one conditional move of a run (see RunChange).
	UpdateRun(ctx context.Context, c RunChange) error
	// DueOrders returns up to limit non-terminal orders whose DueAt is at or before now, earliest
	// first, from any run.
	DueOrders(ctx context.Context, now time.Time, limit int) ([]domain.OrderRecord, error)
	// ActiveRuns returns up to limit runs that are not yet Reported (running, or ended with
	// finalization side effects still to write).
	ActiveRuns(ctx context.Context, limit int) ([]domain.Run, error)
	// ListRuns returns runs newest first (by CreatedAt to the millisecond; runs created in the
	// same millisecond in an order of the adapter's that paging keeps) that match
	// every field set in f, at most f.Limit of them (DefaultRunPage when zero, MaxRunPage at
	// most), starting after the run f.After names (a RunPage.Next of an earlier call).
	// RunPage.Next is empty exactly when no further run matches.
	ListRuns(ctx context.Context, f RunFilter) (RunPage, error)
	// AppendEvents writes events; writing an event with the same (TraceID, OrderName, Epoch, Type)
	// again replaces it, so retried writes do not duplicate history.
	AppendEvents(ctx context.Context, events ...domain.Event) error
	// ListEvents returns a trace's events by Epoch, then OrderName, then Type.
	ListEvents(ctx context.Context, traceID string) ([]domain.Event, error)
}

// Page sizes of ListRuns.
const (
	DefaultRunPage = 50
	MaxRunPage     = 500
)

// RunFilter picks runs for ListRuns. Zero fields match every run.
type RunFilter struct {
	Status   domain.RunStatus
	GitRepo  string
	PRNumber int
	Username string
	// Limit is the page size (see ListRuns).
	Limit int
	// After is where the page starts: the Next of the page before; empty starts with the newest.
	After string
}

// RunPage is one page of ListRuns.
type RunPage struct {
	Runs []domain.Run
	// Next continues the listing (RunFilter.After), empty on the last page.
	Next string
}

// PageSize is the number of runs a page of f holds.
func (f RunFilter) PageSize() int {
	switch {
	case f.Limit <= 0:
		return DefaultRunPage
	case f.Limit > MaxRunPage:
		return MaxRunPage
	}
	return f.Limit
}

// RunCursor is the position of a run in the newest-first listing: what RunPage.Next carries.
// It is "<created_at in unix milliseconds>.<run_id>", so that any adapter can resume from it.
func RunCursor(run domain.Run) string {
	return strconv.FormatInt(run.CreatedAt.UnixMilli(), 10) + "." + run.RunID
}

// ParseRunCursor reads a RunCursor back, or says how it is malformed.
func ParseRunCursor(c string) (createdMillis int64, runID string, err error) {
	ms, id, ok := strings.Cut(c, ".")
	if ok {
		createdMillis, err = strconv.ParseInt(ms, 10, 64)
	}
	if !ok || err != nil || id == "" {
		return 0, "", fmt.Errorf("malformed page cursor %q: pass the next value of the page before, or nothing for the first page", c)
	}
	return createdMillis, id, nil
}

// CheckRun refuses a run and orders that CreateRun cannot insert as one run: an empty run id, an
// order of another run, an order number below 1 or repeated. Adapters call it first.
func CheckRun(run domain.Run, orders []domain.OrderRecord) error {
	if run.RunID == "" {
		return errors.New("empty run id")
	}
	seen := make(map[int]bool, len(orders))
	for _, o := range orders {
		switch {
		case o.RunID != run.RunID:
			return fmt.Errorf("order %d belongs to run %q", o.OrderNum, o.RunID)
		case o.OrderNum < 1:
			return fmt.Errorf("order number %d is not positive", o.OrderNum)
		case seen[o.OrderNum]:
			return fmt.Errorf("order number %d appears twice", o.OrderNum)
		}
		seen[o.OrderNum] = true
	}
	return nil
}
