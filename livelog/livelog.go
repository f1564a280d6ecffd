// Package livelog holds the output of the attempts that run in a process while they run, so
// that people can follow an order's log before it ends (GET /runs/{id}/orders/{order}/log with
// follow, iac-ci logs -f), and stores it at intervals for processes that do not run the attempt.
package livelog

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
)

// MaxBytes bounds what a live log keeps: past it, the start is dropped (as the stored log keeps
// its last consumers.MaxBytes).
const MaxBytes = 32 << 20

// Logs holds the output of the attempts running in this process. What an attempt wrote is
// masked before it gets here, as every stored log is. An attempt's log is dropped once the
// attempt has ended.
type Logs struct {
	mu   sync.Mutex
	logs map[string]*Log
}

// Log is the output of one running attempt, as written so far (at most MaxBytes: past
// that, the start is dropped and Dropped counts it).
type Log struct {
	mu      sync.Mutex
	buf     []byte
	dropped int64
	done    bool
	changed chan struct{} // closed and replaced at each write
}

func liveKey(runID string, orderNum, attempt int) string {
	return runID + "/" + strconv.Itoa(orderNum) + "/" + strconv.Itoa(attempt)
}

// Start returns the live log of an attempt starting now.
func (l *Logs) Start(runID string, orderNum, attempt int) *Log {
	log := &Log{changed: make(chan struct{})}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.logs == nil {
		l.logs = map[string]*Log{}
	}
	l.logs[liveKey(runID, orderNum, attempt)] = log
	return log
}

// Get returns the live log of an attempt running in this process.
func (l *Logs) Get(runID string, orderNum, attempt int) (*Log, bool) {
	if l == nil {
		return nil, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	log, ok := l.logs[liveKey(runID, orderNum, attempt)]
	return log, ok
}

// End marks an attempt's log finished and forgets it.
func (l *Logs) End(runID string, orderNum, attempt int) {
	l.mu.Lock()
	log := l.logs[liveKey(runID, orderNum, attempt)]
	delete(l.logs, liveKey(runID, orderNum, attempt))
	l.mu.Unlock()
	if log != nil {
		log.mu.Lock()
		log.done = true
		close(log.changed)
		log.changed = make(chan struct{})
		log.mu.Unlock()
	}
}

// Write appends output; it never fails.
func (g *Log) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf = append(g.buf, p...)
	if over := len(g.buf) - MaxBytes; over > 0 {
		g.dropped += int64(over)
		g.buf = append(g.buf[:0], g.buf[over:]...)
	}
	close(g.changed)
	g.changed = make(chan struct{})
	return len(p), nil
}

// From returns what was written from offset on (offsets count every byte written, dropped ones
// included), whether the attempt has ended, and a channel closed at the next change.
func (g *Log) From(offset int64) (out []byte, next int64, done bool, changed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	start := max(offset-g.dropped, 0)
	if start < int64(len(g.buf)) {
		out = append([]byte(nil), g.buf[start:]...)
	}
	return out, g.dropped + int64(len(g.buf)), g.done, g.changed
}

// Len is how many bytes have been written so far (From's next for any offset).
func (g *Log) Len() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dropped + int64(len(g.buf))
}

// PartialKey is where a running attempt's output so far is stored, for processes other than
// the one running it; it is removed once the attempt has ended.
func PartialKey(runID string, orderNum, attempt int) string {
	return blobs.LogKey(runID, orderNum, attempt) + ".partial"
}

// Flush stores log under key every interval until ctx ends, so that a process that is not
// the one running the attempt (another Lambda function, iac-ci logs) reads its output so far. A
// flush that fails is tried again at the next. It reports whether it stored anything.
func Flush(ctx context.Context, bucket blobs.Bucket, key string, log *Log, interval time.Duration) (stored bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var flushed int64
	for {
		select {
		case <-ctx.Done():
			return flushed > 0
		case <-t.C:
		}
		if log.Len() == flushed {
			continue // nothing new: no copy of the output, no request
		}
		out, next, _, _ := log.From(0)
		if err := bucket.Put(ctx, key, out); err == nil {
			flushed = next
		}
	}
}
