package localsecrets_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/secrets"
	"github.com/iac-ci/iac-ci/secrets/localsecrets"
	"github.com/iac-ci/iac-ci/secrets/secretstest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	secretstest.Run(t, secretstest.Harness{
		OpenKeys: func(t *testing.T) secrets.Keys {
			k, err := localsecrets.NewKeys(dir)
			if err != nil {
				t.Fatalf("NewKeys: %v", err)
			}
			return k
		},
		OpenSource: func(t *testing.T, params, secretValues map[string]string) secrets.Source {
			all := map[string]string{}
			for k, v := range params {
				all[k] = v
			}
			for k, v := range secretValues {
				all[k] = v
			}
			return loadSource(t, writeSecretsFile(t, all, 0o600))
		},
	})
}

func TestKeyFilePermissions(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k, err := localsecrets.NewKeys(dir)
	if err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o700 {
		t.Errorf("key folder mode: got %04o, want 0700", got)
	}
	const run = "20260101T000000Z-0123456789abcdef"
	if err := k.PutRunKey(t.Context(), run, "AGE-SECRET-KEY-1XYZ"); err != nil {
		t.Fatalf("PutRunKey: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("key folder holds %d entries after one put, want 1 (no temporary files left)", len(entries))
	}
	info, err = entries[0].Info()
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode: got %04o, want 0600", got)
	}
	if !strings.Contains(entries[0].Name(), run) {
		t.Errorf("key file %q does not carry the run id", entries[0].Name())
	}
}

func TestKeysRejectUnsafeRunIDs(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	k, err := localsecrets.NewKeys(filepath.Join(parent, "keys"))
	if err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	ctx := t.Context()
	for _, id := range []string{"", ".", "..", "../escape", "a/b", `a\b`, ".hidden", "x\x00y", "sp ace", strings.Repeat("a", 129)} {
		if err := k.PutRunKey(ctx, id, "AGE-SECRET-KEY-1XYZ"); err == nil {
			t.Errorf("PutRunKey(%q): got nil error", id)
		}
		if _, err := k.GetRunKey(ctx, id); err == nil || errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("GetRunKey(%q): got %v, want a run id error", id, err)
		}
		if err := k.DeleteRunKey(ctx, id); err == nil {
			t.Errorf("DeleteRunKey(%q): got nil error", id)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "escape.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key was written outside the key folder: %v", err)
	}
}

func TestLoadSourceRefusesOpenFile(t *testing.T) {
	t.Parallel()
	const value = "value-that-must-not-leak"
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		path := writeSecretsFile(t, map[string]string{"/x": value}, mode)
		_, err := localsecrets.LoadSource(path)
		if err == nil {
			t.Fatalf("LoadSource of a %04o file: got nil error", mode)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("LoadSource of a %04o file: error %q does not say to chmod 600", mode, err)
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("LoadSource error holds a value")
		}
	}
}

func TestLoadSourceEmptyPath(t *testing.T) {
	t.Parallel()
	src := loadSource(t, "")
	_, err := src.Parameter(t.Context(), "/team/db")
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Parameter without a secrets file: got %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "--secrets FILE") || !strings.Contains(err.Error(), "/team/db") {
		t.Errorf("error %q should name the path and say to pass --secrets FILE", err)
	}
	if _, err := src.Secret(t.Context(), "api"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Secret without a secrets file: got %v, want ErrNotFound", err)
	}
}

func TestLoadSourceBadContent(t *testing.T) {
	t.Parallel()
	const value = "leaky-value-123"
	tests := map[string]string{
		"not JSON":         `{"/x": "` + value + `" oops}`,
		"not an object":    `["` + value + `"]`,
		"non-string value": `{"/x": {"nested": "` + value + `"}}`,
		"number value":     `{"/x": 12345678}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "secrets.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := localsecrets.LoadSource(path)
			if err == nil {
				t.Fatalf("LoadSource: got nil error")
			}
			if strings.Contains(err.Error(), value) || strings.Contains(err.Error(), "12345678") {
				t.Errorf("LoadSource error holds a value: %q", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("LoadSource error %q does not name the file", err)
			}
		})
	}
	if _, err := localsecrets.LoadSource(filepath.Join(t.TempDir(), "absent.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadSource of a missing file: got %v, want ErrNotExist", err)
	}
}

func writeSecretsFile(t *testing.T, values map[string]string, mode os.FileMode) string {
	t.Helper()
	b, err := json.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is filtered by the umask
		t.Fatal(err)
	}
	return path
}

func loadSource(t *testing.T, path string) *localsecrets.Source {
	t.Helper()
	src, err := localsecrets.LoadSource(path)
	if err != nil {
		t.Fatalf("LoadSource: %v", err)
	}
	return src
}

// A key read once is served from memory after (every order of a run reads it), until this Keys
// deletes it; at most MaxCachedKeys are kept.
func TestKeysKeepKeysInMemoryUntilDeleted(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	writer, err := localsecrets.NewKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := localsecrets.NewKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const run = "run-1"
	if err := writer.PutRunKey(ctx, run, "AGE-SECRET-KEY-1ONE"); err != nil {
		t.Fatal(err)
	}
	if got, err := reader.GetRunKey(ctx, run); err != nil || got != "AGE-SECRET-KEY-1ONE" {
		t.Fatalf("first read: %q, %v", got, err)
	}
	if err := os.Remove(filepath.Join(dir, run+".key")); err != nil {
		t.Fatal(err)
	}
	if got, err := reader.GetRunKey(ctx, run); err != nil || got != "AGE-SECRET-KEY-1ONE" {
		t.Fatalf("second read, the file gone: %q, %v; want the key from memory", got, err)
	}
	if err := reader.DeleteRunKey(ctx, run); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.GetRunKey(ctx, run); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("read after delete: %v, want ErrNotFound", err)
	}

	// Bounded: of more keys than it keeps, only MaxCachedKeys outlive their files.
	many, err := localsecrets.NewKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := localsecrets.MaxCachedKeys + 50
	for i := range n {
		if err := many.PutRunKey(ctx, fmt.Sprintf("run-b%d", i), "AGE-SECRET-KEY-1B"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	served := 0
	for i := range n {
		if _, err := many.GetRunKey(ctx, fmt.Sprintf("run-b%d", i)); err == nil {
			served++
		}
	}
	if served != localsecrets.MaxCachedKeys {
		t.Fatalf("%d keys served from memory, want %d", served, localsecrets.MaxCachedKeys)
	}
}
