package queues

import (
	"context"
	"fmt"
	"time"
)

// ListDeadLetters returns up to max messages waiting in a dead-letter queue without consuming
// them: each is received and made visible again at once. It works on every adapter (it needs only
// Receive and ChangeVisibility), and each listing counts as a receive.
func ListDeadLetters(ctx context.Context, dlq Queue, max int) ([]Message, error) {
	var out []Message
	seen := map[string]bool{}
	for len(out) < max {
		n := min(MaxBatch, max-len(out))
		msgs, err := dlq.Receive(ctx, ReceiveOptions{Max: n, Visibility: 30 * time.Second})
		if err != nil {
			return out, fmt.Errorf("list dead letters of %s: %w", dlq.Name(), err)
		}
		fresh := 0
		for _, m := range msgs {
			if !seen[m.ID] {
				seen[m.ID] = true
				out = append(out, m)
				fresh++
			}
		}
		if len(msgs) == 0 || fresh == 0 {
			break
		}
	}
	for _, m := range out {
		if err := dlq.ChangeVisibility(ctx, m.Receipt, 0); err != nil {
			return out, fmt.Errorf("list dead letters of %s: release: %w", dlq.Name(), err)
		}
	}
	return out, nil
}

// MoveDeadLetters moves up to max messages from a dead-letter queue back to a queue: receive,
// send, delete. It works everywhere, including emulators without StartMessageMoveTask; a crash
// between send and delete leaves a duplicate, which consumers tolerate.
func MoveDeadLetters(ctx context.Context, dlq, to Queue, max int) (int, error) {
	moved := 0
	for moved < max {
		msgs, err := dlq.Receive(ctx, ReceiveOptions{Max: min(MaxBatch, max-moved), Visibility: time.Minute})
		if err != nil {
			return moved, fmt.Errorf("move dead letters from %s: %w", dlq.Name(), err)
		}
		if len(msgs) == 0 {
			return moved, nil
		}
		out := make([]Outgoing, len(msgs))
		receipts := make([]string, len(msgs))
		for i, m := range msgs {
			out[i] = Outgoing{Body: m.Body}
			receipts[i] = m.Receipt
		}
		if err := to.Send(ctx, out...); err != nil {
			return moved, fmt.Errorf("move dead letters to %s: %w", to.Name(), err)
		}
		if err := dlq.Delete(ctx, receipts...); err != nil {
			return moved, fmt.Errorf("move dead letters: delete from %s: %w", dlq.Name(), err)
		}
		moved += len(msgs)
	}
	return moved, nil
}
