package sqlitedb_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/internal/sqlitedb"
)

// writerOnTable opens a database with one table, w (n INTEGER PRIMARY KEY), and its Writer.
func writerOnTable(t *testing.T) (*sql.DB, *sqlitedb.Writer) {
	t.Helper()
	db := open(t)
	if _, err := db.Exec(`CREATE TABLE w (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return db, sqlitedb.NewWriter(db)
}

func rows(t *testing.T, db *sql.DB) map[int]bool {
	t.Helper()
	r, err := db.Query(`SELECT n FROM w`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[int]bool{}
	for r.Next() {
		var n int
		if err := r.Scan(&n); err != nil {
			t.Fatal(err)
		}
		got[n] = true
	}
	return got
}

func insert(n int) func(*sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO w (n) VALUES (?)`, n)
		return err
	}
}

// running starts a write that holds the Writer until release is closed, and returns once it
// runs: writes made meanwhile queue behind it.
func running(t *testing.T, w *sqlitedb.Writer) (release chan struct{}, done chan error) {
	t.Helper()
	started, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- w.Write(context.Background(), func(tx *sql.Tx) error {
			close(started)
			<-release
			return insert(0)(tx)
		})
	}()
	<-started
	return release, done
}

// waitQueued gives the goroutines just started the time to queue their writes.
func waitQueued() { time.Sleep(50 * time.Millisecond) }

// Writes that wait while another runs go together in the next transaction; one that fails is
// undone alone, with its own error, and the others commit.
func TestWriterCombinesWaitingWritesAndUndoesAFailedOneAlone(t *testing.T) {
	t.Parallel()
	db, w := writerOnTable(t)
	release, first := running(t, w)

	var (
		mu  sync.Mutex
		txs = map[*sql.Tx]int{}
		wg  sync.WaitGroup
	)
	errs := make([]error, 6)
	boom := errors.New("boom")
	for i := 1; i <= 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Write(t.Context(), func(tx *sql.Tx) error {
				mu.Lock()
				txs[tx]++
				mu.Unlock()
				if err := insert(i)(tx); err != nil {
					return err
				}
				if i == 3 {
					return boom // after its insert: the insert must be undone
				}
				return nil
			})
		}()
	}
	waitQueued()
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := 1; i <= 5; i++ {
		if want := error(nil); i == 3 {
			if !errors.Is(errs[i], boom) {
				t.Errorf("write 3: %v, want its own error", errs[i])
			}
		} else if errs[i] != want {
			t.Errorf("write %d: %v", i, errs[i])
		}
	}
	if len(txs) != 1 {
		t.Errorf("the five waiting writes ran in %d transactions, want 1: %v", len(txs), txs)
	}
	got := rows(t, db)
	for _, n := range []int{0, 1, 2, 4, 5} {
		if !got[n] {
			t.Errorf("row %d missing: %v", n, got)
		}
	}
	if got[3] {
		t.Error("the failed write's row was committed")
	}
}

// A write whose statement fails (here a constraint) is undone alone too, the transaction still
// good for the others.
func TestWriterUndoesAFailedStatementAlone(t *testing.T) {
	t.Parallel()
	db, w := writerOnTable(t)
	release, first := running(t, w)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, n := range []int{7, 0, 8} { // 0 is the running write's row: a primary key clash
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.Write(t.Context(), insert(n)) }()
	}
	waitQueued()
	close(release)
	<-first
	wg.Wait()
	if errs[0] != nil || errs[2] != nil || errs[1] == nil {
		t.Fatalf("errors %v; want only the clashing insert to fail", errs)
	}
	if got := rows(t, db); !got[7] || !got[8] || len(got) != 3 {
		t.Fatalf("rows %v, want 0, 7 and 8", got)
	}
}

// A caller that gives up before its write is taken withdraws it: it never runs.
func TestWriterWithdrawsAWriteWhoseContextEndsWhileItWaits(t *testing.T) {
	t.Parallel()
	db, w := writerOnTable(t)
	release, first := running(t, w)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- w.Write(ctx, func(tx *sql.Tx) error { ran <- struct{}{}; return insert(9)(tx) })
	}()
	waitQueued()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("withdrawn write: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The Writer goes on: a later write runs, and the withdrawn one never did.
	if err := w.Write(t.Context(), insert(10)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
		t.Fatal("the withdrawn write ran")
	default:
	}
	if got := rows(t, db); got[9] || !got[10] {
		t.Fatalf("rows %v", got)
	}
}

// Many writers at once: every write is committed exactly once and every caller answered.
func TestWriterUnderLoad(t *testing.T) {
	t.Parallel()
	db, w := writerOnTable(t)
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- w.Write(t.Context(), insert(i)) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := rows(t, db); len(got) != n {
		t.Fatalf("%d rows, want %d", len(got), n)
	}
}
