// Package sqlitedbtest opens the engine's SQLite database for tests.
package sqlitedbtest

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/iac-ci/iac-ci/internal/sqlitedb"
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
