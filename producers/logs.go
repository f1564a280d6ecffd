package producers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/livelog"
	"github.com/iac-ci/iac-ci/store"
)

// Errors of the log routes.
var (
	// ErrNoSuchOrder: the run has no order of that name.
	ErrNoSuchOrder = errors.New("no such order")
	// ErrNoSuchAttempt: the order has not run that attempt (yet).
	ErrNoSuchAttempt = errors.New("no such attempt")
	// ErrLogNotKept: the attempt ran, but its log is no longer kept (an earlier attempt whose log
	// was short enough to travel only in its result).
	ErrLogNotKept = errors.New("that attempt's log is not kept")
)

// OrderLog is one attempt's log, masked, as far as it is known.
type OrderLog struct {
	Order    string             `json:"order"`
	OrderNum int                `json:"order_num"`
	Attempt  int                `json:"attempt"`
	Status   domain.OrderStatus `json:"status"`
	// Ended says the attempt is over: Text is all of its log.
	Ended bool   `json:"ended"`
	Text  []byte `json:"-"`
	// Launched says where the attempt was started elsewhere (a CodeBuild build) and where that
	// keeps its own log: the only log of a build that died before iac-ci's worker ran.
	Launched string `json:"launched,omitempty"`
}

// followPoll is how often a followed log is read again when its attempt runs in another
// process (its output is stored at intervals there; see livelog.Flush).
const followPoll = time.Second

// findOrder returns the order of a run by name.
func (c *Control) findOrder(ctx context.Context, runID, name string) (domain.OrderRecord, error) {
	if !idPattern.MatchString(runID) {
		return domain.OrderRecord{}, ErrNoSuchRun
	}
	if _, err := c.Engine.Store.GetRun(ctx, runID); errors.Is(err, store.ErrNotFound) {
		return domain.OrderRecord{}, ErrNoSuchRun
	} else if err != nil {
		return domain.OrderRecord{}, err
	}
	orders, err := c.Engine.Store.ListOrders(ctx, runID)
	if err != nil {
		return domain.OrderRecord{}, err
	}
	for _, o := range orders {
		if o.OrderName == name {
			return o, nil
		}
	}
	return domain.OrderRecord{}, fmt.Errorf("%w %q in run %s", ErrNoSuchOrder, name, runID)
}

// Log returns an attempt's log (attempt 0: the latest), whole once the attempt has ended, and
// what it has written so far while it runs.
func (c *Control) Log(ctx context.Context, runID, order string, attempt int) (OrderLog, error) {
	o, err := c.findOrder(ctx, runID, order)
	if err != nil {
		return OrderLog{}, err
	}
	l, err := c.logOf(ctx, o, attempt)
	if err == nil && o.Attempt > 0 && l.Attempt == o.Attempt {
		// Read once here, not in logOf: a followed log reads logOf every second.
		l.Launched = c.launched(ctx, o, l.Attempt)
	}
	return l, err
}

// logOf is Log of an order already read, without Launched.
func (c *Control) logOf(ctx context.Context, o domain.OrderRecord, attempt int) (OrderLog, error) {
	if attempt <= 0 {
		attempt = o.Attempt
	}
	out := OrderLog{Order: o.OrderName, OrderNum: o.OrderNum, Attempt: attempt, Status: o.Status}
	switch {
	case attempt == 0 || attempt > o.Attempt:
		// Not started yet: an order failed at intake has its reason as its log.
		out.Ended = o.Status.Terminal()
		if out.Ended && o.Reason != "" {
			out.Text = []byte("iac-ci: " + o.Reason + "\n")
		}
		if attempt > o.Attempt && !out.Ended {
			return out, fmt.Errorf("%w: order %s is at attempt %d", ErrNoSuchAttempt, o.OrderName, o.Attempt)
		}
		return out, nil
	case attempt == o.Attempt && o.Status == domain.OrderRunning:
		if live, ok := c.Live.Get(o.RunID, o.OrderNum, attempt); ok {
			out.Text, _, _, _ = live.From(0)
			return out, nil
		}
		for _, key := range []string{livelog.PartialKey(o.RunID, o.OrderNum, attempt), blobs.LogKey(o.RunID, o.OrderNum, attempt)} {
			data, err := c.Engine.Blobs.Get(ctx, key)
			if err == nil {
				out.Text = data
				return out, nil
			}
			if !errors.Is(err, blobs.ErrNotFound) {
				return out, err
			}
		}
		return out, nil
	case attempt == o.Attempt:
		out.Ended = true
		if o.LogKey == "" {
			out.Text = []byte(o.LogTail)
			return out, nil
		}
		data, err := c.Engine.Blobs.Get(ctx, o.LogKey)
		if err != nil {
			return out, fmt.Errorf("read log: %w", err)
		}
		out.Text = data
		return out, nil
	}
	// An earlier attempt: its stored log, or the tail its result carried.
	out.Ended = true
	data, err := c.Engine.Blobs.Get(ctx, blobs.LogKey(o.RunID, o.OrderNum, attempt))
	if err == nil {
		out.Text = data
		return out, nil
	}
	if !errors.Is(err, blobs.ErrNotFound) {
		return out, err
	}
	if data, err := c.Engine.Blobs.Get(ctx, blobs.ResultKey(o.RunID, o.OrderNum, attempt)); err == nil {
		var r domain.Result
		if json.Unmarshal(data, &r) == nil {
			out.Text = []byte(r.LogTail)
			return out, nil
		}
	}
	return out, fmt.Errorf("%w: attempt %d of order %s", ErrLogNotKept, attempt, o.OrderName)
}

// launched returns what the order's history says of where an attempt was launched, "" when it
// ran in a worker of iac-ci's own.
func (c *Control) launched(ctx context.Context, o domain.OrderRecord, attempt int) string {
	run, err := c.Engine.Store.GetRun(ctx, o.RunID)
	if err != nil {
		return ""
	}
	events, err := RunEvents(ctx, c.Engine.Store, run)
	if err != nil {
		return ""
	}
	prefix := "attempt " + strconv.Itoa(attempt) + ": "
	for _, e := range events {
		if e.Type == domain.EventOrderLaunched && e.OrderName == o.OrderName && strings.HasPrefix(e.Details, prefix) {
			return strings.TrimPrefix(e.Details, prefix)
		}
	}
	return ""
}

// FollowLog writes an attempt's log to w as it is written (attempt 0: the latest, waiting for
// the order to start), calling flush after each write, until the attempt ends or ctx does.
func (c *Control) FollowLog(ctx context.Context, runID, order string, attempt int, w io.Writer, flush func()) error {
	var written int64
	emit := func(text []byte, from int64) error {
		if int64(len(text)) <= from {
			return nil
		}
		if _, err := w.Write(text[from:]); err != nil {
			return err
		}
		written = int64(len(text))
		flush()
		return nil
	}
	for {
		o, err := c.findOrder(ctx, runID, order)
		if err != nil {
			return err
		}
		n := attempt
		if n <= 0 {
			n = o.Attempt
		}
		if n > 0 && n == o.Attempt && o.Status == domain.OrderRunning {
			if live, ok := c.Live.Get(o.RunID, o.OrderNum, n); ok {
				// Running here: every write as it comes.
				for {
					text, next, done, changed := live.From(written)
					if len(text) > 0 {
						if _, err := w.Write(text); err != nil {
							return err
						}
						flush()
					}
					written = next
					if done {
						break
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-changed:
					}
				}
				continue // the attempt ended: read its stored log for what came after
			}
		}
		if n > 0 || o.Status.Terminal() {
			l, err := c.logOf(ctx, o, n)
			if err != nil && !errors.Is(err, ErrNoSuchAttempt) {
				return err
			}
			if err := emit(l.Text, written); err != nil {
				return err
			}
			if l.Ended {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(followPoll):
		}
	}
}

func (s *Server) orderLog(w http.ResponseWriter, r *http.Request) {
	attempt := 0
	if v := r.URL.Query().Get("attempt"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(w, r, &domain.ValidationError{Problems: []domain.Problem{{Path: "attempt", Message: "want a whole number of at least 1"}}})
			return
		}
		attempt = n
	}
	runID, order := r.PathValue("run_id"), r.PathValue("order")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if follow, _ := strconv.ParseBool(r.URL.Query().Get("follow")); follow {
		if _, err := s.Control.findOrder(r.Context(), runID, order); err != nil {
			s.fail(w, r, err)
			return
		}
		// A followed log lasts as long as its attempt: no write deadline.
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{})
		w.WriteHeader(http.StatusOK)
		_ = s.Control.FollowLog(r.Context(), runID, order, attempt, w, func() { _ = rc.Flush() })
		return
	}
	l, err := s.Control.Log(r.Context(), runID, order, attempt)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("X-IaC-CI-Attempt", strconv.Itoa(l.Attempt))
	w.Header().Set("X-IaC-CI-Status", string(l.Status))
	if l.Launched != "" {
		w.Header().Set("X-IaC-CI-Launched", l.Launched)
	}
	_, _ = w.Write(l.Text)
}
