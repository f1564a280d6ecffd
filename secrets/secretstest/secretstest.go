// Package secretstest is the conformance suite of the secrets port. Every adapter runs it: a
// behaviour of secrets.Keys or secrets.Source is promised only if this suite checks it.
package secretstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/secrets"
)

// Harness describes the adapters under test: a backend's run-key store and its secret source.
type Harness struct {
	// OpenKeys is called once per subtest and may return the same backend each time: every
	// subtest uses run ids of its own.
	OpenKeys func(t *testing.T) secrets.Keys
	// OpenSource must return a source holding exactly the given parameters (path → value) and
	// secrets (name → value).
	OpenSource func(t *testing.T, parameters, secretValues map[string]string) secrets.Source
}

// Run runs the suite against the adapters h describes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.OpenKeys == nil || h.OpenSource == nil {
		t.Fatal("secretstest: Harness.OpenKeys and Harness.OpenSource must both be set")
	}
	t.Run("Keys", func(t *testing.T) { t.Parallel(); runKeys(t, h.OpenKeys) })
	t.Run("Source", func(t *testing.T) { t.Parallel(); runSource(t, h.OpenSource) })
}

// runKeys checks a run-key store.
func runKeys(t *testing.T, open func(t *testing.T) secrets.Keys) {
	t.Run("PutGet", func(t *testing.T) {
		t.Parallel()
		keys, ctx, run := open(t), t.Context(), runID()
		key := fakeKey()
		if err := keys.PutRunKey(ctx, run, key); err != nil {
			t.Fatalf("PutRunKey: %v", err)
		}
		got, err := keys.GetRunKey(ctx, run)
		if err != nil {
			t.Fatalf("GetRunKey: %v", err)
		}
		if got != key {
			t.Fatalf("GetRunKey: got a %d-byte key that differs from the %d-byte key put", len(got), len(key))
		}
	})
	t.Run("PutKeepsTheFirstKey", func(t *testing.T) {
		t.Parallel()
		keys, ctx, run := open(t), t.Context(), runID()
		first, second := fakeKey(), fakeKey()
		if err := keys.PutRunKey(ctx, run, first); err != nil {
			t.Fatalf("PutRunKey: %v", err)
		}
		if err := keys.PutRunKey(ctx, run, second); !errors.Is(err, secrets.ErrExists) {
			t.Fatalf("PutRunKey again: got %v, want ErrExists", err)
		}
		got, err := keys.GetRunKey(ctx, run)
		if err != nil {
			t.Fatalf("GetRunKey: %v", err)
		}
		if got != first {
			t.Fatalf("GetRunKey after a second put: the first key was replaced")
		}
		// Once deleted (the run finalized), a key may be stored again.
		if err := keys.DeleteRunKey(ctx, run); err != nil {
			t.Fatalf("DeleteRunKey: %v", err)
		}
		if err := keys.PutRunKey(ctx, run, second); err != nil {
			t.Fatalf("PutRunKey after delete: %v", err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		keys, ctx, run, other := open(t), t.Context(), runID(), runID()
		if err := keys.PutRunKey(ctx, run, fakeKey()); err != nil {
			t.Fatalf("PutRunKey: %v", err)
		}
		otherKey := fakeKey()
		if err := keys.PutRunKey(ctx, other, otherKey); err != nil {
			t.Fatalf("PutRunKey other run: %v", err)
		}
		if err := keys.DeleteRunKey(ctx, run); err != nil {
			t.Fatalf("DeleteRunKey: %v", err)
		}
		if _, err := keys.GetRunKey(ctx, run); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("GetRunKey after delete: got %v, want ErrNotFound", err)
		}
		if got, err := keys.GetRunKey(ctx, other); err != nil || got != otherKey {
			t.Fatalf("GetRunKey of another run after delete: err %v, same key %v", err, got == otherKey)
		}
		if err := keys.DeleteRunKey(ctx, run); err != nil {
			t.Fatalf("DeleteRunKey twice: got %v, want nil", err)
		}
	})
	t.Run("DeleteMissing", func(t *testing.T) {
		t.Parallel()
		keys := open(t)
		if err := keys.DeleteRunKey(t.Context(), runID()); err != nil {
			t.Fatalf("DeleteRunKey of a run with no key: got %v, want nil", err)
		}
	})
	t.Run("GetMissing", func(t *testing.T) {
		t.Parallel()
		keys, run := open(t), runID()
		_, err := keys.GetRunKey(t.Context(), run)
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("GetRunKey of a run with no key: got %v, want ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), run) {
			t.Errorf("GetRunKey error %q does not name run %s", err, run)
		}
	})
}

// runSource checks a secret source.
func runSource(t *testing.T, open func(t *testing.T, parameters, secretValues map[string]string) secrets.Source) {
	params := map[string]string{
		"/iac-ci-test/db-password": "pw-" + randomHex(8),
		"/iac-ci-test/multi/line":  "first line\nsecond line " + randomHex(4),
	}
	secretValues := map[string]string{
		"iac-ci-test/api-token": "tok-" + randomHex(8),
	}
	src := open(t, params, secretValues)
	ctx := t.Context()
	for path, want := range params {
		got, err := src.Parameter(ctx, path)
		if err != nil {
			t.Errorf("Parameter(%s): %v", path, err)
		} else if got != want {
			t.Errorf("Parameter(%s): got a %d-byte value, want the %d-byte value stored", path, len(got), len(want))
		}
	}
	for name, want := range secretValues {
		got, err := src.Secret(ctx, name)
		if err != nil {
			t.Errorf("Secret(%s): %v", name, err)
		} else if got != want {
			t.Errorf("Secret(%s): got a %d-byte value, want the %d-byte value stored", name, len(got), len(want))
		}
	}

	missing := "/iac-ci-test/missing-" + randomHex(4)
	_, err := src.Parameter(ctx, missing)
	checkNotFound(t, "Parameter", missing, err, params, secretValues)
	missing = "iac-ci-test/missing-" + randomHex(4)
	_, err = src.Secret(ctx, missing)
	checkNotFound(t, "Secret", missing, err, params, secretValues)
}

func checkNotFound(t *testing.T, op, path string, err error, stored ...map[string]string) {
	t.Helper()
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("%s(%s) of a missing path: got %v, want ErrNotFound", op, path, err)
		return
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("%s(%s): error %q does not name the path", op, path, err)
	}
	for _, m := range stored {
		for _, v := range m {
			if strings.Contains(err.Error(), v) {
				t.Errorf("%s(%s): error holds a stored value", op, path)
			}
		}
	}
}

func runID() string { return domain.NewRunID(time.Now()) }

// fakeKey looks like an age identity; the suite needs only an opaque secret string.
func fakeKey() string { return "AGE-SECRET-KEY-1" + strings.ToUpper(randomHex(29)) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
