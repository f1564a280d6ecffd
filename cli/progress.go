package cli

import (
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

// progress shows a run as it goes: on a terminal, a table redrawn in place; elsewhere (a log, a
// pipe, CI), one line per state change.
type progress struct {
	w        io.Writer
	enabled  bool
	terminal bool
	seen     map[int]string // order number → last status shown
	runSeen  domain.RunStatus
	drawn    int // lines of the last drawn table
	started  time.Time
}

func newProgress(w io.Writer, enabled, terminal bool) *progress {
	return &progress{w: w, enabled: enabled, terminal: terminal, seen: map[int]string{}, started: time.Now()}
}

func (p *progress) start(a producers.Accepted) {
	if p.enabled {
		fmt.Fprintf(p.w, "run %s accepted (trace %s, flow %s)\n", a.RunID, a.TraceID, a.FlowID)
	}
}

func (p *progress) update(v producers.RunView) {
	if !p.enabled {
		return
	}
	if p.terminal {
		p.redraw(v)
		return
	}
	elapsed := time.Since(p.started).Seconds()
	for _, o := range v.Orders {
		state := fmt.Sprintf("%s/%d", o.Status, o.Attempt)
		if p.seen[o.OrderNum] == state {
			continue
		}
		p.seen[o.OrderNum] = state
		line := fmt.Sprintf("%7.2fs  %-24s %-10s %s", elapsed, o.OrderName, o.Target, o.Status)
		if o.Attempt > 1 {
			line += fmt.Sprintf(" (attempt %d)", o.Attempt)
		}
		if o.Status.Terminal() && o.Reason != "" {
			line += ": " + o.Reason
		}
		fmt.Fprintln(p.w, line)
	}
	if v.Status != p.runSeen && v.Status.Terminal() {
		fmt.Fprintf(p.w, "%7.2fs  run %s\n", elapsed, v.Status)
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
