package awsbackend

import (
	"context"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/store"
)

// eventWriteTimeout bounds one grouped write of events, which serves several callers and so
// runs under none of their contexts.
const eventWriteTimeout = 30 * time.Second

// GroupedEvents is a store whose AppendEvents calls made at the same time share one write:
// while a write is in flight, the events of the calls that arrive meanwhile gather, and go
// together in the next one (DynamoDB takes 25 items in one BatchWriteItem). A call still
// returns only once its events are written, with that write's error, so what callers rely on
// (job_completed written before a run is marked reported) holds. A lone call is written at
// once; nothing waits for company.
type GroupedEvents struct {
	store.Store

	mu      sync.Mutex
	pending []eventAppend
	writing bool
}

type eventAppend struct {
	events []domain.Event
	done   chan error
}

// NewGroupedEvents groups the event writes of s.
func NewGroupedEvents(s store.Store) *GroupedEvents { return &GroupedEvents{Store: s} }

// AppendEvents writes events, with those of any concurrent calls.
func (g *GroupedEvents) AppendEvents(ctx context.Context, events ...domain.Event) error {
	if len(events) == 0 {
		return nil
	}
	done := make(chan error, 1)
	g.mu.Lock()
	g.pending = append(g.pending, eventAppend{events: events, done: done})
	lead := !g.writing
	g.writing = true
	g.mu.Unlock()
	if lead {
		go g.write()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// write writes what is pending, again and again, until nothing is.
func (g *GroupedEvents) write() {
	for {
		g.mu.Lock()
		batch := g.pending
		g.pending = nil
		if len(batch) == 0 {
			g.writing = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		var all []domain.Event
		for _, a := range batch {
			all = append(all, a.events...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), eventWriteTimeout)
		err := g.Store.AppendEvents(ctx, all...)
		cancel()
		for _, a := range batch {
			a.done <- err
		}
	}
}
