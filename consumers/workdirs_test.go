package consumers_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/iac-ci/iac-ci/consumers"
)

func getDir(t *testing.T, w *consumers.WorkDirs) string {
	t.Helper()
	dir, err := w.Get()
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("Get handed out %s with %d entries (%v), want an empty directory", dir, len(entries), err)
	}
	if info, err := os.Lstat(dir); err != nil || !info.IsDir() || info.Mode().Perm() != 0o700 {
		t.Fatalf("Get handed out %s: %v %v, want a directory of mode 0700", dir, info, err)
	}
	return dir
}

func requireGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there (%v)", path, err)
	}
}

func TestWorkDirsKeepsEmptyDirectories(t *testing.T) {
	t.Parallel()
	w := &consumers.WorkDirs{Root: filepath.Join(t.TempDir(), "work"), Keep: 1}
	a, b := getDir(t, w), getDir(t, w)
	if a == b {
		t.Fatalf("two directories in use at once are the same: %s", a)
	}
	w.Put(a)
	w.Put(b) // one more than Keep: removed
	requireGone(t, b)
	if again := getDir(t, w); again != a {
		t.Errorf("Get after an empty directory came back: %s, want it again (%s)", again, a)
	}
	c := getDir(t, w)
	w.Put(c)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	requireGone(t, c)
}

func TestWorkDirsRemovesWhatOrdersLeftBehind(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	w := &consumers.WorkDirs{Root: filepath.Join(root, "work"), Keep: 4}

	// Files left behind: the directory is removed with them.
	full := getDir(t, w)
	if err := os.MkdirAll(filepath.Join(full, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "sub", "left-behind"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.Put(full)
	requireGone(t, full)

	// The directory replaced by a symlink: the link goes, what it points to stays.
	outside := filepath.Join(root, "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	linked := getDir(t, w)
	if err := os.Remove(linked); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, linked); err != nil {
		t.Fatal(err)
	}
	w.Put(linked)
	requireGone(t, linked)
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("the symlink's target: %v, want it untouched", err)
	}

	// A kept directory whose mode changed is not handed out again.
	opened := getDir(t, w)
	w.Put(opened)
	if err := os.Chmod(opened, 0o777); err != nil {
		t.Fatal(err)
	}
	if next := getDir(t, w); next == opened {
		t.Errorf("Get handed out %s again after its mode changed", opened)
	}
	requireGone(t, opened)
}

func TestWorkDirsZeroKeepsNothing(t *testing.T) {
	t.Parallel()
	w := &consumers.WorkDirs{Root: filepath.Join(t.TempDir(), "work")}
	dir := getDir(t, w)
	w.Put(dir)
	requireGone(t, dir)
}
