package producers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/deadletters"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/livelog"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/store"
)

// ErrNotRedrivable: what a dead letter stood for has ended, so putting it back would do nothing;
// the error says what would (a rerun).
var ErrNotRedrivable = errors.New("nothing to redrive")

// Control is what operators do to runs and dead letters, over HTTP or from the command line:
// the same functions whatever the host.
type Control struct {
	Engine      *engine.Engine
	Accepter    *Accepter
	DeadLetters *deadletters.Book
	// Live holds the output of the attempts running in this process.
	Live *livelog.Logs
}

// DeadLetterView is a dead letter as `iac-ci dlq show` and GET /dead-letters/{id} show it: the
// record, the order's state and history now, and what a redrive would do.
type DeadLetterView struct {
	deadletters.Record
	RunStatus domain.RunStatus `json:"run_status,omitempty"`
	Order     *OrderView       `json:"order,omitempty"`
	History   []domain.Event   `json:"history,omitempty"`
	Redrive   string           `json:"redrive"`
}

// ShowDeadLetter returns a dead letter with what it stands for now.
func (c *Control) ShowDeadLetter(ctx context.Context, id string) (DeadLetterView, error) {
	r, err := c.DeadLetters.Get(ctx, id)
	if err != nil {
		return DeadLetterView{}, err
	}
	v := DeadLetterView{Record: r}
	plan, _ := c.redrivePlan(ctx, r)
	v.Redrive = plan.describe()
	if r.RunID == "" {
		return v, nil
	}
	run, err := c.Engine.Store.GetRun(ctx, r.RunID)
	if err != nil {
		return v, nil // the run was never made, or is gone: the record says what is known
	}
	v.RunStatus = run.Status
	if r.OrderNum > 0 {
		if o, err := c.Engine.Store.GetOrder(ctx, r.RunID, r.OrderNum); err == nil {
			ov := orderView(o)
			v.Order = &ov
		}
	}
	if events, err := RunEvents(ctx, c.Engine.Store, run); err == nil {
		for _, e := range events {
			if r.OrderNum == 0 || e.OrderNum == r.OrderNum || e.OrderName == "" {
				v.History = append(v.History, e)
			}
		}
	}
	return v, nil
}

// Redriven says what a redrive did.
type Redriven struct {
	ID       string `json:"id"`
	Queue    string `json:"queue"`
	RunID    string `json:"run_id,omitempty"`
	Did      string `json:"did"`
	NewRunID string `json:"new_run_id,omitempty"`
}

// redrive is what redriving a dead letter would do.
type redrive struct {
	to      string // the queue the message goes back to; "" when it goes nowhere
	rerun   bool   // a new run of the request instead
	order   domain.OrderRecord
	refusal string // why nothing can be done, when nothing can
}

func (p redrive) describe() string {
	switch {
	case p.refusal != "":
		return "nothing: " + p.refusal
	case p.rerun:
		return "run the job again as a new run (its run ended at intake and never ran)"
	default:
		return "put the message back on " + p.to
	}
}

// redrivePlan decides what redriving r does:
//   - an intake dead letter resumes its run when intake never made it, and, when the
//     dead-letter consumer ended it (as it does at once, so that the caller hears of it), runs
//     its job again as a new run: nothing of the first one ever ran;
//   - a results dead letter goes back to the results queue while its order still runs that
//     attempt, which records the result and lets the run finish;
//   - an orders dead letter goes back to its queue while its order is still queued; an order its
//     dead-letter consumer failed has ended, and `iac-ci rerun` runs its job again.
func (c *Control) redrivePlan(ctx context.Context, r deadletters.Record) (redrive, error) {
	ended := func(what string, run string) redrive {
		return redrive{refusal: what + "; `iac-ci rerun " + run + "` runs its job again"}
	}
	switch {
	case r.Queue == queues.Intake:
		if r.RunID == "" {
			return redrive{refusal: "the message names no run"}, nil
		}
		run, err := c.Engine.Store.GetRun(ctx, r.RunID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return redrive{to: queues.Intake}, nil
		case err != nil:
			return redrive{}, fmt.Errorf("read run: %w", err)
		case run.Status == domain.RunAccepted:
			return redrive{to: queues.Intake}, nil
		case run.Status.Terminal():
			return redrive{rerun: true}, nil
		default:
			return redrive{refusal: "intake had started the run, which goes on"}, nil
		}
	case r.Queue == queues.Results || r.OrderNum > 0:
		o, err := c.Engine.Store.GetOrder(ctx, r.RunID, r.OrderNum)
		if errors.Is(err, store.ErrNotFound) {
			return redrive{refusal: "no such order"}, nil
		}
		if err != nil {
			return redrive{}, fmt.Errorf("read order: %w", err)
		}
		if o.Status.Terminal() {
			return ended(fmt.Sprintf("order %s ended %s", o.OrderName, o.Status), r.RunID), nil
		}
		if r.Queue == queues.Results {
			if o.Status != domain.OrderRunning || o.Attempt != r.Attempt {
				return redrive{refusal: fmt.Sprintf("order %s is %s at attempt %d, not running attempt %d", o.OrderName, o.Status, o.Attempt, r.Attempt)}, nil
			}
			return redrive{to: queues.Results, order: o}, nil
		}
		if o.Status != domain.OrderQueued {
			return redrive{refusal: fmt.Sprintf("order %s is %s; its dead-letter consumer ends it", o.OrderName, o.Status)}, nil
		}
		return redrive{to: r.Queue, order: o}, nil
	}
	return redrive{refusal: "the message names no order"}, nil
}

// RedriveDeadLetter does what redrivePlan says, and forgets the dead letter once done. A dead
// letter that cannot be redriven answers ErrNotRedrivable, saying why, and is kept.
func (c *Control) RedriveDeadLetter(ctx context.Context, id string) (Redriven, error) {
	r, err := c.DeadLetters.Get(ctx, id)
	if err != nil {
		return Redriven{}, err
	}
	out := Redriven{ID: r.ID, Queue: r.Queue, RunID: r.RunID}
	plan, err := c.redrivePlan(ctx, r)
	if err != nil {
		return out, err
	}
	switch {
	case plan.refusal != "":
		return out, fmt.Errorf("%w: %s", ErrNotRedrivable, plan.refusal)
	case plan.rerun:
		acc, err := c.Rerun(ctx, r.RunID)
		if err != nil {
			return out, err
		}
		out.NewRunID, out.Did = acc.RunID, "ran its job again as run "+acc.RunID
	case plan.order.RunID != "" && plan.to != queues.Results:
		if err := c.Engine.Resend(ctx, plan.order); err != nil {
			return out, err
		}
		out.Did = "sent order " + plan.order.OrderName + " to " + plan.to + " again"
	default:
		q, err := c.Engine.Queues.Queue(plan.to)
		if err != nil {
			return out, err
		}
		if err := q.Send(ctx, queues.Outgoing{Body: r.Body}); err != nil {
			return out, fmt.Errorf("send to %s: %w", plan.to, err)
		}
		out.Did = "put the message back on " + plan.to
	}
	if err := c.DeadLetters.Delete(ctx, id); err != nil && !errors.Is(err, deadletters.ErrNotFound) {
		return out, err
	}
	return out, nil
}

// PurgeDeadLetter forgets a dead letter.
func (c *Control) PurgeDeadLetter(ctx context.Context, id string) error {
	return c.DeadLetters.Delete(ctx, id)
}

// Rerun accepts the job of an earlier run again, as a new run that records which it reruns.
func (c *Control) Rerun(ctx context.Context, runID string) (Accepted, error) {
	if !idPattern.MatchString(runID) {
		return Accepted{}, ErrNoSuchRun
	}
	data, err := c.Engine.Blobs.Get(ctx, blobs.RequestKey(runID))
	if errors.Is(err, blobs.ErrNotFound) {
		return Accepted{}, fmt.Errorf("run %s: its request is no longer kept: %w", runID, ErrNoSuchRun)
	}
	if err != nil {
		return Accepted{}, fmt.Errorf("read request: %w", err)
	}
	var req domain.Request
	if err := json.Unmarshal(data, &req); err != nil {
		return Accepted{}, fmt.Errorf("read request of %s: %w", runID, err)
	}
	return c.Accepter.Accept(ctx, Submission{Job: req.Job, Source: req.Source, Reruns: runID})
}

func (s *Server) rerun(w http.ResponseWriter, r *http.Request) {
	if err := s.healthy(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := s.Control.Rerun(r.Context(), r.PathValue("run_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, acc)
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	list, err := s.Control.DeadLetters.List(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) showDeadLetter(w http.ResponseWriter, r *http.Request) {
	v, err := s.Control.ShowDeadLetter(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) redriveDeadLetter(w http.ResponseWriter, r *http.Request) {
	if err := s.healthy(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.Control.RedriveDeadLetter(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) purgeDeadLetter(w http.ResponseWriter, r *http.Request) {
	if err := s.Control.PurgeDeadLetter(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
