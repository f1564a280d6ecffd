// Package deadletters keeps every dead letter for operators to inspect and redrive. A message
// that a queue gave up on (received MaxReceives times without being deleted) is moved by the
// queue to its dead-letter queue, where a consumer ends what it stood for (an order fails, a run
// ends) so that every run still reaches a terminal state; that consumer also keeps the dead letter
// here, with the last error the handler that gave up on it saw, so that nothing about it is lost
// when its message is deleted.
//
// The book lives in the internal bucket, under dead-letters/: one object per dead letter (a
// Record), and one note per message whose handler failed (the error, the first and the last
// failure), which the record takes up when the message is dead-lettered. On AWS a lifecycle rule
// on that prefix removes what an operator left for 14 days (infra/); embedded, records stay until
// they are purged.
package deadletters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/queues"
)

// Prefix is where the book keeps its objects in the internal bucket.
const Prefix = "dead-letters/"

const (
	recordPrefix = Prefix + "kept/"
	notePrefix   = Prefix + "failures/"
)

// ErrNotFound: no dead letter has that id.
var ErrNotFound = errors.New("no such dead letter")

// Record is one dead letter as kept for operators.
type Record struct {
	// ID is the message's id, which a queue keeps when it dead-letters a message.
	ID string `json:"id"`
	// Queue is where the message came from (intake, orders-<target>, results); DeadLetterQueue
	// where it went.
	Queue           string `json:"queue"`
	DeadLetterQueue string `json:"dead_letter_queue"`
	RunID           string `json:"run_id,omitempty"`
	OrderNum        int    `json:"order_num,omitempty"`
	OrderName       string `json:"order_name,omitempty"`
	Target          string `json:"target,omitempty"`
	Attempt         int    `json:"attempt,omitempty"`
	// Receives is how many times the message was received before it was dead-lettered.
	Receives int `json:"receives"`
	// FirstFailure and LastFailure are when a handler first and last failed on it; both zero
	// when none failed (a consumer that died, or stopped extending the message's visibility).
	FirstFailure time.Time `json:"first_failure,omitzero"`
	LastFailure  time.Time `json:"last_failure,omitzero"`
	SentAt       time.Time `json:"sent_at,omitzero"`
	DeadAt       time.Time `json:"dead_at"`
	// Reason says why it died: the last error a handler returned for it, or what is known.
	Reason string `json:"reason"`
	// Outcome is what the dead-letter consumer did to the run (the order failed, the run ended).
	Outcome string `json:"outcome,omitempty"`
	// Body is the message as it was sent: nothing secret travels in a message.
	Body json.RawMessage `json:"body"`
}

// note is what the book knows of a message whose handler failed.
type note struct {
	Queue string    `json:"queue"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	Error string    `json:"error"`
	Count int       `json:"count"`
}

// Book keeps dead letters in a bucket.
type Book struct {
	Bucket blobs.Bucket
	Now    func() time.Time
}

func (b *Book) now() time.Time {
	if b.Now != nil {
		return b.Now().UTC()
	}
	return time.Now().UTC()
}

// ids are queue message ids: SQS's are UUIDs, the embedded queue's hex or decimal. Anything
// else never names a dead letter, and never reaches the bucket as a key.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,100}$`)

// ValidID reports whether id could name a dead letter.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// maxReason bounds the error text kept: an error may quote a long response.
const maxReason = 2000

// Failed notes that a handler of queue failed on m with err. It costs a read and a write of the
// bucket, on a failure only.
func (b *Book) Failed(ctx context.Context, queue string, m queues.Message, err error) error {
	if !ValidID(m.ID) || err == nil {
		return nil
	}
	key := notePrefix + m.ID
	var n note
	if data, gerr := b.Bucket.Get(ctx, key); gerr == nil {
		_ = json.Unmarshal(data, &n)
	} else if !errors.Is(gerr, blobs.ErrNotFound) {
		return fmt.Errorf("read failure note: %w", gerr)
	}
	now := b.now()
	if n.First.IsZero() {
		n.First = now
	}
	n.Queue, n.Last, n.Count = queue, now, n.Count+1
	n.Error = truncate(err.Error(), maxReason)
	data, _ := json.Marshal(n)
	return b.Bucket.Put(ctx, key, data)
}

// Keep records a dead letter, taking up what Failed noted of its message. Keeping one twice (a
// dead-letter message handled again, after a crash lost its delete) keeps the first record: what
// the first handling saw and did. It returns the record kept.
func (b *Book) Keep(ctx context.Context, r Record) (Record, error) {
	if !ValidID(r.ID) {
		return r, fmt.Errorf("keep dead letter: %q is not a message id", r.ID)
	}
	if r.DeadAt.IsZero() {
		r.DeadAt = b.now()
	}
	if kept, err := b.Get(ctx, r.ID); err == nil {
		return kept, nil
	} else if !errors.Is(err, ErrNotFound) {
		return r, err
	}
	if data, err := b.Bucket.Get(ctx, notePrefix+r.ID); err == nil {
		var n note
		if json.Unmarshal(data, &n) == nil {
			r.FirstFailure, r.LastFailure = n.First, n.Last
			if n.Error != "" {
				r.Reason = n.Error
			}
		}
	} else if !errors.Is(err, blobs.ErrNotFound) {
		return r, fmt.Errorf("read failure note: %w", err)
	}
	if r.Reason == "" {
		r.Reason = fmt.Sprintf("received %d times and never handled: its consumer died or stopped extending it", r.Receives)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	if err := b.Bucket.Put(ctx, recordPrefix+r.ID, data); err != nil {
		return r, fmt.Errorf("keep dead letter: %w", err)
	}
	if err := b.Bucket.Delete(ctx, notePrefix+r.ID); err != nil && !errors.Is(err, blobs.ErrNotFound) {
		return r, fmt.Errorf("keep dead letter: drop its failure note: %w", err)
	}
	return r, nil
}

// Get returns the dead letter id names.
func (b *Book) Get(ctx context.Context, id string) (Record, error) {
	var r Record
	if !ValidID(id) {
		return r, ErrNotFound
	}
	data, err := b.Bucket.Get(ctx, recordPrefix+id)
	if errors.Is(err, blobs.ErrNotFound) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("read dead letter: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("read dead letter %s: %w", id, err)
	}
	return r, nil
}

// List returns every dead letter kept, the newest first.
func (b *Book) List(ctx context.Context) ([]Record, error) {
	keys, err := b.Bucket.List(ctx, recordPrefix)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := make([]Record, 0, len(keys))
	for _, k := range keys {
		r, err := b.Get(ctx, strings.TrimPrefix(k, recordPrefix))
		if errors.Is(err, ErrNotFound) {
			continue // purged meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, c Record) int { return c.DeadAt.Compare(a.DeadAt) })
	return out, nil
}

// Delete forgets a dead letter (purge, or a redrive that put it back).
func (b *Book) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	if _, err := b.Get(ctx, id); err != nil {
		return err
	}
	return b.Bucket.Delete(ctx, recordPrefix+id)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
