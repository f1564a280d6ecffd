package consumers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/queues"
)

// Handler handles one message; nil means done (the message is deleted), an error leaves it to
// come back after its visibility timeout (and, after too many tries, to be dead-lettered).
type Handler func(ctx context.Context, m queues.Message) error

// DeleteDelay is a Loop's default wait for a handled message's receipt to share its delete with
// others (see Deleter): long enough that a busy queue deletes ten a transaction, short against
// any visibility timeout. On SQS, where a delete is a billed request, hosts wait longer.
const DeleteDelay = 100 * time.Millisecond

// Loop consumes one queue until its ctx ends: it receives messages with long polls and hands
// each to Handler. It is the one way a long-running host (iac-ci run, iac-ci serve on either
// backend) takes messages off a queue; a Lambda function is handed its messages by the event
// source mapping instead (package lambdafn).
//
// A handled message is deleted through a Deleter, in batches; a message whose handler fails is
// left to come back after its visibility timeout. A failed receive is logged and retried after a
// pause.
type Loop struct {
	Queue   queues.Queue
	Handler Handler
	Log     *slog.Logger
	// Batch is the most messages one receive asks for (at least 1).
	Batch int
	// Handlers is how many messages are handled at once. At one (the default) the messages a
	// receive returns are handled one after another. Above one, each receive asks for as many
	// messages as there are idle handlers (up to Batch) and hands one to each: a busy queue is
	// read several messages a call rather than one, and no received message waits, hidden and
	// unhandled, behind another's handling.
	Handlers int
	// KeepHidden, when set, is the queue's visibility timeout: while a handler runs, its message
	// is hidden again for that long every third of it, so that slow work (an order running, the
	// intake of a large job) is never handed to a second consumer while this one lives.
	KeepHidden time.Duration
	// Deleter deletes handled messages; share one among the Loops of a queue. Nil makes one that
	// waits DeleteDelay, flushed when Run returns.
	Deleter *Deleter
}

// Run consumes until ctx ends, then waits for the handlers that are running. The messages
// handled last are deleted before it returns when the Deleter is its own; a shared one is the
// caller's to Flush.
func (l *Loop) Run(ctx context.Context) {
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	if l.Deleter == nil {
		l.Deleter = NewDeleter(l.Queue, DeleteDelay, l.Log)
		defer l.Deleter.Flush()
	}
	if l.Handlers > 1 {
		l.runPool(ctx)
		return
	}
	for {
		msgs, ok := l.receive(ctx, max(l.Batch, 1))
		if !ok {
			return
		}
		for _, m := range msgs {
			if !l.handle(ctx, m) && ctx.Err() != nil {
				return
			}
		}
	}
}

// handle runs the handler on m and hands its receipt to the deleter when it succeeded; it
// reports whether it did.
func (l *Loop) handle(ctx context.Context, m queues.Message) bool {
	var err error
	if l.KeepHidden > 0 {
		stop := KeepHidden(ctx, l.Queue, m, l.KeepHidden, l.Log)
		err = l.Handler(ctx, m)
		stop()
	} else {
		err = l.Handler(ctx, m)
	}
	if err != nil {
		if ctx.Err() == nil {
			l.Log.WarnContext(ctx, "message left for retry", "queue", l.Queue.Name(), "receive_count", m.ReceiveCount, "err", err)
		}
		return false
	}
	// The work is written: the message is deleted even if ctx just ended (Flush).
	l.Deleter.Add(m.Receipt)
	return true
}

// runPool is Run with l.Handlers messages handled at once; it returns once ctx ends and every
// handler has returned.
func (l *Loop) runPool(ctx context.Context) {
	idle := make(chan struct{}, l.Handlers)
	for range l.Handlers {
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
		for n < min(l.Handlers, max(l.Batch, 1)) {
			select {
			case <-idle:
				n++
			default:
				break more
			}
		}
		msgs, ok := l.receive(ctx, n)
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
				l.handle(ctx, m)
			}()
		}
	}
}

// receive takes up to limit messages, waiting for them as long as a receive may. A failed receive
// is logged and followed by a pause, and returns no messages. ok is false once ctx has ended.
func (l *Loop) receive(ctx context.Context, limit int) (msgs []queues.Message, ok bool) {
	msgs, err := l.Queue.Receive(ctx, queues.ReceiveOptions{Max: limit, Wait: queues.MaxWait})
	if ctx.Err() != nil {
		return msgs, false
	}
	if err != nil {
		l.Log.WarnContext(ctx, "receive", "queue", l.Queue.Name(), "err", err)
		return nil, sleep(ctx, time.Second)
	}
	return msgs, true
}

// sleep waits d, or less when ctx ends first; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
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
