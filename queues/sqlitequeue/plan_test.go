package sqlitequeue

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/queues"
)

// The dead-letter step runs before every receive of a queue with a dead-letter queue: it must
// look only at messages received before, not scan the backlog of messages never received.
func TestDeadLetterLookupUsesTheRedeliveredIndex(t *testing.T) {
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(db, []queues.Spec{{Name: "dlq"}, {Name: "q", DeadLetter: "dlq", MaxReceives: 3}}); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("EXPLAIN QUERY PLAN "+sqlDeadLetter, "dlq", 0, "q", 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "queue_messages_redelivered") {
		t.Errorf("dead-letter lookup plan: %s; want it to use queue_messages_redelivered", got)
	}
}
