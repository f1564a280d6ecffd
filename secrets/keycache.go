package secrets

import (
	"context"
	"sync"
	"time"
)

// Bounds of the run-key cache.
const (
	runKeyTTL     = 10 * time.Minute
	runKeyEntries = 256
)

// KeyCache keeps the run keys this process read or wrote for a while, so that the orders of
// one run cost one read of the key store (on AWS, Parameter Store) between them rather than one
// each. A run's key never
// changes while its orders run (intake writes it once), and DeleteRunKey drops it here too. A
// key deleted by another process stays here until it expires, which is harmless: every order
// of that run has ended, so no worker claims one to open it.
type KeyCache struct {
	next Keys
	now  func() time.Time

	mu   sync.Mutex
	keys map[string]cachedKey
}

type cachedKey struct {
	key     string
	expires time.Time
}

var _ Keys = (*KeyCache)(nil)

// NewKeyCache caches next's keys.
func NewKeyCache(next Keys) *KeyCache {
	return &KeyCache{next: next, now: time.Now, keys: map[string]cachedKey{}}
}

func (c *KeyCache) keep(runID, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.keys) >= runKeyEntries {
		for id, k := range c.keys {
			if now.After(k.expires) || len(c.keys) >= runKeyEntries {
				delete(c.keys, id)
			}
		}
	}
	c.keys[runID] = cachedKey{key: key, expires: now.Add(runKeyTTL)}
}

// PutRunKey stores the key and keeps it (not when one was stored already: ErrExists).
func (c *KeyCache) PutRunKey(ctx context.Context, runID, key string) error {
	if err := c.next.PutRunKey(ctx, runID, key); err != nil {
		return err
	}
	c.keep(runID, key)
	return nil
}

// GetRunKey returns the kept key, or reads and keeps it.
func (c *KeyCache) GetRunKey(ctx context.Context, runID string) (string, error) {
	c.mu.Lock()
	k, ok := c.keys[runID]
	c.mu.Unlock()
	if ok && c.now().Before(k.expires) {
		return k.key, nil
	}
	key, err := c.next.GetRunKey(ctx, runID)
	if err != nil {
		return "", err
	}
	c.keep(runID, key)
	return key, nil
}

// DeleteRunKey forgets the key and deletes it.
func (c *KeyCache) DeleteRunKey(ctx context.Context, runID string) error {
	c.mu.Lock()
	delete(c.keys, runID)
	c.mu.Unlock()
	return c.next.DeleteRunKey(ctx, runID)
}
