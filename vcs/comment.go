package vcs

import (
	"fmt"
	"html"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iac-ci/iac-ci/domain"
)

// MaxCommentChars is GitHub's limit on the length of an issue or pull-request comment body
// (a longer body is rejected with 422 "body is too long (maximum is 65536 characters)").
const MaxCommentChars = 65536

// commentBudget is what RenderComment aims for. Lengths are counted in bytes, never fewer than
// characters, so a body within the budget is within the limit however GitHub counts; the margin
// absorbs what a provider adds (a trailing newline, normalised line endings).
const commentBudget = MaxCommentChars - 1024

// Field caps keep the part of the comment that is not log text small and bounded, so that
// shortening tails and rows is always enough to fit the budget.
const (
	maxNameChars   = 120
	maxReasonChars = 300
)

// Marker is the hidden line that identifies a run's comment, so a provider adapter can find the
// comment again to edit it. It is an HTML comment: invisible when rendered.
func Marker(runID, tag string) string {
	return "<!-- iac-ci:run run_id=" + markerValue(runID) + " tag=" + markerValue(tag) + " -->"
}

// markerValue keeps a value from ending the HTML comment early or from splitting the marker: it
// keeps a conservative set of characters and percent-encodes the rest, including the second
// hyphen of "--", which HTML does not allow inside a comment.
func markerValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("._:@+/=", c) >= 0,
			c == '-' && (i == 0 || s[i-1] != '-'):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// RenderComment renders a run as a comment body: the marker, a header with the run's status and
// flow, a table of its orders, the masked log tail of each failed or timed-out order in a
// collapsed block, and a link to the status page.
//
// The body always fits MaxCommentChars. When it would not, the longest tails are shortened first,
// each keeping its end (the last lines of a log say why it failed), and the comment says what was
// cut; if the tails alone cannot make room, rows of the table go too. Whatever a log contains, the
// markdown stays valid: every code fence is longer than any run of backticks inside it, and every
// block that is opened is closed.
//
// mask hides secret values; it sees each tail whole, before any cut, so a cut can never leave
// part of a secret that mask would have recognised. A nil mask leaves text as it is.
func RenderComment(v RunView, mask func(string) string) string {
	if mask == nil {
		mask = func(s string) string { return s }
	}
	c := commentParts{view: v, rows: len(v.Orders)}
	for i, o := range v.Orders {
		if o.Status != domain.OrderFailed && o.Status != domain.OrderTimedOut {
			continue
		}
		full := mask(cleanLog(o.LogTail))
		c.tails = append(c.tails, logTail{order: i, full: full, shown: full})
	}

	lengths := make([]int, len(c.tails))
	total := 0
	for i, t := range c.tails {
		lengths[i] = len(t.full)
		total += len(t.full)
	}
	if total > commentBudget {
		// Logs far over the limit: start from tails cut to what the rest of the comment leaves,
		// rather than building a body of megabytes only to measure it.
		for i := range c.tails {
			c.tails[i].shown = ""
		}
		level := waterLevel(lengths, max(commentBudget-len(c.render(mask)), 0))
		for i := range c.tails {
			c.tails[i].shown = keepEnd(c.tails[i].full, level)
		}
	}

	body := c.render(mask)
	for range 8 {
		over := len(body) - commentBudget
		if over <= 0 {
			return body
		}
		shown := 0
		for i, t := range c.tails {
			lengths[i] = len(t.shown)
			shown += len(t.shown)
		}
		if shown == 0 {
			break
		}
		level := waterLevel(lengths, max(shown-over, 0))
		for i := range c.tails {
			c.tails[i].shown = keepEnd(c.tails[i].shown, level)
		}
		body = c.render(mask)
	}
	if len(body) <= commentBudget {
		return body
	}
	// The tails are gone and the body is still too long: keep as many table rows (and the
	// blocks of their orders) as fit.
	fits, tooMany := 0, c.rows
	for tooMany-fits > 1 {
		c.rows = (fits + tooMany) / 2
		if len(c.render(mask)) <= commentBudget {
			fits = c.rows
		} else {
			tooMany = c.rows
		}
	}
	c.rows = fits
	return c.render(mask)
}

type commentParts struct {
	view  RunView
	tails []logTail
	rows  int // how many order rows the table shows
}

type logTail struct {
	order int    // index into view.Orders
	full  string // the masked tail
	shown string // its end that fits
}

func (c commentParts) render(mask func(string) string) string {
	var b strings.Builder
	run := c.view.Run
	status := run.Status
	if status == "" {
		status = domain.RunAccepted
	}
	b.WriteString(Marker(run.RunID, run.CommentTag))
	b.WriteString("\n")
	fmt.Fprintf(&b, "### %s iac-ci run %s\n\n", runEmoji(status), mdText(spaced(string(status)), maxNameChars))

	var facts []string
	if run.FlowID != "" {
		facts = append(facts, "**flow** "+mdText(run.FlowID, maxNameChars))
	}
	if run.RunID != "" {
		facts = append(facts, "**run** "+mdText(run.RunID, maxNameChars))
	}
	if run.CommitHash != "" {
		facts = append(facts, "**commit** "+mdText(shortSHA(run.CommitHash), maxNameChars))
	}
	if len(c.view.Orders) > 0 {
		facts = append(facts, orderCounts(c.view.Orders))
	}
	if len(facts) > 0 {
		b.WriteString(strings.Join(facts, " · "))
		b.WriteString("\n\n")
	}

	if len(c.view.Orders) > 0 {
		b.WriteString("| order | target | status | attempt | duration |\n")
		b.WriteString("|---|---|---|--:|--:|\n")
		for _, o := range c.view.Orders[:c.rows] {
			fmt.Fprintf(&b, "| %s %s | %s | %s %s | %d | %s |\n",
				domain.OrderNumString(o.OrderNum), mdText(o.OrderName, maxNameChars),
				mdText(string(o.Target), maxNameChars), orderEmoji(o.Status),
				mdText(spaced(string(o.Status)), maxNameChars),
				o.Attempt, duration(o))
		}
		if hidden := len(c.view.Orders) - c.rows; hidden > 0 {
			fmt.Fprintf(&b, "\n✂️ %d more orders are not listed, to fit the comment size limit.\n", hidden)
		}
		b.WriteString("\n")
	}

	cut, listed := 0, 0
	for _, t := range c.tails {
		if t.order < c.rows {
			listed++
			if len(t.shown) < len(t.full) {
				cut++
			}
		}
	}
	if cut > 0 {
		fmt.Fprintf(&b, "> ✂️ %d of %d log tails were shortened to their last lines to fit the comment size limit", cut, listed)
		if c.view.StatusURL != "" {
			b.WriteString("; the whole logs are linked from the status page")
		}
		b.WriteString(".\n\n")
	}

	for _, t := range c.tails {
		if t.order >= c.rows {
			break
		}
		o := c.view.Orders[t.order]
		summary := fmt.Sprintf("%s %s %s %s", orderEmoji(o.Status), html.EscapeString(domain.OrderNumString(o.OrderNum)),
			html.EscapeString(clip(oneLine(o.OrderName), maxNameChars)), html.EscapeString(spaced(string(o.Status))))
		if o.ExitCode != nil {
			summary += fmt.Sprintf(" (exit %d)", *o.ExitCode)
		}
		if o.Reason != "" {
			summary += ": " + html.EscapeString(clip(oneLine(mask(o.Status.ReasonAfter(o.Reason))), maxReasonChars))
		}
		switch {
		case t.full == "":
			summary += " (empty log)"
		case t.shown == "":
			summary += fmt.Sprintf(" (log tail of %s left out to fit the comment size limit)", size(len(t.full)))
		case len(t.shown) < len(t.full):
			summary += fmt.Sprintf(" (last %s of %s)", size(len(t.shown)), size(len(t.full)))
		}
		b.WriteString("<details>\n<summary>")
		b.WriteString(summary)
		b.WriteString("</summary>\n\n")
		if t.shown != "" {
			fence := strings.Repeat("`", max(3, longestRun(t.shown, '`')+1))
			b.WriteString(fence)
			b.WriteString("\n")
			b.WriteString(t.shown)
			if !strings.HasSuffix(t.shown, "\n") {
				b.WriteString("\n")
			}
			b.WriteString(fence)
			b.WriteString("\n\n")
		}
		b.WriteString("</details>\n\n")
	}

	if c.view.StatusURL != "" {
		// The URL is ours, but a stray ")" or space would end the link early.
		u := strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "\n", "").Replace(c.view.StatusURL)
		fmt.Fprintf(&b, "[Status of this run](%s)\n", u)
	}
	return b.String()
}

// waterLevel returns the largest length cap such that the lengths, each cut to the cap, add up to
// at most target: cutting to it shortens the longest first and leaves short ones whole.
func waterLevel(lengths []int, target int) int {
	sorted := slices.Clone(lengths)
	slices.Sort(sorted)
	remaining := target
	for i, l := range sorted {
		left := len(sorted) - i // entries at least this long
		if l*left > remaining {
			return remaining / left
		}
		remaining -= l
	}
	if len(sorted) == 0 {
		return 0
	}
	return sorted[len(sorted)-1]
}

// keepEnd returns at most n bytes from the end of s, starting on a character boundary and, where
// the first kept line was cut short, at the next whole line.
func keepEnd(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	kept := s[len(s)-n:]
	for len(kept) > 0 && !utf8.RuneStart(kept[0]) {
		kept = kept[1:]
	}
	if i := strings.IndexByte(kept, '\n'); i >= 0 && i < 512 && i < len(kept)-1 {
		kept = kept[i+1:]
	}
	return kept
}

// ansiEscape matches terminal colour and cursor sequences, which tools like tofu print and which
// are noise in a comment.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// cleanLog makes a log printable in a comment: valid UTF-8, no NUL bytes, no terminal escapes.
func cleanLog(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if strings.Contains(s, "\x1b") { // the regexp is slow on a megabyte of log
		s = ansiEscape.ReplaceAllString(s, "")
	}
	return s
}

func longestRun(s string, c byte) int {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// mdText makes s safe as plain text in a table cell or a line: one line, bounded, and every
// character that markdown or HTML would interpret escaped.
func mdText(s string, limit int) string {
	s = clip(oneLine(s), limit)
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf && strings.ContainsRune("\\`*_[]<>|#~&!", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// spaced turns a status name into words ("timed_out" → "timed out").
func spaced(s string) string { return strings.ReplaceAll(s, "_", " ") }

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// clip cuts s to at most limit bytes on a character boundary, marking the cut.
func clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func duration(o domain.OrderRecord) string {
	if o.StartedAt.IsZero() || o.FinishedAt.IsZero() {
		return "–"
	}
	return o.FinishedAt.Sub(o.StartedAt).Round(time.Second).String()
}

func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func orderCounts(orders []domain.OrderRecord) string {
	counts := map[domain.OrderStatus]int{}
	for _, o := range orders {
		counts[o.Status]++
	}
	parts := []string{fmt.Sprintf("%d orders", len(orders))}
	for _, s := range []domain.OrderStatus{domain.OrderSucceeded, domain.OrderFailed, domain.OrderTimedOut,
		domain.OrderSkipped, domain.OrderRunning, domain.OrderQueued, domain.OrderWaiting} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], spaced(string(s))))
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return parts[0] + ": " + strings.Join(parts[1:], ", ")
}

func runEmoji(s domain.RunStatus) string {
	switch s {
	case domain.RunAccepted:
		return "⏳"
	case domain.RunRunning:
		return "🔄"
	case domain.RunSucceeded:
		return "✅"
	case domain.RunFailed:
		return "❌"
	case domain.RunTimedOut:
		return "⏱️"
	}
	return "❔"
}

func orderEmoji(s domain.OrderStatus) string {
	switch s {
	case domain.OrderWaiting:
		return "⏸️"
	case domain.OrderQueued:
		return "⏳"
	case domain.OrderRunning:
		return "🔄"
	case domain.OrderSucceeded:
		return "✅"
	case domain.OrderFailed:
		return "❌"
	case domain.OrderTimedOut:
		return "⏱️"
	case domain.OrderSkipped:
		return "⏭️"
	}
	return "❔"
}
