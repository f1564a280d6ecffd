package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/deadletters"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/store"
)

// DeadLetters turns order messages that died into failed results: a message dead-lettered after
// MaxReceives receives means its order could not be run (its worker kept failing or dying), and
// the run must still end. It keeps each dead letter in Book, with the last error its worker saw.
type DeadLetters struct {
	Engine      *engine.Engine
	MaxReceives int
	// Queue is the orders queue the messages died on, DeadLetterQueue where they are now.
	Queue, DeadLetterQueue string
	Book                   *deadletters.Book
}

// Handle fails the order a dead message names, if it has not ended.
func (d *DeadLetters) Handle(ctx context.Context, m queues.Message) error {
	var msg domain.OrderMessage
	if err := json.Unmarshal(m.Body, &msg); err != nil {
		d.Engine.Logger().WarnContext(ctx, "malformed dead letter", "err", err)
		return d.keep(ctx, m, deadletters.Record{Reason: "not an order message: " + err.Error(), Outcome: "none"})
	}
	o, err := d.Engine.Store.GetOrder(ctx, msg.RunID, msg.OrderNum)
	if errors.Is(err, store.ErrNotFound) {
		return d.keep(ctx, m, deadletters.Record{RunID: msg.RunID, OrderNum: msg.OrderNum, Attempt: msg.Attempt,
			Outcome: "none: no such order"})
	}
	if err != nil {
		return fmt.Errorf("read order: %w", err)
	}
	r := deadletters.Record{RunID: o.RunID, OrderNum: o.OrderNum, OrderName: o.OrderName, Target: string(o.Target),
		Attempt: o.Attempt, Reason: fmt.Sprintf("the order's message was received %d times without a result", d.MaxReceives)}
	if o.Status.Terminal() {
		r.Outcome = "none: the order had already ended " + string(o.Status)
		return d.keep(ctx, m, r)
	}
	r.Outcome = "the order ended failed"
	kept, err := d.record(ctx, m, r)
	if err != nil {
		return err
	}
	reason := "dead-lettered after " + strconv.Itoa(d.MaxReceives) + " receives"
	if kept.Reason != "" {
		reason += ": " + kept.Reason
	}
	_, err = d.Engine.Finish(ctx, o, []domain.OrderStatus{domain.OrderQueued, domain.OrderRunning}, store.AnyAttempt,
		engine.Outcome{Status: domain.OrderFailed, Reason: reason})
	return err
}

// keep records the dead letter m with what is known of its order.
func (d *DeadLetters) keep(ctx context.Context, m queues.Message, r deadletters.Record) error {
	_, err := d.record(ctx, m, r)
	return err
}

// record is keep, returning the record kept (empty without a Book).
func (d *DeadLetters) record(ctx context.Context, m queues.Message, r deadletters.Record) (deadletters.Record, error) {
	if d.Book == nil {
		return deadletters.Record{}, nil
	}
	r.ID, r.Queue, r.DeadLetterQueue, r.Receives, r.SentAt, r.Body = m.ID, d.Queue, d.DeadLetterQueue, d.MaxReceives, m.SentAt, rawBody(m.Body)
	return d.Book.Keep(ctx, r)
}

// rawBody is a message body as JSON: itself when it is, a JSON string of it when not.
func rawBody(body []byte) json.RawMessage {
	if json.Valid(body) {
		return body
	}
	b, _ := json.Marshal(string(body))
	return b
}

// ResultDeadLetters keeps the result notifications the orchestrator could not record. Their runs
// still end: the sweeper looks for the result of every order past its deadline, and times the
// order out when it finds none; redriving the dead letter before then records the result.
type ResultDeadLetters struct {
	MaxReceives            int
	Queue, DeadLetterQueue string
	Book                   *deadletters.Book
}

// Handle keeps one dead result notification.
func (d *ResultDeadLetters) Handle(ctx context.Context, m queues.Message) error {
	r := deadletters.Record{ID: m.ID, Queue: d.Queue, DeadLetterQueue: d.DeadLetterQueue, Receives: d.MaxReceives,
		SentAt: m.SentAt, Body: rawBody(m.Body),
		Outcome: "none yet: the sweeper times the order out at its deadline, unless a redrive records the result first"}
	if refs, err := blobs.ParseNotification(m.Body); err == nil {
		for _, ref := range refs {
			if runID, num, attempt, err := blobs.ParseResultKey(ref.Key); err == nil {
				r.RunID, r.OrderNum, r.Attempt = runID, num, attempt
				break
			}
		}
	}
	_, err := d.Book.Keep(ctx, r)
	return err
}
