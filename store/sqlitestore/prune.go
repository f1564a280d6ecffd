package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Pruned is a run Prune removed, with what its objects are found by.
type Pruned struct {
	RunID, TraceID string
}

// Prune removes up to limit runs that ended, and were reported, before before, with their
// orders and their history, oldest first, and returns them so that their objects can go too. A
// data folder would otherwise grow by every run it ever ran; on AWS the same is done by the
// tables' TTL.
func (s *Store) Prune(ctx context.Context, before time.Time, limit int) ([]Pruned, error) {
	const op = "prune runs"
	rows, err := s.db.QueryContext(ctx, `SELECT run_id, json_extract(record, '$.trace_id') FROM store_runs
		WHERE reported = 1 AND created_at < ? ORDER BY created_at, run_id LIMIT ?`, before.UnixMilli(), limit)
	if err != nil {
		return nil, storeError(op, err)
	}
	var runs []Pruned
	for rows.Next() {
		var p Pruned
		var trace *string
		if err := rows.Scan(&p.RunID, &trace); err != nil {
			rows.Close()
			return nil, storeError(op, err)
		}
		if trace != nil {
			p.TraceID = *trace
		}
		runs = append(runs, p)
	}
	if err := rows.Close(); err != nil {
		return nil, storeError(op, err)
	}
	if len(runs) == 0 {
		return nil, nil
	}
	err = s.write(ctx, op, func(tx *sql.Tx) error {
		for _, p := range runs {
			for _, q := range []string{`DELETE FROM store_orders WHERE run_id = ?`, `DELETE FROM store_runs WHERE run_id = ?`} {
				if _, err := tx.ExecContext(ctx, q, p.RunID); err != nil {
					return fmt.Errorf("%s %s: %w", op, p.RunID, err)
				}
			}
			// A trace is one run's, but a caller may once have given two runs one: its events go
			// with the last of them.
			var others int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM store_runs WHERE json_extract(record, '$.trace_id') = ?`,
				p.TraceID).Scan(&others); err != nil {
				return fmt.Errorf("%s %s: %w", op, p.RunID, err)
			}
			if others == 0 {
				if _, err := tx.ExecContext(ctx, `DELETE FROM store_events WHERE trace_id = ?`, p.TraceID); err != nil {
					return fmt.Errorf("%s %s: %w", op, p.RunID, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return runs, nil
}
