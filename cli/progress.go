package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

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
//
// The live table never scrolls the terminal: it is at most the screen's height less the line
// above it and the line the cursor rests on, summarised when the run has more orders
// than that, and each line is cut to the screen's width, since a wrapped line would make the
// cursor's move back up over the table miss. A table that scrolled would leave a copy of itself
// in the scrollback at every redraw.
type progress struct {
	w        io.Writer
	enabled  bool
	terminal bool
	color    bool                             // colour the statuses (a terminal, without NO_COLOR)
	size     func() (cols, rows int, ok bool) // the terminal's size, read at every redraw
	targets  map[string]domain.Target         // order name → target, for the lines
	printed  int                              // events of the run's history printed so far
	runSeen  domain.RunStatus
	drawn    int    // lines of the last drawn table
	above    string // the line printed above the table
	started  time.Time
}

// Fallbacks for a terminal whose size cannot be read.
const defaultCols, defaultRows = 80, 24

func newProgress(w io.Writer, enabled, terminal, color bool) *progress {
	p := &progress{w: w, enabled: enabled, terminal: terminal, color: terminal && color,
		targets: map[string]domain.Target{}, started: time.Now()}
	p.size = func() (int, int, bool) { return 0, 0, false }
	if f, ok := w.(*os.File); ok {
		p.size = func() (int, int, bool) {
			cols, rows, err := term.GetSize(int(f.Fd()))
			return cols, rows, err == nil && cols > 0 && rows > 0
		}
	}
	return p
}

func (p *progress) start(a producers.Accepted) {
	if p.enabled {
		p.above = fmt.Sprintf("run %s accepted (trace %s, flow %s)", a.RunID, a.TraceID, a.FlowID)
		fmt.Fprintln(p.w, p.above)
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
	cols, rows, ok := p.size()
	if !ok {
		cols, rows = defaultCols, defaultRows
	}
	// The table and the line above it, however many lines the terminal wraps it into, fit on the
	// screen with a line to spare for the cursor.
	aboveLines := max(1, (utf8.RuneCountInString(p.above)+cols-1)/cols)
	lines := liveTable(v, time.Since(p.started), max(rows-1-aboveLines, 3), max(cols-1, 20), p.color)
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\r\033[%dA\033[J", p.drawn) // up over the last table, clear to the end
	}
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	fmt.Fprint(p.w, b.String()) // one write, so the terminal never shows half a table
	p.drawn = len(lines)
}

// statusRank orders statuses by how much a reader of a crowded table wants to see them.
var statusRank = map[domain.OrderStatus]int{
	domain.OrderRunning: 0, domain.OrderFailed: 1, domain.OrderTimedOut: 1, domain.OrderQueued: 2,
	domain.OrderWaiting: 3, domain.OrderSkipped: 4, domain.OrderSucceeded: 5,
}

// statusColor is the SGR colour of a status on a terminal; none for the others.
var statusColor = map[domain.OrderStatus]string{
	domain.OrderRunning: "33", domain.OrderSucceeded: "32", domain.OrderFailed: "31", domain.OrderTimedOut: "31",
}

// liveTable lays a run out in at most height lines of at most width characters (not counting
// colour): a header, a line per order, and the run's status with a count of its orders by
// status. With more orders than lines it shows the running, failed and queued ones first, in
// the job's order, and says how many it leaves out.
func liveTable(v producers.RunView, took time.Duration, height, width int, color bool) []string {
	counts := map[domain.OrderStatus]int{}
	for _, o := range v.Orders {
		counts[o.Status]++
	}
	var tally []string
	for _, s := range []domain.OrderStatus{domain.OrderSucceeded, domain.OrderRunning, domain.OrderQueued, domain.OrderWaiting,
		domain.OrderFailed, domain.OrderTimedOut, domain.OrderSkipped} {
		if counts[s] > 0 {
			tally = append(tally, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	footer := fmt.Sprintf("run %s: %s (%.1fs)", v.RunID, v.Status, took.Seconds())
	if len(tally) > 0 {
		footer += ", " + strings.Join(tally, ", ")
	}

	shown := v.Orders
	room := height - 2 // the header and the footer
	if len(shown) > room {
		room-- // the line that counts what is left out
		picked := make([]int, len(v.Orders))
		for i := range picked {
			picked[i] = i
		}
		slices.SortStableFunc(picked, func(a, b int) int {
			return statusRank[v.Orders[a].Status] - statusRank[v.Orders[b].Status]
		})
		picked = picked[:max(room, 0)]
		slices.Sort(picked)
		shown = make([]producers.OrderView, 0, len(picked))
		for _, i := range picked {
			shown = append(shown, v.Orders[i])
		}
	}

	nameW, targetW, statusW := len("ORDER"), len("TARGET"), len("STATUS")
	for _, o := range shown {
		nameW = max(nameW, utf8.RuneCountInString(o.OrderName))
		targetW = max(targetW, len(o.Target))
		statusW = max(statusW, len(o.Status))
	}
	row := func(name, target, status, attempt, colour string) string {
		before := fmt.Sprintf("%-*s  %-*s  ", nameW, name, targetW, target)
		line := cut(fmt.Sprintf("%s%-*s  %s", before, statusW, status, attempt), width)
		// Colour the status where it stands, if the cut left it whole.
		if colour == "" || !strings.HasPrefix(line[min(len(before), len(line)):], status) {
			return line
		}
		at := len(before)
		return line[:at] + "\033[" + colour + "m" + status + "\033[0m" + line[at+len(status):]
	}
	lines := []string{row("ORDER", "TARGET", "STATUS", "ATTEMPT", "")}
	for _, o := range shown {
		colour := ""
		if color {
			colour = statusColor[o.Status]
		}
		lines = append(lines, row(o.OrderName, string(o.Target), string(o.Status), fmt.Sprint(o.Attempt), colour))
	}
	if left := len(v.Orders) - len(shown); left > 0 {
		lines = append(lines, cut(fmt.Sprintf("... and %d more orders", left), width))
	}
	return append(lines, cut(footer, width))
}

// cut shortens s to width characters, marking the cut.
func cut(s string, width int) string {
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	if width <= 1 {
		return string(r[:width])
	}
	return string(r[:width-1]) + "…"
}

// finish clears a live table, so the final table stands alone.
func (p *progress) finish(producers.RunView) {
	if p.enabled && p.terminal && p.drawn > 0 {
		fmt.Fprintf(p.w, "\r\033[%dA\033[J", p.drawn)
		p.drawn = 0
	}
}
