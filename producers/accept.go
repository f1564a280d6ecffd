// Package producers holds iac-ci's entry points and intake. The HTTP producers (POST /webhook for
// jobs and GitHub events, POST /ssm for SSM jobs) do only what must be answered at once: verify
// the signature, decode and validate the whole job, store the request and queue it for intake,
// then answer 202 with the run's identifiers. Intake, a consumer of the intake queue, does the slow
// part: it fetches code and secrets, seals each order's environment into its bundle, inserts the
// run and its orders, and queues the orders that wait for nothing.
//
// A rejected request leaves nothing behind: validation comes before any write. A signed body
// posted again (a retry or a replay) starts no second run: a body without a run_id names the
// same run for a day, as a GitHub delivery id names its run.
//
// Every read and control route (a run's status, history and done object, and whatever is
// registered through Server.Reads) answers only a caller with the API token, or, for a GET of one
// run, a signed and expiring link to that run; only the signed posts and /healthz are open.
package producers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/queues"
)

// Accepter stores accepted requests and queues them for intake.
type Accepter struct {
	Blobs  blobs.Bucket
	Queues queues.Broker
	Now    func() time.Time
	// DoneURL tells where a run's done object can be read.
	DoneURL func(runID string) string
	// Embedded allows what only the embedded engine can do (local_path code, env: secrets).
	Embedded bool
	// AllowEnv names the variables of the server's environment that env: secret locations may
	// read on jobs that arrive over HTTP (serve --allow-env). Any other is refused there: the
	// job picks the git host the value is sent to as credentials. A job file the operator runs
	// (Source "cli") may read any.
	AllowEnv []string
}

// Accepted is what a producer answers for an accepted job.
type Accepted struct {
	RunID        string `json:"run_id"`
	TraceID      string `json:"trace_id"`
	FlowID       string `json:"flow_id"`
	DoneEndpoint string `json:"done_endpt"`
	// Duplicate is set when the request was accepted before (a redelivered GitHub event).
	Duplicate bool `json:"duplicate,omitempty"`
}

// Submission is a job on its way in.
type Submission struct {
	Job      domain.Job
	Envelope domain.Envelope
	Source   string // webhook, ssm, github, cli
	SSM      bool   // an SSM job: ssm is the default target and flow label
	// RunID, when set, fixes the run id (a GitHub delivery id maps to one run, so a redelivery
	// is recognized).
	RunID string
	// Reruns is the run this submission runs again (Rerun).
	Reruns string
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Prepare normalizes and validates a submission's job; the error is a *domain.ValidationError
// listing every problem.
func (a *Accepter) Prepare(s *Submission) error {
	s.Job.Normalize(s.SSM)
	err := domain.Validate(s.Job)
	var problems []domain.Problem
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		problems = append(problems, ve.Problems...)
	} else if err != nil {
		return err
	}
	if !a.Embedded {
		for i, o := range s.Job.Orders {
			if o.LocalPath != "" {
				problems = append(problems, domain.Problem{Path: fmt.Sprintf("orders[%d].local_path", i),
					Message: "local_path works only embedded (iac-ci run, or serve without --backend aws); use git_folder or s3_location"})
			}
		}
		for _, f := range []struct{ path, loc string }{{"git_token_location", s.Job.GitTokenLocation}, {"git_ssh_key_location", s.Job.GitSSHKeyLocation}} {
			if l, err := domain.ParseSecretLocation(f.loc); f.loc != "" && err == nil && l.Kind == domain.SecretEnv {
				problems = append(problems, domain.Problem{Path: f.path, Message: "env: locations work only embedded; use aws:::ssm:<path> or aws:::secretd:<name>"})
			}
		}
	}
	if a.Embedded && s.Source != "cli" {
		for _, f := range []struct{ path, loc string }{{"git_token_location", s.Job.GitTokenLocation}, {"git_ssh_key_location", s.Job.GitSSHKeyLocation}} {
			l, err := domain.ParseSecretLocation(f.loc)
			if f.loc == "" || err != nil || l.Kind != domain.SecretEnv || slices.Contains(a.AllowEnv, l.Ref) {
				continue
			}
			problems = append(problems, domain.Problem{Path: f.path, Message: fmt.Sprintf(
				"env:%s is refused on jobs that arrive over HTTP: it would send the server's own variable as credentials "+
					"to the host the job names; name a secret of the server's --secrets file (aws:::ssm:<path>), "+
					"or the operator may allow this variable with iac-ci serve --allow-env %s", l.Ref, l.Ref)})
		}
	}
	if s.Envelope.RunID != "" && !idPattern.MatchString(s.Envelope.RunID) {
		problems = append(problems, domain.Problem{Path: "run_id", Message: "must be 1 to 128 letters, digits, '.', '_' or '-'"})
	}
	if s.Envelope.TraceID != "" && !idPattern.MatchString(s.Envelope.TraceID) {
		problems = append(problems, domain.Problem{Path: "trace_id", Message: "must be 1 to 128 letters, digits, '.', '_' or '-'"})
	}
	if len(problems) > 0 {
		return &domain.ValidationError{Problems: problems}
	}
	return nil
}

// Reject completes the rejection of a body that domain.DecodeJob did not decode whole: the job
// decoded beside its problems is prepared too, and every problem is returned at once, so that a
// typo does not hide a cycle or a limit. err is DecodeJob's error and s holds what it returned;
// an error of a body that could not be read at all is returned as it is.
func (a *Accepter) Reject(s Submission, err error) error {
	var ve *domain.ValidationError
	if !errors.As(err, &ve) || !ve.Partial {
		return err
	}
	return domain.JoinProblems(err, a.Prepare(&s))
}

// Accept validates a submission, stores it and queues it for intake. Only when both are written
// does it return the run's identifiers; a rejected job writes nothing.
func (a *Accepter) Accept(ctx context.Context, s Submission) (Accepted, error) {
	if err := a.Prepare(&s); err != nil {
		return Accepted{}, err
	}
	now := time.Now().UTC()
	if a.Now != nil {
		now = a.Now().UTC()
	}
	runID := s.RunID
	if runID == "" {
		runID = s.Envelope.RunID
	}
	if runID == "" {
		runID = domain.NewRunID(now)
	}
	traceID := s.Envelope.TraceID
	if traceID == "" {
		traceID = domain.NewTraceID()
	}
	req := domain.Request{
		RunID: runID, TraceID: traceID, FlowID: domain.FlowID(s.Job.Username, traceID, s.Job.FlowLabel),
		Source: s.Source, ReceivedAt: now, Job: s.Job, Reruns: s.Reruns,
	}
	if a.DoneURL != nil {
		req.DoneEndpoint = a.DoneURL(runID)
	}
	acc := Accepted{RunID: runID, TraceID: traceID, FlowID: req.FlowID, DoneEndpoint: req.DoneEndpoint}
	key := blobs.RequestKey(runID)
	if s.RunID != "" || s.Envelope.RunID != "" {
		// A caller-chosen run id seen before: answer as the first time, start nothing.
		if prev, err := a.Blobs.Get(ctx, key); err == nil {
			var old domain.Request
			if json.Unmarshal(prev, &old) == nil {
				return Accepted{RunID: old.RunID, TraceID: old.TraceID, FlowID: old.FlowID, DoneEndpoint: old.DoneEndpoint, Duplicate: true}, nil
			}
		} else if !errors.Is(err, blobs.ErrNotFound) {
			return Accepted{}, fmt.Errorf("look up request: %w", err)
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Accepted{}, err
	}
	if err := a.Blobs.Put(ctx, key, body); err != nil {
		return Accepted{}, fmt.Errorf("store request: %w", err)
	}
	q, err := a.Queues.Queue(queues.Intake)
	if err == nil {
		msg, _ := json.Marshal(domain.IntakeMessage{RunID: runID, TraceID: traceID, RequestKey: key})
		err = q.Send(ctx, queues.Outgoing{Body: msg})
	}
	if err != nil {
		// Not accepted after all: take the request back so that nothing is left behind.
		_ = a.Blobs.Delete(ctx, key)
		return Accepted{}, fmt.Errorf("queue request for intake: %w", err)
	}
	return acc, nil
}
