// Package sqlitedb opens the embedded SQLite database (pure Go, modernc.org/sqlite) with the
// settings every embedded adapter relies on (OpenTemporary trades some for speed where the
// database dies with the process): WAL journaling so readers never block the writer,
// a busy timeout instead of SQLITE_BUSY errors, and synchronous=NORMAL, which in WAL mode loses
// no committed transaction on a process crash (only, at worst, the last ones on a power loss).
// Writer combines the short write transactions of many goroutines into one.
package sqlitedb

import (
	"database/sql"
	"fmt"
	"net/url"

	"modernc.org/sqlite"
)

// Open opens (creating if needed) the database file at path.
func Open(path string) (*sql.DB, error) { return open(path, false) }

// OpenTemporary is Open for a database no other process opens and that is deleted when this
// process ends (the data folder of `iac-ci run` without --data). Such a database needs only to
// survive this process, so it is opened for speed: it takes SQLite's locks once for good
// (locking_mode=EXCLUSIVE: no file-lock calls per transaction), keeps its rollback journal in
// memory (journal_mode=MEMORY: each changed page is written once, to the database itself, where
// WAL wrote it to the log and again at each checkpoint, in two calls a page), and never waits for
// the disk (synchronous=OFF: a 1000-order fan-out made about fifty fsync calls, each holding up
// every writer for milliseconds). Savepoints and rollbacks work as before. A crash in the middle
// of a commit can leave the file damaged, where WAL would not; the folder is then abandoned
// anyway, as it would be after any crash of `iac-ci run`.
func OpenTemporary(path string) (*sql.DB, error) { return open(path, true) }

func open(path string, temporary bool) (*sql.DB, error) {
	pragmas := []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(ON)"}
	if temporary {
		pragmas = []string{"locking_mode(EXCLUSIVE)", "journal_mode(MEMORY)", "busy_timeout(10000)", "synchronous(OFF)", "foreign_keys(ON)"}
	}
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate") // writers take the lock at BEGIN: no deadlock on lock upgrade
	connector, err := sqlite.NewConnector("file:" + path + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db := sql.OpenDB(uncancelledConnector{connector})
	// One connection: SQLite admits one writer at a time anyway, and writers on separate
	// connections that find the lock taken wait in SQLite's busy handler, which sleeps in steps of
	// milliseconds. Queueing on Go's connection pool instead wakes the next caller at once. No
	// adapter may use the database from inside its own transaction, or it would wait for itself.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}
