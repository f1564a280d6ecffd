// Package localsecrets holds the embedded adapters of the secrets port: run keys as 0600 files in
// a 0700 folder, and secret values from a local JSON file that maps each parameter path or
// secret name to its value (iac-ci's --secrets FILE).
//
// Nothing here writes a value into an error or a log.
package localsecrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/iac-ci/iac-ci/secrets"
)

// Keys keeps each run's private key in <dir>/<run_id>.key, readable by the owner only.
//
// A key once written or read is also kept in memory, up to MaxCachedKeys of them, until this
// Keys deletes it: a run's key never changes while it exists, and every order of a run reads it
// (reading the file was about a fortieth of an order's time in the engine). A key deleted by
// another process may still be served from memory; only orders of ended runs would ask for it,
// and a worker claims no order of an ended run.
type Keys struct {
	dir string

	mu     sync.Mutex
	cached map[string]string
}

// MaxCachedKeys bounds the keys a Keys keeps in memory; when full, one chosen at random makes
// room.
const MaxCachedKeys = 1024

var _ secrets.Keys = (*Keys)(nil)

// NewKeys returns a key store in dir, creating it with mode 0700 and tightening an existing
// folder to 0700: the keys open every sealed bundle of their runs.
func NewKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict key folder: %w", err)
	}
	return &Keys{dir: dir, cached: map[string]string{}}, nil
}

// runIDPattern admits every id domain.NewRunID makes and anything else that is a plain file name:
// no separators, no "." or "..", nothing a shell or another OS would read differently.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

func (k *Keys) path(runID string) (string, error) {
	if !runIDPattern.MatchString(runID) {
		return "", fmt.Errorf("run id %q is not 1-128 letters, digits, '.', '_' or '-' (not starting with '.')", runID)
	}
	return filepath.Join(k.dir, runID+".key"), nil
}

// PutRunKey writes the key to a temporary file and links it into place, so a reader sees no key
// or the whole key, never a part, and a key stored already stays (secrets.ErrExists).
func (k *Keys) PutRunKey(_ context.Context, runID, key string) error {
	path, err := k.path(runID)
	if err != nil {
		return fmt.Errorf("put run key: %w", err)
	}
	f, err := os.CreateTemp(k.dir, ".tmp-*") // CreateTemp makes the file 0600
	if err != nil {
		return fmt.Errorf("put run key of %s: %w", runID, err)
	}
	_, werr := f.WriteString(key)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("put run key of %s: %w", runID, err)
	}
	// A hard link, unlike a rename, fails when the name exists: the key appears whole, and only
	// if none was there.
	err = os.Link(f.Name(), path)
	os.Remove(f.Name())
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("put run key of %s: %w", runID, secrets.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put run key of %s: %w", runID, err)
	}
	k.keep(runID, key)
	return nil
}

func (k *Keys) keep(runID, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.cached[runID]; !ok && len(k.cached) >= MaxCachedKeys {
		for old := range k.cached {
			delete(k.cached, old)
			break
		}
	}
	k.cached[runID] = key
}

// GetRunKey returns a run's key, or secrets.ErrNotFound.
func (k *Keys) GetRunKey(_ context.Context, runID string) (string, error) {
	path, err := k.path(runID)
	if err != nil {
		return "", fmt.Errorf("get run key: %w", err)
	}
	k.mu.Lock()
	key, ok := k.cached[runID]
	k.mu.Unlock()
	if ok {
		return key, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("run key of %s: %w", runID, secrets.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get run key of %s: %w", runID, err)
	}
	k.keep(runID, string(b))
	return string(b), nil
}

// DeleteRunKey removes a run's key; a missing key is not an error.
func (k *Keys) DeleteRunKey(_ context.Context, runID string) error {
	path, err := k.path(runID)
	if err != nil {
		return fmt.Errorf("delete run key: %w", err)
	}
	k.mu.Lock()
	delete(k.cached, runID)
	k.mu.Unlock()
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete run key of %s: %w", runID, err)
	}
	return nil
}

// Source serves secret values from a JSON file: {"/team/db-password": "...", "api-token": "..."}.
// Parameter paths and secret names share the one object.
type Source struct {
	path   string
	values map[string]string
}

var _ secrets.Source = (*Source)(nil)

// LoadSource reads the secrets file at path. It refuses a file that group or others may read.
// An empty path gives a source that holds nothing, whose every lookup says how to pass a file.
func LoadSource(path string) (*Source, error) {
	if path == "" {
		return &Source{}, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets file %s has mode %04o, readable by others than its owner: run chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	// Decoded loosely first so that an error can name the offending key instead of quoting JSON.
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("secrets file %s is not valid JSON (at byte %d)", path, syn.Offset)
		}
		return nil, fmt.Errorf("secrets file %s must hold one JSON object of path or name to value", path)
	}
	values := make(map[string]string, len(raw))
	for name, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("secrets file %s: the value of %q is not a string", path, name)
		}
		values[name] = s
	}
	return &Source{path: path, values: values}, nil
}

// Parameter returns the value stored under a parameter path.
func (s *Source) Parameter(_ context.Context, path string) (string, error) {
	return s.lookup("parameter", path)
}

// Secret returns the value stored under a secret name.
func (s *Source) Secret(_ context.Context, name string) (string, error) {
	return s.lookup("secret", name)
}

func (s *Source) lookup(noun, key string) (string, error) {
	if s.path == "" {
		return "", fmt.Errorf("%s %s: no secrets file was given (pass --secrets FILE, a 0600 JSON object of path or name to value): %w", noun, key, secrets.ErrNotFound)
	}
	v, ok := s.values[key]
	if !ok {
		return "", fmt.Errorf("%s %s is not in %s: %w", noun, key, s.path, secrets.ErrNotFound)
	}
	return v, nil
}
