package sqlitedb_test

import (
	"path/filepath"
	"testing"

	"github.com/iac-ci/iac-ci/internal/sqlitedb"
)

// Tables move with their rows and indexes; the old file keeps the rest; moving again, or from a
// file that lacks them or does not exist, moves nothing.
func TestMoveTables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldPath := filepath.Join(dir, "old.db")
	old, err := sqlitedb.Open(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	for _, q := range []string{
		`CREATE TABLE a (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`,
		`CREATE INDEX a_v ON a (v) WHERE v > 0`,
		`CREATE TABLE b (n INTEGER PRIMARY KEY)`,
		`CREATE TABLE keep (n INTEGER)`,
		`INSERT INTO a VALUES ('x', 1), ('y', 2)`,
		`INSERT INTO b VALUES (1), (2), (3)`,
		`INSERT INTO keep VALUES (9)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sqlitedb.Open(filepath.Join(dir, "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// b exists already (as an adapter makes it), with a row copied by a move a crash cut short.
	if _, err := db.Exec(`CREATE TABLE b (n INTEGER PRIMARY KEY); INSERT INTO b VALUES (1)`); err != nil {
		t.Fatal(err)
	}

	n, err := sqlitedb.MoveTables(t.Context(), db, oldPath, "a", "b", "missing")
	if err != nil || n != 4 {
		t.Fatalf("MoveTables: %d rows, %v; want 4 (two of a, two of b not yet copied)", n, err)
	}
	var rows int
	for q, want := range map[string]int{
		`SELECT count(*) FROM a`: 2, `SELECT count(*) FROM b`: 3,
		`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'a_v'`: 1,
	} {
		if err := db.QueryRow(q).Scan(&rows); err != nil || rows != want {
			t.Errorf("new: %s = %d, %v; want %d", q, rows, err, want)
		}
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM sqlite_master WHERE name IN ('a', 'b', 'a_v')`: 0,
		`SELECT count(*) FROM keep`: 1,
	} {
		if err := old.QueryRow(q).Scan(&rows); err != nil || rows != want {
			t.Errorf("old: %s = %d, %v; want %d", q, rows, err, want)
		}
	}
	if n, err := sqlitedb.MoveTables(t.Context(), db, oldPath, "a", "b"); err != nil || n != 0 {
		t.Errorf("moving again: %d rows, %v; want nothing", n, err)
	}
	if n, err := sqlitedb.MoveTables(t.Context(), db, filepath.Join(dir, "none.db"), "a"); err != nil || n != 0 {
		t.Errorf("from no file: %d rows, %v; want nothing", n, err)
	}
}
