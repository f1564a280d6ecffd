package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// MoveTables moves tables, with their rows and indexes, from the database file at fromPath into
// db (as from a data folder whose one database held what two hold now). It copies them in one
// transaction and drops them from fromPath in a second: a crash between the two leaves them in
// both, and moving again finishes the move, keeping the rows already copied (INSERT OR IGNORE:
// nothing else writes the tables before the move ends). A table db lacks is made with the
// definition it had in fromPath. A file that does not exist, or holds none of the tables, moves
// nothing. It returns the number of rows copied.
func MoveTables(ctx context.Context, db *sql.DB, fromPath string, tables ...string) (int64, error) {
	if _, err := os.Stat(fromPath); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("move tables from %s: %w", fromPath, err)
	}
	conn, err := db.Conn(ctx) // ATTACH holds for one connection
	if err != nil {
		return 0, fmt.Errorf("move tables from %s: %w", fromPath, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS moved_from", fromPath); err != nil {
		return 0, fmt.Errorf("move tables from %s: %w", fromPath, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DETACH DATABASE moved_from")

	var (
		found  []string
		copied int64
	)
	err = inConnTx(ctx, conn, func(tx *sql.Tx) error {
		for _, table := range tables {
			defs, err := definitions(ctx, tx, table)
			if err != nil || len(defs) == 0 {
				return err
			}
			found = append(found, table)
			var have int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&have); err != nil {
				return err
			}
			if have == 0 {
				for _, def := range defs { // unqualified, they make the table and its indexes in main
					if _, err := tx.ExecContext(ctx, def); err != nil {
						return fmt.Errorf("make %s: %w", table, err)
					}
				}
			}
			res, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT OR IGNORE INTO main.%q SELECT * FROM moved_from.%q", table, table))
			if err != nil {
				return fmt.Errorf("copy %s: %w", table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			copied += n
		}
		return nil
	})
	if err != nil || len(found) == 0 {
		return 0, wrapMove(fromPath, err)
	}
	err = inConnTx(ctx, conn, func(tx *sql.Tx) error {
		for _, table := range found {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("DROP TABLE moved_from.%q", table)); err != nil {
				return fmt.Errorf("drop %s: %w", table, err)
			}
		}
		return nil
	})
	return copied, wrapMove(fromPath, err)
}

// definitions returns the SQL that made table in moved_from, the table's first, then its
// indexes' (an index SQLite made itself, for a key, has none); nothing when there is no table.
func definitions(ctx context.Context, tx *sql.Tx, table string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT sql FROM moved_from.sqlite_master
		WHERE tbl_name = ? AND type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type = 'index', name`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var defs []string
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			return nil, err
		}
		defs = append(defs, def)
	}
	return defs, rows.Err()
}

func inConnTx(ctx context.Context, conn *sql.Conn, fn func(*sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func wrapMove(fromPath string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("move tables from %s: %w", fromPath, err)
}
