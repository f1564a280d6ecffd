// Package sqlitedbtest opens the engine's SQLite database, and the embedded adapters on it, for
// tests.
package sqlitedbtest

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
)

// Open opens (creating it) the database iac-ci.db in dir, or in a new temporary folder when dir
// is "", as the embedded engine opens its own; it fails tb if it cannot, and closes the
// database when tb ends.
func Open(tb testing.TB, dir string) *sql.DB {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	db, err := sqlitedb.Open(filepath.Join(dir, "iac-ci.db"))
	if err != nil {
		tb.Fatalf("open database: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Ports opens the embedded queues (specs, or every queue of queues.Topology when none are
// given) and store on db; it fails tb if it cannot.
func Ports(tb testing.TB, db *sql.DB, specs ...queues.Spec) (*sqlitequeue.Broker, *sqlitestore.Store) {
	tb.Helper()
	if len(specs) == 0 {
		specs = queues.Topology()
	}
	broker, err := sqlitequeue.Open(db, specs)
	if err != nil {
		tb.Fatalf("open queues: %v", err)
	}
	st, err := sqlitestore.Open(db)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	return broker, st
}

// Queue opens one embedded queue, name, with a visibility timeout of a minute, on a new database.
func Queue(tb testing.TB, name string) queues.Queue {
	tb.Helper()
	broker, _ := Ports(tb, Open(tb, ""), queues.Spec{Name: name, Visibility: time.Minute})
	q, err := broker.Queue(name)
	if err != nil {
		tb.Fatalf("queue %s: %v", name, err)
	}
	return q
}
