package vcs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/domain"
)

// Publisher shows a run at a provider: one comment, with body, on issue or pull request number
// of repo (skipped when number is 0), and a commit status on sha (skipped when sha is empty).
// It reports failures with this package's sentinels. github.Client is one.
type Publisher interface {
	PublishRun(ctx context.Context, repo string, number int, sha string, v RunView, body string) error
}

// RunReader reads the runs a Reporter shows; store.Store is one.
type RunReader interface {
	GetRun(ctx context.Context, runID string) (domain.Run, error)
	ListOrders(ctx context.Context, runID string) ([]domain.OrderRecord, error)
}

// ReporterOptions tune a Reporter; the zero value is usable.
type ReporterOptions struct {
	// Interval is the least time between two publishes of one run while it goes
	// (DefaultReportInterval when 0).
	Interval time.Duration
	// RetryFor bounds how long after a run ended its final publish is retried when the provider
	// is unavailable or rate limited (DefaultReportRetry when 0). Past it, the run is reported
	// without its final comment, so that a provider that stays down never holds a run open.
	RetryFor time.Duration
	// Mask hides secret values in log tails and reasons before they are shown. Tails are already
	// masked by the worker, which alone holds the values; nil leaves text as it is.
	Mask func(string) string
	Log  *slog.Logger
	Now  func() time.Time
}

// Defaults of ReporterOptions.
const (
	DefaultReportInterval = 3 * time.Second
	DefaultReportRetry    = time.Hour
)

// Reporter keeps each run that names a repository and a pull request or issue shown there: one
// comment, edited in place as the run's orders change state, and a commit status on the run's
// commit, pending until the run ends. It is the engine's Watcher (RunChanged) and Finisher
// (RunFinished), and publishes through a Coalescer, so a busy run costs at most one publish per
// interval.
//
// While a run goes, a failed publish is logged and tried again at the run's next change. The
// final state is published only by RunFinished, which the engine calls before it marks the run
// reported, so the last comment and status are written before a run counts as done; its error
// makes the engine try again later. Runs without a repository and a number are never published.
type Reporter struct {
	pub       Publisher
	opts      ReporterOptions
	coalescer *Coalescer

	bind      sync.Once
	bound     chan struct{} // closed once Run has set runs and statusURL
	runs      RunReader
	statusURL func(runID string) string
}

// NewReporter returns a Reporter that publishes with pub. It publishes nothing until Run gives
// it the runs to read; changes noted before are kept.
func NewReporter(pub Publisher, opts ReporterOptions) *Reporter {
	if opts.Interval <= 0 {
		opts.Interval = DefaultReportInterval
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = DefaultReportRetry
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Reporter{pub: pub, opts: opts, bound: make(chan struct{})}
	r.coalescer = NewCoalescer(r.load, r.publish, opts.Interval, opts.Log)
	return r
}

// Run reads runs from runs and publishes their changes until ctx ends. statusURL, which may be
// nil, gives the link to a run's status page. Only the first call's runs and statusURL count.
//
// The runs come here rather than to NewReporter because the engine needs its watchers before
// the store it reads is open.
func (r *Reporter) Run(ctx context.Context, runs RunReader, statusURL func(runID string) string) {
	r.bind.Do(func() {
		r.runs, r.statusURL = runs, statusURL
		close(r.bound)
	})
	r.coalescer.Run(ctx)
}

// PublishDue publishes the changed runs whose interval has passed, now, once Run has given it the
// runs to read; a Lambda host calls it before each invocation returns (see Coalescer.PublishDue).
func (r *Reporter) PublishDue(ctx context.Context) {
	select {
	case <-r.bound:
		r.coalescer.PublishDue(ctx)
	default:
	}
}

// RunChanged notes that a run changed; it never blocks.
func (r *Reporter) RunChanged(runID string) { r.coalescer.RunChanged(runID) }

// finalKey marks the context of RunFinished's publish: the only one that may show a run ended.
type finalKey struct{}

// RunFinished publishes a run's final state now and waits for it. It returns an error, so the
// engine tries again, only when trying again may help: the runs could not be read, or the
// provider was unavailable or rate limited and the run ended less than RetryFor ago. A publish the
// provider refused (a missing permission, a deleted repository) is logged and given up.
func (r *Reporter) RunFinished(ctx context.Context, run domain.Run) error {
	if !reportable(run) {
		return nil
	}
	select {
	case <-r.bound:
	case <-ctx.Done():
		return fmt.Errorf("report run %s: %w", run.RunID, ctx.Err())
	}
	err := r.coalescer.Flush(context.WithValue(ctx, finalKey{}, run.RunID), run.RunID)
	if err == nil || ctx.Err() != nil {
		return err
	}
	log := r.opts.Log.With("run_id", run.RunID, "trace_id", run.TraceID, "repo", run.GitRepo, "number", number(run))
	retryable := errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRateLimited) ||
		!(errors.Is(err, ErrDenied) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrRejected))
	switch {
	case !retryable:
		log.WarnContext(ctx, "final comment and status not written; the provider refused them, so they are not retried", "err", err)
		return nil
	case r.opts.Now().Sub(run.FinishedAt) > r.opts.RetryFor:
		log.WarnContext(ctx, "final comment and status not written; given up", "retried_for", r.opts.RetryFor, "err", err)
		return nil
	}
	return err
}

// reportable reports whether a run is shown at a provider: it names a repository and a pull
// request or issue.
func reportable(run domain.Run) bool {
	return run.GitRepo != "" && number(run) > 0
}

// number is where a run's comment goes: its pull request, else its issue.
func number(run domain.Run) int {
	if run.PRNumber > 0 {
		return run.PRNumber
	}
	return run.IssueNumber
}

// load reads what publish needs: the run alone when it will not be published, else its orders too.
func (r *Reporter) load(ctx context.Context, runID string) (RunView, error) {
	run, err := r.runs.GetRun(ctx, runID)
	if err != nil {
		return RunView{}, err
	}
	v := RunView{Run: run}
	if !r.shows(ctx, run) {
		return v, nil
	}
	if v.Orders, err = r.runs.ListOrders(ctx, runID); err != nil {
		return RunView{}, err
	}
	if r.statusURL != nil {
		v.StatusURL = r.statusURL(runID)
	}
	return v, nil
}

// shows decides whether a loaded run is published now. An ended run is shown by RunFinished
// alone: a publish of the loop that saw it end would only repeat what RunFinished writes a moment
// later (and cost a second commit status), while RunFinished must write it anyway.
func (r *Reporter) shows(ctx context.Context, run domain.Run) bool {
	if !reportable(run) {
		return false
	}
	return !run.Status.Terminal() || ctx.Value(finalKey{}) == run.RunID
}

func (r *Reporter) publish(ctx context.Context, v RunView) error {
	if !r.shows(ctx, v.Run) {
		return nil
	}
	body := RenderComment(v, r.opts.Mask)
	return r.pub.PublishRun(ctx, v.Run.GitRepo, number(v.Run), v.Run.CommitHash, v, body)
}
