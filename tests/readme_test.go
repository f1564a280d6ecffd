package tests

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README marks the shell blocks a test runs: a ```sh block right after a line
// `<!-- runnable -->`. A ```text block right after a line `<!-- output -->` is what the runnable
// block before it shows on a terminal; the test runs the block in a pseudo-terminal, replays its
// output on a terminal emulator, and compares, with ids and durations made alike.

// readmeBlock is a runnable block of the README and the output it shows, if any.
type readmeBlock struct {
	line          int // where the script starts, for messages
	script        string
	output        string
	hasOutput     bool
	outputStarted int
}

// readmeBlocks reads the marked blocks of a Markdown file.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// fence reads the fenced block of kind that must start at lines[i].
	fence := func(i int, kind, marker string) (string, int) {
		if i >= len(lines) || lines[i] != "```"+kind {
			t.Fatalf("%s:%d: %s must be followed by a ```%s block", path, i, marker, kind)
		}
		var b strings.Builder
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == "```" {
				return b.String(), j
			}
			b.WriteString(lines[j] + "\n")
		}
		t.Fatalf("%s:%d: the block never ends", path, i+1)
		return "", 0
	}
	var blocks []readmeBlock
	for i := 0; i < len(lines); i++ {
		switch strings.TrimSpace(lines[i]) {
		case "<!-- runnable -->":
			script, end := fence(i+1, "sh", "<!-- runnable -->")
			blocks = append(blocks, readmeBlock{line: i + 3, script: script})
			i = end
		case "<!-- output -->":
			if len(blocks) == 0 || blocks[len(blocks)-1].hasOutput {
				t.Fatalf("%s:%d: an output with no runnable block of its own before it", path, i+1)
			}
			out, end := fence(i+1, "text", "<!-- output -->")
			b := &blocks[len(blocks)-1]
			b.output, b.hasOutput, b.outputStarted = out, true, i+3
			i = end
		}
	}
	return blocks
}

var (
	runIDs    = regexp.MustCompile(`\b\d{8}T\d{6}Z-[0-9a-f]{16}\b`)
	traceIDs  = regexp.MustCompile(`\b[0-9a-f]{10}\b`)
	durations = regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|ms|s)\b`)
	spaces    = regexp.MustCompile(` +`)
)

// alike makes two outputs comparable: ids and durations replaced, columns' padding (which
// follows the durations' widths) made one space, trailing blanks dropped.
func alike(s string) string {
	s = runIDs.ReplaceAllString(s, "<run_id>")
	s = traceIDs.ReplaceAllString(s, "<trace_id>")
	s = durations.ReplaceAllString(s, "<duration>")
	var out []string
	for l := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.TrimRight(spaces.ReplaceAllString(l, " "), " "))
	}
	return strings.Join(out, "\n")
}

func TestReadmeIsForANewcomer(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(body), "\n")
	if len(lines) >= 250 {
		t.Errorf("the README has %d lines, want fewer than 250: move the details to docs/", len(lines))
	}
	firstScreen := strings.Join(lines[:min(30, len(lines))], "\n")
	for _, cmd := range []string{"go run ./cmd/iac-ci run examples/diamond.yaml", "go test ./..."} {
		if !strings.Contains(firstScreen, cmd) {
			t.Errorf("the README's first 30 lines do not show %q", cmd)
		}
	}
	// The Go version it asks for is the one go.mod states.
	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	got := regexp.MustCompile(`Go (\d+\.\d+(\.\d+)?)`).FindSubmatch(body)
	if want == nil || got == nil || string(got[1]) != string(want[1]) {
		t.Errorf("the README asks for Go %q, go.mod says %q", got, want)
	}
	for _, code := range []string{"| 3 |", "| 130 |"} {
		if !strings.Contains(string(body), code) {
			t.Errorf("the README does not document exit code %s", code)
		}
	}
}

// Every relative link of the README and docs/ names a file that exists.
func TestDocsLinksResolve(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(repoRoot, "README.md"))
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllSubmatch(body, -1) {
			target := string(m[1])
			if strings.Contains(target, "://") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
			}
		}
	}
	for _, doc := range []string{"jobs.md", "github.md", "aws.md", "architecture.md", "performance.md", "security.md", "deploy.md"} {
		if _, err := os.Stat(filepath.Join(repoRoot, "docs", doc)); err != nil {
			t.Errorf("docs/%s is missing", doc)
		}
	}
}

func TestReadmeRunnableBlocks(t *testing.T) {
	t.Parallel()
	blocks := readmeBlocks(t, filepath.Join(repoRoot, "README.md"))
	if len(blocks) < 3 {
		t.Fatalf("the README marks %d blocks runnable; its first command at least should be", len(blocks))
	}
	for _, b := range blocks {
		t.Run(strings.SplitN(b.script, "\n", 2)[0], func(t *testing.T) {
			t.Parallel()
			// From the repository's root, as a newcomer in a clone, with the iac-ci of this test
			// run first on PATH and temporary files kept apart.
			env := []string{"PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH"),
				"TMPDIR=" + t.TempDir(), "TERM=xterm", "NO_COLOR=1"}
			const rows, cols = 40, 200 // wide enough that no line of the README wraps
			code, out := inTerminal(t, repoRoot, env, rows, cols, "sh", "-e", "-c", b.script)
			s := newScreen(rows, cols)
			s.feed(out)
			if code != 0 {
				t.Fatalf("README.md:%d: exit %d:\n%s", b.line, code, s.text())
			}
			if !b.hasOutput {
				return
			}
			if got, want := alike(s.text()), alike(b.output); got != want {
				t.Fatalf("README.md:%d: the output shown is not what a terminal shows.\nREADME (made alike):\n%s\n\nterminal:\n%s\n\nas is:\n%s",
					b.outputStarted, want, got, s.text())
			}
		})
	}
}
