package secrets

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// countingKeys is a key store that counts reads.
type countingKeys struct {
	mu    sync.Mutex
	keys  map[string]string
	reads int
}

func (k *countingKeys) PutRunKey(_ context.Context, runID, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[runID] = key
	return nil
}

func (k *countingKeys) GetRunKey(_ context.Context, runID string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reads++
	key, ok := k.keys[runID]
	if !ok {
		return "", ErrNotFound
	}
	return key, nil
}

func (k *countingKeys) DeleteRunKey(_ context.Context, runID string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, runID)
	return nil
}

func TestKeyCacheReadsOnceAndForgetsOnDelete(t *testing.T) {
	t.Parallel()
	next := &countingKeys{keys: map[string]string{"r1": "k1"}}
	c := NewKeyCache(next)
	ctx := t.Context()
	for range 3 {
		if k, err := c.GetRunKey(ctx, "r1"); err != nil || k != "k1" {
			t.Fatalf("GetRunKey: %q, %v", k, err)
		}
	}
	if next.reads != 1 {
		t.Errorf("three reads of one run's key cost %d reads, want 1", next.reads)
	}
	if err := c.DeleteRunKey(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRunKey(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRunKey after DeleteRunKey: got %v, want ErrNotFound", err)
	}
	if err := c.PutRunKey(ctx, "r2", "k2"); err != nil {
		t.Fatal(err)
	}
	reads := next.reads
	if k, err := c.GetRunKey(ctx, "r2"); err != nil || k != "k2" || next.reads != reads {
		t.Errorf("GetRunKey after PutRunKey: %q, %v, %d reads more", k, err, next.reads-reads)
	}
	c.now = func() time.Time { return time.Now().Add(runKeyTTL + time.Minute) }
	if _, err := c.GetRunKey(ctx, "r2"); err != nil || next.reads != reads+1 {
		t.Errorf("an expired key was not read again: %v, %d reads more", err, next.reads-reads)
	}
}
