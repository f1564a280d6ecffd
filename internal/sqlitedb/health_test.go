package sqlitedb_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/internal/sqlitedb"
)

// The check notices an open database's file removed, or replaced by another.
func TestFileCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced", func(t *testing.T, path string) {
			other := path + ".new"
			if err := os.WriteFile(other, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "iac-ci.db")
			db, err := sqlitedb.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			queues, err := sqlitedb.Open(filepath.Join(dir, "queues.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer queues.Close()
			check, err := sqlitedb.FileCheck(filepath.Join(dir, "queues.db"), path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("CREATE TABLE t (x INTEGER)"); err != nil {
				t.Fatal(err)
			}
			if err := check(t.Context()); err != nil {
				t.Fatalf("check of the open file: %v", err)
			}
			tc.change(t, path)
			err = check(t.Context())
			if !errors.Is(err, sqlitedb.ErrFileGone) {
				t.Fatalf("check after the file was %s: %v, want ErrFileGone", tc.name, err)
			}
			if want := "iac-ci.db"; err != nil && !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		})
	}
}
