// Package queues is the queue port: SQS semantics (at-least-once delivery, visibility timeouts,
// receive counts, dead-letter queues) that the engine's producers and consumers rely on, with an
// embedded adapter on SQLite (queues/sqlitequeue) and an AWS adapter on SQS (queues/sqsqueue).
// Both pass the conformance suite in queues/queuetest; a behaviour is promised only if that suite
// checks it.
package queues

import (
	"context"
	"errors"
	"time"
)

// Errors callers branch on. Adapters map their backend's errors onto these.
var (
	// ErrNotFound: the queue does not exist.
	ErrNotFound = errors.New("queue not found")
	// ErrInvalidReceipt: the receipt handle is malformed or no longer current (the message was
	// deleted, or received again by someone else after its visibility ran out).
	ErrInvalidReceipt = errors.New("invalid receipt handle")
)

// Limits shared by every adapter (they are SQS's).
const (
	MaxBatch      = 10               // messages per Send call and per Receive call
	MaxWait       = 20 * time.Second // longest long poll
	MaxDelay      = 15 * time.Minute // longest send delay
	MaxVisibility = 12 * time.Hour   // longest visibility timeout
	MaxBodyBytes  = 256 << 10        // largest message body
)

// Spec describes a queue: its name, default visibility timeout, and where messages go after
// MaxReceives receives without being deleted (none when DeadLetter is empty).
type Spec struct {
	Name        string
	Visibility  time.Duration
	DeadLetter  string
	MaxReceives int
}

// Outgoing is a message to send. A positive Delay hides it for that long first.
type Outgoing struct {
	Body  []byte
	Delay time.Duration
}

// Message is a received message. Receipt identifies this receive; it is what Delete and
// ChangeVisibility take. ReceiveCount counts every receive so far, this one included.
type Message struct {
	ID           string
	Receipt      string
	Body         []byte
	ReceiveCount int
	SentAt       time.Time
}

// ReceiveOptions shape one Receive call.
type ReceiveOptions struct {
	// Max is how many messages at most to return, 1 to MaxBatch (0 means 1).
	Max int
	// Wait is how long to wait for a first message when none is visible, up to MaxWait (long
	// poll). Zero returns at once. A send to the queue wakes a waiting receive: adapters do not
	// sleep-poll.
	Wait time.Duration
	// Visibility hides the returned messages for this long; zero uses the queue's default.
	Visibility time.Duration
}

// Queue is one queue.
//
// Delivery is at least once: a received message that is not deleted before its visibility timeout
// runs out becomes visible again with a higher ReceiveCount. When a queue has a dead-letter queue,
// a message received MaxReceives times and not deleted is moved there instead of being delivered
// again (it keeps its body; its receive count starts again there).
type Queue interface {
	// Name is the queue's name as given in its Spec.
	Name() string
	// Send sends up to MaxBatch messages, all or none (adapters that cannot promise that report
	// the first failure; callers re-send, and consumers are idempotent).
	Send(ctx context.Context, msgs ...Outgoing) error
	// Receive returns up to opts.Max visible messages, hiding them for the visibility timeout.
	// It returns an empty slice, not an error, when the wait ends without a message, and
	// ctx.Err() when ctx ends first.
	Receive(ctx context.Context, opts ReceiveOptions) ([]Message, error)
	// Delete removes received messages, up to MaxBatch receipts.
	Delete(ctx context.Context, receipts ...string) error
	// ChangeVisibility hides a received message for d from now (0 makes it visible at once).
	// Consumers extend it while they work, so that a live worker's message is not redelivered.
	ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error
	// Stats counts the queue's messages, for metrics and alarms. The counts may be approximate
	// (SQS's are) but never include deleted messages. It is one call to the backend.
	Stats(ctx context.Context) (Stats, error)
}

// Stats is what a queue holds at one moment.
type Stats struct {
	Visible  int // waiting to be received
	InFlight int // received, neither deleted nor visible again yet
	Delayed  int // sent with a delay that has not passed
	// OldestAge is how long the oldest visible message has waited since it was sent, when
	// AgeKnown (zero without a visible message). SQS does not answer it through its API (it is
	// CloudWatch's ApproximateAgeOfOldestMessage), so its adapter leaves AgeKnown false.
	OldestAge time.Duration
	AgeKnown  bool
}

// Broker opens queues by name. Adapters are given the Specs of every queue they serve.
type Broker interface {
	Queue(name string) (Queue, error)
}
