package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/producers"
)

// watcherFunc adapts a function to engine.Watcher.
type watcherFunc func(runID string)

func (f watcherFunc) RunChanged(runID string) { f(runID) }

// finisherFunc adapts a function to engine.Finisher; it is told a run's id and never fails.
type finisherFunc func(runID string)

func (f finisherFunc) RunFinished(_ context.Context, run domain.Run) error {
	f(run.RunID)
	return nil
}

// progress shows a run as it goes: on a terminal, a table redrawn in place; elsewhere (a log, a
// pipe, CI), one line per state change.
type progress struct {
	w        io.Writer
	enabled  bool
	terminal bool
	targets  map[string]domain.Target // order name → target, for the lines
	printed  int                      // events of the run's history printed so far
	runSeen  domain.RunStatus
	drawn    int // lines of the last drawn table
	started  time.Time
}

func newProgress(w io.Writer, enabled, terminal bool) *progress {
	return &progress{w: w, enabled: enabled, terminal: terminal, targets: map[string]domain.Target{}, started: time.Now()}
}

func (p *progress) start(a producers.Accepted) {
	if p.enabled {
		fmt.Fprintf(p.w, "run %s accepted (trace %s, flow %s)\n", a.RunID, a.TraceID, a.FlowID)
	}
}

// events prints, one line each, the state changes of the run's history not printed yet.
func (p *progress) events(events []domain.Event) {
	for _, ev := range events[min(p.printed, len(events)):] {
		if ev.Type != domain.EventOrderState {
			continue
		}
		line := fmt.Sprintf("%7.2fs  %-24s %-10s %s", ev.Time.Sub(p.started).Seconds(), ev.OrderName, p.targets[ev.OrderName], ev.Status)
		if d := domain.OrderStatus(ev.Status).ReasonAfter(ev.Details); d != "" {
			line += ": " + d
		}
		fmt.Fprintln(p.w, line)
	}
	p.printed = max(p.printed, len(events))
}

// update shows the run: on a terminal by redrawing its table, elsewhere by printing the state
// changes in events not printed yet.
func (p *progress) update(v producers.RunView, events []domain.Event) {
	if !p.enabled {
		return
	}
	for _, o := range v.Orders {
		p.targets[o.OrderName] = o.Target
	}
	if p.terminal {
		p.redraw(v)
		return
	}
	p.events(events)
	if v.Status != p.runSeen && v.Status.Terminal() {
		fmt.Fprintf(p.w, "%7.2fs  run %s\n", time.Since(p.started).Seconds(), v.Status)
	}
	p.runSeen = v.Status
}

func (p *progress) redraw(v producers.RunView) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ORDER\tTARGET\tSTATUS\tATTEMPT\n")
	for _, o := range v.Orders {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", o.OrderName, o.Target, o.Status, o.Attempt)
	}
	tw.Flush()
	fmt.Fprintf(&b, "run %s: %s (%.1fs)\n", v.RunID, v.Status, time.Since(p.started).Seconds())
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\033[%dA\033[J", p.drawn) // up over the last table, clear to the end
	}
	fmt.Fprint(p.w, b.String())
	p.drawn = strings.Count(b.String(), "\n")
}

// finish clears a live table, so the final table stands alone.
func (p *progress) finish(producers.RunView) {
	if p.enabled && p.terminal && p.drawn > 0 {
		fmt.Fprintf(p.w, "\033[%dA\033[J", p.drawn)
		p.drawn = 0
	}
}
