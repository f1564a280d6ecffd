package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/creack/pty"
)

// screen is a small terminal emulator: enough of a VT100 to replay what iac-ci writes (text,
// CR, LF, cursor up, erase, colours) and to tell what a terminal of its size would show, and
// how many lines scrolled off its top into the scrollback.
type screen struct {
	rows, cols int
	lines      [][]rune // the scrollback, then the screen: its last rows lines
	top        int      // index in lines of the screen's first line
	row, col   int      // the cursor, row relative to top
	scrolled   int      // lines pushed into the scrollback
}

func newScreen(rows, cols int) *screen {
	return &screen{rows: rows, cols: cols, lines: make([][]rune, rows)}
}

var csi = regexp.MustCompile(`^\x1b\[([0-9;?]*)([A-Za-z])`)

// feed replays output on the screen.
func (s *screen) feed(b []byte) {
	for len(b) > 0 {
		if m := csi.FindSubmatch(b); m != nil {
			n, err := strconv.Atoi(string(m[1]))
			if err != nil || n == 0 {
				n = 1
			}
			switch m[2][0] {
			case 'A':
				s.row = max(s.row-n, 0)
			case 'J': // from the cursor to the end of the screen
				s.clearLine()
				for r := s.row + 1; r < s.rows; r++ {
					s.lines[s.top+r] = nil
				}
			case 'K':
				s.clearLine()
			}
			b = b[len(m[0]):]
			continue
		}
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch r {
		case '\r':
			s.col = 0
		case '\n':
			s.lineFeed()
		case '\x1b':
			// An escape this emulator does not know: iac-ci writes none.
		default:
			if s.col == s.cols {
				s.col = 0
				s.lineFeed()
			}
			line := s.lines[s.top+s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.lines[s.top+s.row] = line
			s.col++
		}
	}
}

func (s *screen) clearLine() {
	if line := s.lines[s.top+s.row]; len(line) > s.col {
		s.lines[s.top+s.row] = line[:s.col]
	}
}

func (s *screen) lineFeed() {
	if s.row < s.rows-1 {
		s.row++
		return
	}
	s.lines = append(s.lines, nil)
	s.top++
	s.scrolled++
}

// text is the scrollback and the screen, without trailing blanks.
func (s *screen) text() string {
	var b strings.Builder
	for _, l := range s.lines {
		b.WriteString(strings.TrimRight(string(l), " "))
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// inTerminal runs the binary with args in a pseudo-terminal of rows by cols, in dir, and
// returns its exit code and everything it wrote.
func inTerminal(t *testing.T, dir string, env []string, rows, cols int, name string, args ...string) (int, []byte) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)})
	if err != nil {
		t.Fatalf("start %s in a pseudo-terminal: %v", name, err)
	}
	defer tty.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, tty)
	// Linux ends a pseudo-terminal's output with EIO once the last process holding it is gone.
	if err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatalf("read the terminal: %v", err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.Bytes()
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	}
	return 0, out.Bytes()
}

// redrawStart is how the live table begins each redraw: back to the start of the line, up
// over the last table, erase to the end of the screen.
var redrawStart = regexp.MustCompile(`\r\x1b\[(\d+)A\x1b\[J`)

func TestLiveTableNeverScrollsTheTerminal(t *testing.T) {
	t.Parallel()
	const rows, cols, orders = 20, 60, 40
	var job strings.Builder
	job.WriteString("username: newcomer\norders:\n")
	for i := range orders {
		// Long enough that the table is drawn many times, four orders of a target at a time.
		fmt.Fprintf(&job, "  - {order_name: order-number-%02d-of-a-long-job, timeout: 60, cmds: [\"sleep 0.2\"]}\n", i)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "forty.yaml")
	if err := os.WriteFile(path, []byte(job.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := inTerminal(t, dir, []string{"TERM=xterm", "NO_COLOR="}, rows, cols, binary, "run", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}

	// Each redraw moves up over exactly the lines of the one before, which fit on the screen with
	// the line above them.
	starts := redrawStart.FindAllSubmatchIndex(out, -1)
	if len(starts) < 3 {
		t.Fatalf("the table was drawn %d times, want it redrawn as the run went:\n%q", len(starts)+1, out)
	}
	first := bytes.Index(out, []byte("\n")) + 1 // after the "accepted" line
	prev := out[first:starts[0][0]]
	for i, m := range starts {
		up, _ := strconv.Atoi(string(out[m[2]:m[3]]))
		if lf := bytes.Count(prev, []byte("\n")); lf != up || lf > rows-1 {
			t.Fatalf("redraw %d: the last table had %d lines and the cursor went up %d, on a screen of %d rows", i, lf, up, rows)
		}
		end := len(out)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		prev = out[m[1]:end]
	}

	// Nothing scrolled while the table was live: the screen was filled from its top.
	live := starts[len(starts)-1][1] // the last clear, before the final table
	s := newScreen(rows, cols)
	s.feed(out[:live])
	if s.scrolled != 0 {
		t.Fatalf("%d lines scrolled into the scrollback while the table was live:\n%s", s.scrolled, s.text())
	}
	for _, l := range s.lines {
		if len(l) > cols {
			t.Fatalf("a line wider than the terminal: %q", string(l))
		}
	}
	// Colour marked the statuses, since the terminal allowed it.
	if !bytes.Contains(out[:live], []byte("\x1b[33mrunning\x1b[0m")) {
		t.Fatalf("no running order was coloured:\n%q", out[:live])
	}

	// What stays is the accepted line and the final table, with no live table left behind.
	s.feed(out[live:])
	text := s.text()
	if strings.Contains(text, "more orders") || strings.Contains(text, ": running (") || strings.Count(text, "ORDER ") != 1 {
		t.Fatalf("the live table was left behind:\n%s", text)
	}
	if !strings.HasPrefix(text, "run ") || !strings.Contains(text, "order-number-39-of-a-long-job") || strings.Count(text, "succeeded") < orders+1 {
		t.Fatalf("the terminal does not show the final table:\n%s", text)
	}
}

func TestNoColorAndNonTerminalsGetNoEscapes(t *testing.T) {
	t.Parallel()
	code, out := inTerminal(t, repoRoot, []string{"TERM=xterm", "NO_COLOR=1"}, 24, 80, binary, "run", "examples/timeout.yaml")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the example times out)\n%s", code, out)
	}
	if !redrawStart.Match(out) {
		t.Fatalf("no live table on a terminal:\n%q", out)
	}
	if bytes.Contains(out, []byte("\x1b[3")) {
		t.Fatalf("colour with NO_COLOR set:\n%q", out)
	}
	r := iacci(t, nil, "run", "examples/timeout.yaml")
	if strings.Contains(r.stdout, "\x1b") || !strings.Contains(r.stdout, "timed_out") {
		t.Fatalf("a pipe got escapes, or not the lines:\n%q", r.stdout)
	}
	code, out = inTerminal(t, repoRoot, []string{"TERM=dumb"}, 24, 80, binary, "run", "examples/diamond.yaml")
	if code != 0 || bytes.Contains(out, []byte("\x1b")) || !bytes.Contains(out, []byte("apply")) {
		t.Fatalf("TERM=dumb: exit %d, output:\n%q", code, out)
	}
}
