package vcs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
)

// memRuns is a RunReader over runs kept in memory.
type memRuns struct {
	mu     sync.Mutex
	runs   map[string]domain.Run
	orders map[string][]domain.OrderRecord
	err    error // returned by every read when set
}

func newMemRuns() *memRuns {
	return &memRuns{runs: map[string]domain.Run{}, orders: map[string][]domain.OrderRecord{}}
}

func (m *memRuns) set(run domain.Run, orders ...domain.OrderRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs[run.RunID] = run
	m.orders[run.RunID] = orders
}

func (m *memRuns) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

func (m *memRuns) GetRun(_ context.Context, runID string) (domain.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return domain.Run{}, m.err
	}
	run, ok := m.runs[runID]
	if !ok {
		return domain.Run{}, errors.New("no such run")
	}
	return run, nil
}

func (m *memRuns) ListOrders(_ context.Context, runID string) ([]domain.OrderRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	return m.orders[runID], nil
}

// publication is one PublishRun call.
type publication struct {
	repo   string
	number int
	sha    string
	view   RunView
	body   string
}

type recordingPublisher struct {
	mu    sync.Mutex
	calls []publication
	err   error
}

func (p *recordingPublisher) PublishRun(_ context.Context, repo string, number int, sha string, v RunView, body string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, publication{repo, number, sha, v, body})
	return p.err
}

func (p *recordingPublisher) published() []publication {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]publication(nil), p.calls...)
}

func (p *recordingPublisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func prRun(id string, status domain.RunStatus) domain.Run {
	return domain.Run{RunID: id, TraceID: "abc", FlowID: "dev:abc-exec", GitRepo: "o/r", PRNumber: 7,
		CommitHash: "0123456789abcdef0123456789abcdef01234567", CommentTag: "iac-ci-abc", Status: status, OrderCount: 1}
}

type reporterSetup struct {
	runs *memRuns
	pub  *recordingPublisher
	rep  *Reporter
}

// newReporter makes a Reporter over in-memory runs; started runs its loop until the test ends.
func newReporter(t *testing.T, opts ReporterOptions, started bool) reporterSetup {
	t.Helper()
	s := reporterSetup{runs: newMemRuns(), pub: &recordingPublisher{}}
	opts.Log = testLog(t)
	s.rep = NewReporter(s.pub, opts)
	if started {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			s.rep.Run(ctx, s.runs, func(runID string) string { return "https://ci.example.com/runs/" + runID })
			close(done)
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	return s
}

func TestReporterPublishesARunningRunAndItsEnd(t *testing.T) {
	t.Parallel()
	s := newReporter(t, ReporterOptions{Interval: time.Hour}, true)
	running := prRun("run-1", domain.RunRunning)
	s.runs.set(running, domain.OrderRecord{RunID: "run-1", OrderNum: 1, OrderName: "plan", Status: domain.OrderRunning, Attempt: 1})
	s.rep.RunChanged("run-1")
	waitFor(t, "the first publish", func() bool { return len(s.pub.published()) == 1 })

	p := s.pub.published()[0]
	if p.repo != "o/r" || p.number != 7 || p.sha != running.CommitHash {
		t.Fatalf("published to %s#%d@%s, want o/r#7@%s", p.repo, p.number, p.sha, running.CommitHash)
	}
	if got, want := p.view.StatusURL, "https://ci.example.com/runs/run-1"; got != want {
		t.Fatalf("status URL: got %q, want %q", got, want)
	}
	if len(p.view.Orders) != 1 || !strings.Contains(p.body, "plan") || !strings.HasPrefix(p.body, Marker("run-1", "iac-ci-abc")) {
		t.Fatalf("published view %+v with body:\n%s", p.view, p.body)
	}

	ended := prRun("run-1", domain.RunSucceeded)
	ended.FinishedAt = time.Now()
	s.runs.set(ended, domain.OrderRecord{RunID: "run-1", OrderNum: 1, OrderName: "plan", Status: domain.OrderSucceeded, Attempt: 1})
	if err := s.rep.RunFinished(t.Context(), ended); err != nil {
		t.Fatalf("RunFinished: %v", err)
	}
	calls := s.pub.published()
	if len(calls) != 2 {
		t.Fatalf("publishes after RunFinished: got %d, want 2", len(calls))
	}
	if got := calls[1].view.Run.Status; got != domain.RunSucceeded {
		t.Fatalf("final publish showed the run %s, want succeeded", got)
	}
	if !strings.Contains(calls[1].body, "| order | target | status | attempt | duration |") {
		t.Fatalf("final body lacks the summary table:\n%s", calls[1].body)
	}
}

func TestReporterLeavesAnEndedRunToRunFinished(t *testing.T) {
	t.Parallel()
	s := newReporter(t, ReporterOptions{Interval: time.Millisecond}, true)
	s.runs.set(prRun("run-1", domain.RunFailed))
	s.runs.set(prRun("run-2", domain.RunRunning))
	s.rep.RunChanged("run-1")
	s.rep.RunChanged("run-2")
	waitFor(t, "run-2's publish", func() bool { return len(s.pub.published()) > 0 })
	time.Sleep(20 * time.Millisecond)
	for _, p := range s.pub.published() {
		if p.view.Run.RunID == "run-1" {
			t.Fatalf("the loop published ended run-1: %+v", p.view.Run)
		}
	}
}

func TestReporterSkipsRunsWithoutAPullRequest(t *testing.T) {
	t.Parallel()
	s := newReporter(t, ReporterOptions{Interval: time.Millisecond}, true)
	noRepo := prRun("no-repo", domain.RunRunning)
	noRepo.GitRepo = ""
	noNumber := prRun("no-number", domain.RunRunning)
	noNumber.PRNumber = 0
	issue := prRun("issue", domain.RunRunning)
	issue.PRNumber, issue.IssueNumber = 0, 12
	for _, run := range []domain.Run{noRepo, noNumber, issue} {
		s.runs.set(run)
		s.rep.RunChanged(run.RunID)
	}
	waitFor(t, "the issue run's publish", func() bool { return len(s.pub.published()) > 0 })
	for _, run := range []domain.Run{noRepo, noNumber} {
		run.Status = domain.RunSucceeded
		if err := s.rep.RunFinished(t.Context(), run); err != nil {
			t.Fatalf("RunFinished(%s): %v", run.RunID, err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	calls := s.pub.published()
	if len(calls) != 1 || calls[0].view.Run.RunID != "issue" || calls[0].number != 12 {
		t.Fatalf("publishes: got %+v, want one of the issue run on #12", calls)
	}
}

func TestReporterRunFinishedRetriesOnlyWhatMayWork(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		publish   error
		read      error
		endedAgo  time.Duration
		wantError bool
	}{
		{"published", nil, nil, 0, false},
		{"provider unavailable", fmt.Errorf("create status: %w", ErrUnavailable), nil, time.Minute, true},
		{"rate limited", ErrRateLimited, nil, time.Minute, true},
		{"unavailable for too long", ErrUnavailable, nil, 2 * time.Hour, false},
		{"denied", fmt.Errorf("create comment: %w", ErrDenied), nil, 0, false},
		{"pull request gone", ErrNotFound, nil, 0, false},
		{"rejected", ErrRejected, nil, 0, false},
		{"denied and unavailable", errors.Join(ErrDenied, ErrUnavailable), nil, 0, true},
		{"store unreadable", nil, errors.New("database is locked"), 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newReporter(t, ReporterOptions{RetryFor: time.Hour, Now: func() time.Time { return now }}, true)
			run := prRun("run-1", domain.RunFailed)
			run.FinishedAt = now.Add(-tc.endedAgo)
			s.runs.set(run)
			s.runs.fail(tc.read)
			s.pub.fail(tc.publish)
			err := s.rep.RunFinished(t.Context(), run)
			if got := err != nil; got != tc.wantError {
				t.Fatalf("RunFinished error: got %v, want an error: %v", err, tc.wantError)
			}
		})
	}
}

func TestReporterRunFinishedWaitsForRun(t *testing.T) {
	t.Parallel()
	s := newReporter(t, ReporterOptions{Interval: time.Hour}, false)
	run := prRun("run-1", domain.RunSucceeded)
	s.runs.set(run)
	s.rep.RunChanged("run-1") // noted before Run: must not block or be lost

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.rep.RunFinished(ctx, run); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunFinished before Run: got %v, want %v", err, context.DeadlineExceeded)
	}

	finished := make(chan error, 1)
	go func() { finished <- s.rep.RunFinished(t.Context(), run) }()
	time.Sleep(10 * time.Millisecond)
	if n := len(s.pub.published()); n != 0 {
		t.Fatalf("published %d times before Run", n)
	}
	ctxRun, stop := context.WithCancel(t.Context())
	defer stop()
	go s.rep.Run(ctxRun, s.runs, nil)
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("RunFinished after Run started: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("RunFinished did not return once Run started")
	}
	if calls := s.pub.published(); len(calls) != 1 || calls[0].view.StatusURL != "" {
		t.Fatalf("publishes: got %+v, want one without a status URL", calls)
	}
}
