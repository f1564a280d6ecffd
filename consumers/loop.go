package consumers

import (
	"context"
	"log/slog"
	"time"

	"github.com/iac-ci/iac-ci/queues"
)

// Handler handles one message; nil means done (the message is deleted), an error leaves it to
// come back after its visibility timeout (and, after too many tries, to be dead-lettered).
type Handler func(ctx context.Context, m queues.Message) error

// DeleteDelay is how long Consume lets a handled message's receipt wait for others to share
// its delete (see Deleter): long enough that a busy queue deletes ten a transaction, short
// against any visibility timeout.
const DeleteDelay = 100 * time.Millisecond

// Consume receives from q and hands each message to h, one at a time, until ctx ends. Handled
// messages are deleted in batches (Deleter), and the last ones when ctx ends.
func Consume(ctx context.Context, q queues.Queue, batch int, log *slog.Logger, h Handler) error {
	deleter := NewDeleter(q, DeleteDelay, log)
	defer deleter.Flush()
	for {
		msgs, err := q.Receive(ctx, queues.ReceiveOptions{Max: batch, Wait: queues.MaxWait})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.WarnContext(ctx, "receive", "queue", q.Name(), "err", err)
			sleep(ctx, time.Second)
			continue
		}
		for _, m := range msgs {
			if err := h(ctx, m); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				log.WarnContext(ctx, "message left for retry", "queue", q.Name(), "receive_count", m.ReceiveCount, "err", err)
				continue
			}
			// The work is written: the message is deleted even if ctx just ended (Flush).
			deleter.Add(m.Receipt)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// KeepHidden extends m's visibility every third of d until the returned stop is called, so a
// live consumer's message is never handed to another.
func KeepHidden(ctx context.Context, q queues.Queue, m queues.Message, d time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := q.ChangeVisibility(ctx, m.Receipt, d); err != nil && ctx.Err() == nil {
					log.WarnContext(ctx, "extend visibility", "queue", q.Name(), "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
