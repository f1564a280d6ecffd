package consumers

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/queues"
)

// Deleter deletes handled messages of one queue in batches: receipts wait until ten are pending
// or the oldest has waited the deleter's delay, then go in one Delete (on SQS one request for
// ten; embedded one transaction for ten, taken off the path of the next message). A handled
// message whose delete waits is still hidden (the delay is far below any visibility timeout),
// and one whose delete a crash loses comes back to a no-op, since every move is conditional.
type Deleter struct {
	q     queues.Queue
	delay time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	pending []string
	timer   *time.Timer
	// sending is held while a batch is deleted, so that Flush returns only once every receipt
	// handed over before it has been deleted, including a batch its timer is deleting.
	sending sync.Mutex
}

// NewDeleter returns a deleter of q's messages whose receipts wait at most delay.
func NewDeleter(q queues.Queue, delay time.Duration, log *slog.Logger) *Deleter {
	return &Deleter{q: q, delay: delay, log: log}
}

// Add hands over the receipt of a handled message.
func (d *Deleter) Add(receipt string) {
	d.mu.Lock()
	d.pending = append(d.pending, receipt)
	var full []string
	switch {
	case len(d.pending) >= queues.MaxBatch:
		full, d.pending = d.pending, nil
		if d.timer != nil {
			d.timer.Stop()
			d.timer = nil
		}
	case d.timer == nil:
		d.timer = time.AfterFunc(d.delay, d.Flush)
	}
	d.mu.Unlock()
	if full != nil {
		d.sending.Lock()
		d.delete(full)
		d.sending.Unlock()
	}
}

// Flush deletes every pending receipt now. Call it once the consumers have stopped.
func (d *Deleter) Flush() {
	d.mu.Lock()
	batch := d.pending
	d.pending = nil
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.mu.Unlock()
	d.sending.Lock()
	defer d.sending.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), queues.MaxBatch)
		d.delete(batch[:n])
		batch = batch[n:]
	}
}

func (d *Deleter) delete(receipts []string) {
	if len(receipts) == 0 {
		return
	}
	// The work is written: delete even if the consumers are stopping, or the messages come back.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.q.Delete(ctx, receipts...); err != nil && !errors.Is(err, queues.ErrInvalidReceipt) {
		d.log.Warn("delete messages", "queue", d.q.Name(), "messages", len(receipts), "err", err)
	}
}
