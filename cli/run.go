package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/vcs/github"
)

const runUsage = `Usage: iac-ci run [flags] JOB_FILE

Runs a job (JSON or YAML; - reads it from standard input) on this machine, every order as a local
process, shows its progress (a live table on a terminal, a line per state change elsewhere) and
prints its result. Exits 0 when the run succeeded, 1 when it failed or timed out, 2 when the job
was rejected (every problem printed), 3 when iac-ci itself failed, 130 when interrupted.

Example:
  iac-ci run examples/diamond.yaml
  iac-ci run examples/diamond.yaml --json
  cat job.yaml | iac-ci run -

Flags:
`

// runCommand is `iac-ci run`: run one job embedded, show its progress, print its result.
func runCommand(ctx context.Context, args []string, getenv Env, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	dataDir := fs.String("data", "", "data folder to keep state in (default: a temporary folder, removed afterwards)")
	workers := workersFlag(fs)
	secretsFile := fs.String("secrets", "", "JSON file of secret values by Parameter Store path or Secrets Manager name (mode 0600)")
	asJSON := fs.Bool("json", false, "print the final run, or the problems of a rejected job, as one JSON object")
	streamLogs := fs.Bool("logs", false, "print every order's output as it runs, each line after its order's name (instead of the live table)")
	logLevel := logLevelFlag(fs, "warn")
	gh := addGitHubFlags(fs, getenv)
	gh.oneRun = true
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage)
		fs.PrintDefaults()
	}
	files, err := parseFlags(fs, args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && len(files) != 1 {
		err = usagef("run: give exactly one job file, or - for standard input (got %d: %s)", len(files), strings.Join(files, " "))
	}
	if err != nil {
		fmt.Fprintln(stderr, "iac-ci", err)
		return ExitRejected
	}
	path := files[0]
	job, env, err := loadJob(path, stdin, stderr, getenv)
	if err != nil {
		var invalid *domain.ValidationError
		if *asJSON && errors.As(err, &invalid) {
			writeProblems(stdout, problemsOf("", invalid.Problems))
		}
		fmt.Fprintf(stderr, "iac-ci run: %s: %v\n", displayName(path), err)
		if filepath.Base(path) == github.ConfigPath {
			fmt.Fprintf(stderr, "iac-ci run: %s is a repository's configuration, which pull requests run; check it with: iac-ci validate %s\n", path, path)
		}
		return ExitRejected
	}
	if job.GitRepo != "" && (job.PRNumber > 0 || job.IssueNumber > 0) && gh.tokenValue() == "" {
		n := job.PRNumber
		if n == 0 {
			n = job.IssueNumber
		}
		fmt.Fprintf(stderr, "iac-ci run: the job names %s#%d, but there is no GitHub token (IAC_CI_GITHUB_TOKEN or --github-token): it will not comment there nor set a commit status\n", job.GitRepo, n)
	}

	dir, temporary := *dataDir, *dataDir == ""
	if temporary {
		tmp, err := os.MkdirTemp("", "iac-ci-run-")
		if err != nil {
			fmt.Fprintln(stderr, "iac-ci run:", err)
			return ExitError
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	changes, finished := make(chan struct{}, 1), make(chan struct{}, 1)
	watch := watcherFunc(func(string) {
		select {
		case changes <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := Options{
		DataDir: dir, Temporary: temporary, Addr: "127.0.0.1:0", Workers: *workers, SecretsFile: *secretsFile, Getenv: getenv,
		Log: newLogger(stderr, "text", *logLevel), Insecure: true, Watchers: []engine.Watcher{watch},
		Finishers: []engine.Finisher{finisherFunc(func(string) {
			select {
			case finished <- struct{}{}:
			default:
			}
		})},
	}
	if err := gh.apply(&opts, opts.Log); err != nil {
		fmt.Fprintln(stderr, "iac-ci run:", err)
		return ExitRejected
	}
	sys, err := openEmbedded(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "iac-ci run:", err)
		return ExitError
	}
	defer sys.Close()
	if err := sys.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "iac-ci run:", err)
		return ExitError
	}
	defer sys.Wait()
	defer cancel()

	acc, err := sys.Accepter.Accept(ctx, producers.Submission{Job: job, Envelope: env, Source: "cli"})
	if err != nil {
		fmt.Fprintf(stderr, "iac-ci run: %s: %v\n", path, err)
		return ExitRejected
	}
	progress := newProgress(stdout, !*asJSON, isTerminal(stdout) && getenv("TERM") != "dumb" && !*streamLogs, getenv("NO_COLOR") == "")
	progress.start(acc)
	var logs *logStreamer
	if *streamLogs {
		logs = &logStreamer{control: sys.Control, runID: acc.RunID, out: stdout}
	}
	// The run is read at most every refresh, and at every change once its finalization is
	// written (the Finisher above), to learn that it is reported. The progress display reads more
	// (the run's history, or its orders for the table) at most every refresh too, so a run of a
	// thousand orders does not read a thousand records on every change, nor its own record: the
	// database has one connection, and the run's own work waits for every read.
	const refresh = 200 * time.Millisecond
	var (
		view           producers.RunView
		shown, checked time.Time
		ending         bool
	)
	for {
		if ending || time.Since(checked) >= refresh || logs != nil {
			checked = time.Now()
			run, err := sys.Engine.Store.GetRun(ctx, acc.RunID)
			if err == nil && (run.Reported || (progress.enabled && time.Since(shown) >= refresh)) {
				shown = time.Now()
				var events []domain.Event
				if progress.enabled && !progress.terminal {
					events, _ = producers.RunEvents(ctx, sys.Engine.Store, run)
				}
				orders, lerr := sys.Engine.Store.ListOrders(ctx, acc.RunID)
				if lerr == nil {
					view = producers.ViewOf(run, orders)
					logs.show(ctx, orders)
					progress.update(view, events)
					if run.Reported {
						break
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			if temporary {
				fmt.Fprintln(stderr, "iac-ci run: interrupted; the run is dropped with its temporary data folder (with --data DIR, `iac-ci serve --data DIR` would finish it)")
			} else {
				fmt.Fprintf(stderr, "iac-ci run: interrupted; the run goes on if you run `iac-ci serve --data %s`\n", dir)
			}
			return ExitInterrupted
		case <-changes:
		case <-finished:
			ending = true
		case <-time.After(max(0, refresh-time.Since(checked))):
		}
	}
	progress.finish(view)
	if *asJSON {
		_ = printJSON(stdout, view)
	} else {
		printTable(stdout, view)
	}
	if view.Status == domain.RunSucceeded {
		return ExitSucceeded
	}
	return ExitFailed
}

// printTable prints a run's final table and a closing line.
func printTable(w io.Writer, v producers.RunView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tTARGET\tSTATUS\tATTEMPT\tDURATION\tEXIT")
	for _, o := range v.Orders {
		exit := "-"
		if o.ExitCode != nil {
			exit = fmt.Sprint(*o.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", o.OrderName, o.Target, o.Status, o.Attempt, duration(o.StartedAt, o.FinishedAt), exit)
	}
	tw.Flush()
	var reasons []string
	for _, o := range v.Orders {
		if o.Reason != "" {
			reasons = append(reasons, fmt.Sprintf("  %s: %s", o.OrderName, o.Reason))
		}
	}
	if len(reasons) > 0 {
		fmt.Fprintln(w, strings.Join(reasons, "\n"))
	}
	for _, o := range v.Orders {
		if (o.Status == domain.OrderFailed || o.Status == domain.OrderTimedOut) && strings.TrimSpace(o.LogTail) != "" {
			fmt.Fprintf(w, "--- %s: the last lines of its output ---\n%s", o.OrderName, lastLines(o.LogTail, failedLines))
		}
	}
	took := ""
	if v.CreatedAt != nil && v.FinishedAt != nil {
		took = " in " + v.FinishedAt.Sub(*v.CreatedAt).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "run %s %s%s (trace %s)\n", v.RunID, v.Status, took, v.TraceID)
}

func duration(start, end *time.Time) string {
	if start == nil || end == nil {
		return "-"
	}
	return end.Sub(*start).Round(time.Millisecond).String()
}

// loadJob reads the job named on the command line (a file, or standard input for "-"), decodes
// it, fills in what `iac-ci run` defaults (the username: the current user) and checks it as the
// embedded engine would accept it. Every problem is in the *domain.ValidationError it returns.
func loadJob(path string, stdin io.Reader, stderr io.Writer, getenv Env) (domain.Job, domain.Envelope, error) {
	var body []byte
	var baseDir string
	var err error
	if path == "-" {
		if f, ok := stdin.(*os.File); ok && isTerminal(f) {
			fmt.Fprintln(stderr, "iac-ci: reading the job from standard input; end it with Ctrl-D")
		}
		// One byte over the limit is enough for DecodeJob to say the body is too large.
		body, err = io.ReadAll(io.LimitReader(stdin, domain.MaxBodyBytes+1))
		if err == nil {
			baseDir, err = os.Getwd()
		}
	} else {
		body, err = os.ReadFile(path)
		if err == nil {
			baseDir, err = filepath.Abs(filepath.Dir(path))
		}
	}
	if err != nil {
		return domain.Job{}, domain.Envelope{}, err
	}
	job, env, err := domain.DecodeJob(body)
	if job.Username == "" {
		job.Username = currentUser(getenv)
	}
	job.BaseDir = baseDir
	sub := producers.Submission{Job: job, Envelope: env, Source: "cli"}
	if err != nil {
		// A decoding problem hides no other: the job is checked all the same.
		return job, env, (&producers.Accepter{Embedded: true}).Reject(sub, err)
	}
	err = (&producers.Accepter{Embedded: true}).Prepare(&sub)
	return sub.Job, env, err
}

// currentUser is who runs iac-ci, the username of a job run from the command line that names
// none: the account's name, or $USER or $LOGNAME where the account has no name (a container's
// numeric user).
func currentUser(getenv Env) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, name := range []string{"USER", "LOGNAME"} {
		if v := getenv(name); v != "" {
			return v
		}
	}
	return ""
}

// displayName is how a job file is named in messages.
func displayName(path string) string {
	if path == "-" {
		return "standard input"
	}
	return path
}

// fileProblem is one problem of a job or config, and the file it is in when several were read.
type fileProblem struct {
	File string `json:"file,omitempty"`
	domain.Problem
}

func problemsOf(file string, problems []domain.Problem) []fileProblem {
	out := make([]fileProblem, 0, len(problems))
	for _, p := range problems {
		out = append(out, fileProblem{File: file, Problem: p})
	}
	return out
}

// writeProblems prints problems as one JSON object, {"problems": [{"path", "message"}]}, the
// shape of the problems in the HTTP API's 400 answers.
func writeProblems(w io.Writer, problems []fileProblem) {
	if problems == nil {
		problems = []fileProblem{}
	}
	_ = printJSON(w, struct {
		Problems []fileProblem `json:"problems"`
	}{problems})
}

// failedLines is how many lines of a failed order's output `iac-ci run` shows under its table.
const failedLines = 10

// lastLines returns the last n lines of text, each ending in a newline.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// logStreamer prints the output of a run's orders as it comes (iac-ci run --logs), each line
// after its order's name. A nil streamer shows nothing.
type logStreamer struct {
	control *producers.Control
	runID   string
	out     io.Writer
	// printed is, by order and attempt, how many bytes of its log were shown, and held the
	// line begun but not yet ended.
	printed map[string]int64
	held    map[string][]byte
	ended   map[string]bool
}

// show prints what the orders wrote since the last call.
func (l *logStreamer) show(ctx context.Context, orders []domain.OrderRecord) {
	if l == nil {
		return
	}
	if l.printed == nil {
		l.printed, l.held, l.ended = map[string]int64{}, map[string][]byte{}, map[string]bool{}
	}
	for _, o := range orders {
		if o.Attempt == 0 {
			continue
		}
		key := o.OrderName + "#" + strconv.Itoa(o.Attempt)
		if l.ended[key] {
			continue
		}
		var text []byte
		ended := false
		if live, ok := l.control.Live.Get(o.RunID, o.OrderNum, o.Attempt); ok && o.Status == domain.OrderRunning {
			text, _, _, _ = live.From(l.printed[key])
			l.printed[key] += int64(len(text))
		} else {
			log, err := l.control.Log(ctx, l.runID, o.OrderName, o.Attempt)
			if err != nil {
				continue
			}
			if n := l.printed[key]; int64(len(log.Text)) > n {
				text = log.Text[n:]
				l.printed[key] = int64(len(log.Text))
			}
			ended = log.Ended
		}
		buf := append(l.held[key], text...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			fmt.Fprintf(l.out, "%s | %s\n", o.OrderName, buf[:i])
			buf = buf[i+1:]
		}
		if ended && len(buf) > 0 {
			fmt.Fprintf(l.out, "%s | %s\n", o.OrderName, buf)
			buf = nil
		}
		l.held[key], l.ended[key] = buf, ended
	}
}
