package sqlitedb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrFileGone: a database file was removed or replaced while the process had it open. SQLite
// goes on writing to the open, unlinked file without an error, and every write is lost when
// the process ends.
var ErrFileGone = errors.New("database file removed or replaced while open")

// FileCheck returns a check that each database file at paths is still the one there now: it
// exists and is the same file (device and inode) as when FileCheck was called. Call it right
// after opening the databases. The check's errors name a file by its base name only.
func FileCheck(paths ...string) (func(context.Context) error, error) {
	checks := make([]func() error, len(paths))
	for i, path := range paths {
		c, err := fileCheck(path)
		if err != nil {
			return nil, err
		}
		checks[i] = c
	}
	return func(context.Context) error {
		for _, c := range checks {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func fileCheck(path string) (func() error, error) {
	first, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("database file: %w", err)
	}
	name := filepath.Base(path)
	return func() error {
		now, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w (it no longer exists: restart to open the data folder again)", name, ErrFileGone)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !os.SameFile(first, now) {
			return fmt.Errorf("%s: %w (another file is there now: restart to open it)", name, ErrFileGone)
		}
		return nil
	}, nil
}
