package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/producers"
)

// runCommand is `iac-ci run`: run one job embedded, show its progress, print its result.
func runCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "", "data folder to keep state in (default: a temporary folder, removed afterwards)")
	workers := fs.Int("workers", 4, "orders run at once per execution target")
	secretsFile := fs.String("secrets", "", "JSON file of secret values by Parameter Store path or Secrets Manager name (mode 0600)")
	asJSON := fs.Bool("json", false, "print the final run as one JSON object instead of a table")
	logLevel := fs.String("log-level", "warn", "log level on stderr: debug, info, warn, error")
	gh := addGitHubFlags(fs, getenv)
	gh.oneRun = true
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: iac-ci run [flags] JOB_FILE\n\nRuns a job (JSON or YAML) on this machine and exits 0 when it succeeded, 1 when it\nfailed or timed out, 2 when the job was rejected.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return ExitRejected
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "iac-ci run: give exactly one job file")
		fs.Usage()
		return ExitRejected
	}
	path := fs.Arg(0)
	body, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "iac-ci run:", err)
		return ExitRejected
	}
	job, env, err := domain.DecodeJob(body)
	abs, _ := filepath.Abs(filepath.Dir(path))
	job.BaseDir = abs
	sub := producers.Submission{Job: job, Envelope: env, Source: "cli"}
	if err == nil {
		err = (&producers.Accepter{Embedded: true}).Prepare(&sub)
		job = sub.Job
	} else {
		err = (&producers.Accepter{Embedded: true}).Reject(sub, err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "iac-ci run: %s: %v\n", path, err)
		return ExitRejected
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
	sys, err := OpenEmbedded(ctx, opts)
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
	progress := newProgress(stdout, !*asJSON, isTerminal(stdout))
	progress.start(acc)
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
		if ending || time.Since(checked) >= refresh {
			checked = time.Now()
			run, err := sys.Engine.Store.GetRun(ctx, acc.RunID)
			if err == nil && (run.Reported || (progress.enabled && time.Since(shown) >= refresh)) {
				shown = time.Now()
				var events []domain.Event
				if progress.enabled && !progress.terminal {
					events, _ = sys.Engine.Store.ListEvents(ctx, run.TraceID)
				}
				orders, lerr := sys.Engine.Store.ListOrders(ctx, acc.RunID)
				if lerr == nil {
					view = producers.ViewOf(run, orders)
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
			return ExitError
		case <-changes:
		case <-finished:
			ending = true
		case <-time.After(max(0, refresh-time.Since(checked))):
		}
	}
	progress.finish(view)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(view)
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
