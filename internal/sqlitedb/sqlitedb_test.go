package sqlitedb_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/internal/sqlitedb"
)

func open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A statement under way runs to its end when its context ends: the driver is handed contexts
// that never end, so it starts no watch per statement.
func TestStatementRunsToItsEndAfterItsContextEnds(t *testing.T) {
	t.Parallel()
	db := open(t)
	// The connection is taken first, so that the statement starts at once: database/sql checks
	// the context before it hands the statement to the driver, and on a loaded machine a wait
	// for the connection could outlast the delay (the test then failed for that, not for what it
	// checks). The delay leaves the statement well begun before its context ends.
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const delay = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(delay, cancel)
	// An Exec, not a query: database/sql itself closes a query's rows when its context ends, so
	// a row read after the end fails whatever the driver did (and the test then raced the read).
	start := time.Now()
	_, err = conn.ExecContext(ctx, `CREATE TABLE c AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
		SELECT x FROM c`)
	if err != nil {
		t.Fatalf("create: %v; want no error", err)
	}
	took := time.Since(start)
	var n int
	if err := conn.QueryRowContext(t.Context(), `SELECT count(*) FROM c`).Scan(&n); err != nil || n != 1000000 {
		t.Fatalf("count: %d, %v; want 1000000 and no error", n, err)
	}
	if took < delay {
		t.Fatalf("the statement took %v, less than the %v before its context ended: the test proves nothing", took, delay)
	}
}

// Waiting for the one connection still ends with the context: a transaction's, and a write a
// Writer runs alone, as a transaction of its own would.
func TestWaitForTheConnectionEndsWithItsContext(t *testing.T) {
	t.Parallel()
	db, w := writerOnTable(t)
	held, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback()
	for name, begin := range map[string]func(context.Context) error{
		"BeginTx":      func(ctx context.Context) error { _, err := db.BeginTx(ctx, nil); return err },
		"Writer.Write": func(ctx context.Context) error { return w.Write(ctx, insert(1)) },
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		err := begin(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while the connection is held: %v, want the context's deadline", name, err)
		}
	}
}

// A transaction whose context ends is rolled back, as database/sql promises.
func TestTransactionWhoseContextEndsIsRolledBack(t *testing.T) {
	t.Parallel()
	db := open(t)
	if _, err := db.Exec(`CREATE TABLE t (v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	cancel()
	// database/sql rolls the transaction back in the background once ctx ends.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := tx.Commit()
		if errors.Is(err, sql.ErrTxDone) || errors.Is(err, context.Canceled) {
			break
		}
		if err == nil {
			t.Fatalf("Commit after the context ended succeeded")
		}
		if time.Now().After(deadline) {
			t.Fatalf("Commit: %v", err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after the rollback: %d, %v; want 0", n, err)
	}
}

// A database of the data folder is written through a WAL, waits for the disk at checkpoints
// (synchronous=NORMAL) and shares its file with other processes; a temporary one keeps its
// journal in memory, never waits (OFF) and holds its locks (locking_mode=EXCLUSIVE), so that
// another connection cannot read it.
func TestTemporaryDatabase(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		open       func(string) (*sql.DB, error)
		journal    string
		sync       int
		locking    string
		othersRead bool
	}{{sqlitedb.Open, "wal", 1, "normal", true}, {sqlitedb.OpenTemporary, "memory", 0, "exclusive", false}} {
		path := filepath.Join(t.TempDir(), "test.db")
		db, err := c.open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var sync int
		var journal, locking string
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&journal); err != nil || journal != c.journal {
			t.Errorf("journal_mode = %q (%v), want %q", journal, err, c.journal)
		}
		if err := db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil || sync != c.sync {
			t.Errorf("synchronous = %d (%v), want %d", sync, err, c.sync)
		}
		if err := db.QueryRow("PRAGMA locking_mode").Scan(&locking); err != nil || locking != c.locking {
			t.Errorf("locking_mode = %q (%v), want %q", locking, err, c.locking)
		}
		if _, err := db.Exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = other.QueryRow("SELECT count(*) FROM t").Scan(&n)
		other.Close()
		if read := err == nil; read != c.othersRead {
			t.Errorf("another connection's read: %v; want a read: %v", err, c.othersRead)
		}
	}
}
