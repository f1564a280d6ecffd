package assembly

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/iac-ci/iac-ci/consumers"
)

// The HTTP server's limits: a client that sends its headers or body slowly, or holds an idle
// connection, is cut off rather than held for ever. Bodies are small (a job is at most a few
// megabytes), so a minute is generous.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = time.Minute
	idleTimeout       = 2 * time.Minute
)

// HTTPServer is the http.Server of the system's routes, with its limits.
func (s *System) HTTPServer() *http.Server {
	return &http.Server{Handler: s.Server.Handler(), ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout}
}

// Start runs the system in this process until ctx ends, as `iac-ci run` and `iac-ci serve` host
// it: the HTTP server on l (when l is not nil), a consumers.Loop per route, the sweeper on its
// ticker, and the runners. Wait waits for all of them. It resolves every route's queue first,
// and starts nothing when one cannot be opened.
func (s *System) Start(ctx context.Context, l net.Listener) error {
	opened := make([]consumers.Loop, 0, len(s.Routes))
	for _, r := range s.Routes {
		q, err := s.Engine.Queues.Queue(r.Queue)
		if err != nil {
			return fmt.Errorf("queue %s: %w", r.Queue, err)
		}
		opened = append(opened, consumers.Loop{Queue: q, Handler: r.Handler, Log: s.Engine.Logger(),
			Batch: r.Batch, Handlers: r.Handlers, KeepHidden: r.KeepHidden})
	}
	for _, run := range s.Opts.Runners {
		s.spawn(func() { run(ctx, s) })
	}
	if l != nil {
		srv := s.HTTPServer()
		s.spawn(func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Opts.Log.Error("http server", "err", err)
			}
		})
		s.spawn(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
	}
	delay := s.Ports.DeleteDelay
	if delay <= 0 {
		delay = consumers.DeleteDelay
	}
	// Where a delete is a billed request (SQS: the ports set a longer delay), the loops of a
	// queue share a deleter, so that handled messages go ten to a call. Embedded, each loop
	// keeps its own: a shared one cost about 0.1 ms a hop of the chain benchmark
	// (interleaved rounds), and a delete there is a row write in this process.
	share := s.Ports.DeleteDelay > 0
	for i, r := range s.Routes {
		var shared *consumers.Deleter
		for range r.Loops {
			loop := opened[i]
			if shared == nil || !share {
				shared = consumers.NewDeleter(opened[i].Queue, delay, s.Engine.Logger())
				s.flush = append(s.flush, shared.Flush)
			}
			loop.Deleter = shared
			s.spawn(func() { loop.Run(ctx) })
		}
	}
	s.spawn(func() { _ = s.Sweeper.Run(ctx) })
	return nil
}

func (s *System) spawn(f func()) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
}

// Wait waits for everything Start started (after its ctx ends), then deletes the messages
// handled last.
func (s *System) Wait() {
	s.wg.Wait()
	for _, f := range s.flush {
		f()
	}
	s.flush = nil
}
