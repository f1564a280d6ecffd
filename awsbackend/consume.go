package awsbackend

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/queues"
)

// DeleteDelay bounds how long a handled message waits for others to share its delete. It is far
// below every queue's visibility timeout (a minute at least), so waiting never lets a handled
// message come back; and a message whose delete a crash lost comes back to a no-op (every move
// is conditional). Long enough for a queue handling one message a second to delete ten a call.
const DeleteDelay = 5 * time.Second

// Deleter deletes handled messages of one queue in batches (consumers.Deleter): SQS bills a
// DeleteMessageBatch of ten receipts as one request, as it does a delete of one. Share one
// Deleter between the consumers of a queue.
type Deleter = consumers.Deleter

// NewDeleter returns a deleter of q's messages that waits up to DeleteDelay.
func NewDeleter(q queues.Queue, log *slog.Logger) *Deleter {
	return consumers.NewDeleter(q, DeleteDelay, log)
}

// Consumer consumes one queue: it receives up to Batch messages at a time with long polls and
// hands each to a handler, one at a time, as consumers.Consume does, but deletes handled
// messages through a Deleter, in batches. A message whose handler fails is left to come back
// after its visibility timeout.
type Consumer struct {
	Queue   queues.Queue
	Batch   int
	Deleter *Deleter
	Log     *slog.Logger
	// KeepHidden, when set, is the queue's visibility timeout: while a handler runs, its message
	// is hidden again for that long every third of it, so that slow work (the intake of a large
	// job) is not handed to a second consumer. Handlers that extend their message themselves
	// (consumers.Worker) leave it zero.
	KeepHidden time.Duration
	// Handlers, when above one, is how many messages are handled at once. Each receive then
	// asks for as many messages as there are idle handlers (up to Batch) and hands one to each:
	// a busy queue is read several messages a call rather than one, and no received message
	// waits, hidden and unhandled, behind another's handling.
	Handlers int
}

// Run consumes until ctx ends.
func (c *Consumer) Run(ctx context.Context, h consumers.Handler) {
	if c.Handlers > 1 {
		c.runPool(ctx, h)
		return
	}
	q, log := c.Queue, c.Log
	for {
		msgs, ok := c.receive(ctx, c.Batch)
		if !ok {
			return
		}
		for _, m := range msgs {
			if err := c.handle(ctx, m, h); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.WarnContext(ctx, "message left for retry", "queue", q.Name(), "receive_count", m.ReceiveCount, "err", err)
				continue
			}
			c.Deleter.Add(m.Receipt)
		}
	}
}

func (c *Consumer) handle(ctx context.Context, m queues.Message, h consumers.Handler) error {
	if c.KeepHidden <= 0 {
		return h(ctx, m)
	}
	stop := consumers.KeepHidden(ctx, c.Queue, m, c.KeepHidden, c.Log)
	defer stop()
	return h(ctx, m)
}

// runPool is Run with c.Handlers messages handled at once; it returns once ctx ends and every
// handler has returned.
func (c *Consumer) runPool(ctx context.Context, h consumers.Handler) {
	q, log := c.Queue, c.Log
	idle := make(chan struct{}, c.Handlers)
	for range c.Handlers {
		idle <- struct{}{}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle:
		}
		n := 1
	more:
		for n < min(c.Handlers, max(c.Batch, 1)) {
			select {
			case <-idle:
				n++
			default:
				break more
			}
		}
		msgs, ok := c.receive(ctx, n)
		for range n - len(msgs) {
			idle <- struct{}{}
		}
		if !ok {
			return
		}
		for _, m := range msgs {
			wg.Add(1)
			go func() {
				defer func() { idle <- struct{}{}; wg.Done() }()
				if err := c.handle(ctx, m, h); err != nil {
					if ctx.Err() == nil {
						log.WarnContext(ctx, "message left for retry", "queue", q.Name(), "receive_count", m.ReceiveCount, "err", err)
					}
					return
				}
				c.Deleter.Add(m.Receipt)
			}()
		}
	}
}

// receive takes up to limit messages, waiting for them as long as a receive may. A failed receive
// is logged and followed by a pause, and returns no messages. ok is false once ctx has ended.
func (c *Consumer) receive(ctx context.Context, limit int) (msgs []queues.Message, ok bool) {
	msgs, err := c.Queue.Receive(ctx, queues.ReceiveOptions{Max: limit, Wait: queues.MaxWait})
	if ctx.Err() != nil {
		return msgs, false
	}
	if err != nil {
		c.Log.WarnContext(ctx, "receive", "queue", c.Queue.Name(), "err", err)
		return nil, pause(ctx, time.Second)
	}
	return msgs, true
}

// pause waits d, or less when ctx ends first; it reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
