package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/deadletters"
	"github.com/iac-ci/iac-ci/embedded"
	"github.com/iac-ci/iac-ci/producers"
)

// operations are what an operator asks of an iac-ci: of its data folder, its AWS resources, or
// a running server. The first two act through the same producers.Control a server serves.
type operations interface {
	listDeadLetters(ctx context.Context) ([]deadletters.Record, error)
	showDeadLetter(ctx context.Context, id string) (producers.DeadLetterView, error)
	redrive(ctx context.Context, id string) (producers.Redriven, error)
	purge(ctx context.Context, id string) error
	rerun(ctx context.Context, runID string) (producers.Accepted, error)
	// log writes an attempt's log to w: as it stands, or following it until the attempt ends.
	log(ctx context.Context, runID, order string, attempt int, follow bool, w io.Writer) error
	close() error
}

// targetFlags say which iac-ci an operator command acts on.
type targetFlags struct {
	data     *string
	backend  *string
	server   *string
	apiToken *string
	getenv   Env
}

func addTargetFlags(fs *flag.FlagSet, getenv Env) *targetFlags {
	return &targetFlags{
		data:     fs.String("data", "./.iac-ci", "the data folder of an embedded iac-ci that no server holds"),
		backend:  choiceFlag(fs, "backend", "embedded", "embedded (the --data folder) or aws (the resources the IAC_CI_* variables name)", "embedded", "aws"),
		server:   fs.String("server", "", "a running iac-ci serve to ask instead, e.g. http://127.0.0.1:8080 (with the API token)"),
		apiToken: fs.String("api-token", "", "the server's API token (default $IAC_CI_API_TOKEN)"),
		getenv:   getenv,
	}
}

// open returns the operations on the iac-ci the flags name.
func (t *targetFlags) open(ctx context.Context) (operations, error) {
	if *t.server != "" {
		base, token, err := serverOf(*t.server, *t.apiToken, t.getenv)
		if err != nil {
			return nil, err
		}
		return &remote{base: base, token: token, client: &http.Client{Timeout: time.Minute}}, nil
	}
	scratch, err := os.MkdirTemp("", "iac-ci-operate-")
	if err != nil {
		return nil, err
	}
	var ports assembly.Ports
	closers := []func() error{func() error { return os.RemoveAll(scratch) }}
	switch *t.backend {
	case "aws":
		if ports, err = awsPorts(ctx, t.getenv); err != nil {
			return nil, err
		}
	default:
		if _, err := os.Stat(*t.data); err != nil {
			return nil, usagef("--data %s: %v (the data folder of iac-ci serve or iac-ci run --data)", *t.data, err)
		}
		b, err := embedded.Open(ctx, embedded.Options{DataDir: *t.data, Getenv: t.getenv})
		if errors.Is(err, embedded.ErrDataInUse) {
			return nil, fmt.Errorf("%w: a server holds it; ask it instead with --server URL", err)
		}
		if err != nil {
			return nil, err
		}
		ports = b.Ports
		closers = append(closers, b.Close)
	}
	sys, err := assembly.New(ports, assembly.Options{ScratchDir: scratch})
	if err != nil {
		return nil, err
	}
	return &local{Control: sys.Control, closers: closers}, nil
}

// serverOf checks a --server URL and finds the API token for it: the flag's, or
// $IAC_CI_API_TOKEN.
func serverOf(raw, token string, getenv Env) (base, tok string, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", usagef("--server %q: want the server's base URL, such as http://127.0.0.1:8080", raw)
	}
	if token == "" {
		token = getenv(EnvAPIToken)
	}
	return strings.TrimRight(u.String(), "/"), token, nil
}

// awsPorts opens the ports on the AWS resources the IAC_CI_* variables name, for a command
// that reads or changes them directly.
func awsPorts(ctx context.Context, getenv Env) (assembly.Ports, error) {
	cfg, err := awsbackend.FromEnv(getenv)
	if err != nil {
		return assembly.Ports{}, err
	}
	awsCfg, err := awsbackend.LoadAWS(ctx)
	if err != nil {
		return assembly.Ports{}, err
	}
	b, err := awsbackend.Open(cfg, awsbackend.NewClients(awsCfg, cfg, awsbackend.ClientOptions{}), false, nil)
	if err != nil {
		return assembly.Ports{}, err
	}
	return b.Ports(), nil
}

// local acts on ports this process opened.
type local struct {
	*producers.Control
	closers []func() error
}

func (l *local) listDeadLetters(ctx context.Context) ([]deadletters.Record, error) {
	return l.DeadLetters.List(ctx)
}
func (l *local) showDeadLetter(ctx context.Context, id string) (producers.DeadLetterView, error) {
	return l.ShowDeadLetter(ctx, id)
}
func (l *local) redrive(ctx context.Context, id string) (producers.Redriven, error) {
	return l.RedriveDeadLetter(ctx, id)
}
func (l *local) purge(ctx context.Context, id string) error { return l.PurgeDeadLetter(ctx, id) }
func (l *local) rerun(ctx context.Context, runID string) (producers.Accepted, error) {
	return l.Rerun(ctx, runID)
}
func (l *local) log(ctx context.Context, runID, order string, attempt int, follow bool, w io.Writer) error {
	if follow {
		return l.FollowLog(ctx, runID, order, attempt, w, func() {})
	}
	out, err := l.Log(ctx, runID, order, attempt)
	if err != nil {
		return err
	}
	if out.Launched != "" && len(out.Text) == 0 {
		fmt.Fprintf(w, "iac-ci: attempt %d runs as %s\n", out.Attempt, out.Launched)
	}
	_, err = w.Write(out.Text)
	return err
}
func (l *local) close() error {
	var first error
	for i := len(l.closers) - 1; i >= 0; i-- {
		if err := l.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// remote asks a running server.
type remote struct {
	base, token string
	client      *http.Client
}

func (r *remote) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, nil)
	if err != nil {
		return err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		msg := strings.TrimSpace(e.Error)
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%s %s: %s: pass the server's API token (--api-token or IAC_CI_API_TOKEN)", method, path, msg)
		case http.StatusNotFound:
			return fmt.Errorf("%s: %w", msg, deadletters.ErrNotFound)
		case http.StatusConflict:
			return fmt.Errorf("%w: %s", producers.ErrNotRedrivable, strings.TrimPrefix(msg, producers.ErrNotRedrivable.Error()+": "))
		}
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, msg)
	}
	if out == nil || len(body) == 0 {
		return nil
	}
	return json.Unmarshal(body, out)
}

func (r *remote) listDeadLetters(ctx context.Context) ([]deadletters.Record, error) {
	var out []deadletters.Record
	return out, r.do(ctx, http.MethodGet, "/dead-letters", &out)
}
func (r *remote) showDeadLetter(ctx context.Context, id string) (producers.DeadLetterView, error) {
	var out producers.DeadLetterView
	return out, r.do(ctx, http.MethodGet, "/dead-letters/"+url.PathEscape(id), &out)
}
func (r *remote) redrive(ctx context.Context, id string) (producers.Redriven, error) {
	var out producers.Redriven
	return out, r.do(ctx, http.MethodPost, "/dead-letters/"+url.PathEscape(id)+"/redrive", &out)
}
func (r *remote) purge(ctx context.Context, id string) error {
	return r.do(ctx, http.MethodDelete, "/dead-letters/"+url.PathEscape(id), nil)
}
func (r *remote) rerun(ctx context.Context, runID string) (producers.Accepted, error) {
	var out producers.Accepted
	return out, r.do(ctx, http.MethodPost, "/runs/"+url.PathEscape(runID)+"/rerun", &out)
}
func (r *remote) log(ctx context.Context, runID, order string, attempt int, follow bool, w io.Writer) error {
	q := url.Values{}
	if attempt > 0 {
		q.Set("attempt", strconv.Itoa(attempt))
	}
	if follow {
		q.Set("follow", "true")
	}
	path := "/runs/" + url.PathEscape(runID) + "/orders/" + url.PathEscape(order) + "/log"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	client := *r.client
	client.Timeout = 0 // a followed log lasts as long as its order
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("GET %s: %s: pass the server's API token (--api-token or IAC_CI_API_TOKEN)", path, e.Error)
		}
		return fmt.Errorf("%s (%s)", dash(e.Error), resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
func (r *remote) close() error { return nil }

const dlqUsage = `Usage: iac-ci dlq list|show ID|redrive ID...|redrive --all|purge ID...|purge --all [flags]

Dead letters are messages a queue gave up on (received five times without being handled). The
run they belong to still ends (the order fails, the run ends, or the sweeper times the order out),
and each is kept, with the last error that killed it, until it is redriven or purged:

  list       every dead letter: queue, run, order, target, receives, age, reason
  show ID    one, with its message, its order's state and history, and what redrive would do
  redrive    put it back where it came from, when that still does something (an intake dead
             letter whose run ended runs the job again as a new run); otherwise say what has
             ended, and keep it
  purge      forget it

It acts on a data folder (--data, when no server holds it), on the AWS resources the IAC_CI_*
variables name (--backend aws), or asks a running server (--server URL, with its API token).

Example:
  iac-ci dlq list --data ./.iac-ci
  iac-ci dlq show 8f14e45f --server http://127.0.0.1:8080
  iac-ci dlq redrive --all --backend aws --json

Flags:
`

// dlqCommand is `iac-ci dlq`.
func dlqCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	target := addTargetFlags(fs, getenv)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	all := fs.Bool("all", false, "redrive or purge every dead letter")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), dlqUsage)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usagef("dlq: say what to do: list, show, redrive or purge (iac-ci help dlq)")
	}
	verb, ids := rest[0], rest[1:]
	switch verb {
	case "list":
		if len(ids) > 0 || *all {
			return usagef("dlq list takes no ids")
		}
	case "show":
		if len(ids) != 1 || *all {
			return usagef("dlq show takes one id (iac-ci dlq list shows them)")
		}
	case "redrive", "purge":
		if len(ids) == 0 && !*all {
			return usagef("dlq %s: give the ids of the dead letters, or --all", verb)
		}
		if len(ids) > 0 && *all {
			return usagef("dlq %s: give ids or --all, not both", verb)
		}
	default:
		return usagef("dlq: unknown action %q: want list, show, redrive or purge", verb)
	}
	ops, err := target.open(ctx)
	if err != nil {
		return err
	}
	defer ops.close()
	if verb == "redrive" || verb == "purge" {
		if *all {
			list, err := ops.listDeadLetters(ctx)
			if err != nil {
				return err
			}
			for _, r := range list {
				ids = append(ids, r.ID)
			}
		}
		return dlqEach(ctx, ops, verb, ids, *asJSON, stdout, stderr)
	}
	if verb == "show" {
		v, err := ops.showDeadLetter(ctx, ids[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, v)
		}
		printDeadLetter(stdout, v)
		return nil
	}
	list, err := ops.listDeadLetters(ctx)
	if err != nil {
		return err
	}
	if list == nil {
		list = []deadletters.Record{}
	}
	if *asJSON {
		return printJSON(stdout, list)
	}
	printDeadLetters(stdout, list, time.Now())
	return nil
}

// dlqEach redrives or purges each dead letter, going on past one that fails; the error says how
// many did.
func dlqEach(ctx context.Context, ops operations, verb string, ids []string, asJSON bool, stdout, stderr io.Writer) error {
	var done []any
	failed := 0
	for _, id := range ids {
		var err error
		if verb == "redrive" {
			var out producers.Redriven
			if out, err = ops.redrive(ctx, id); err == nil {
				done = append(done, out)
				if !asJSON {
					fmt.Fprintf(stdout, "%s: %s\n", id, out.Did)
				}
			}
		} else if err = ops.purge(ctx, id); err == nil {
			done = append(done, map[string]string{"id": id, "did": "purged"})
			if !asJSON {
				fmt.Fprintf(stdout, "%s: purged\n", id)
			}
		}
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "iac-ci dlq %s %s: %v\n", verb, id, err)
		}
	}
	if asJSON {
		if done == nil {
			done = []any{}
		}
		if err := printJSON(stdout, done); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("dlq %s: %d of %d not done", verb, failed, len(ids))
	}
	return nil
}

// printJSON prints v as indented JSON, as every command's --json does.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printDeadLetters(w io.Writer, list []deadletters.Record, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUE\tRUN\tORDER\tTARGET\tRECEIVES\tAGE\tREASON")
	for _, r := range list {
		order := r.OrderName
		if order == "" && r.OrderNum > 0 {
			order = fmt.Sprintf("#%d", r.OrderNum)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Queue, dash(r.RunID), dash(order), dash(r.Target),
			r.Receives, now.Sub(r.DeadAt).Round(time.Second), oneLine(r.Reason, 80))
	}
	tw.Flush()
}

func printDeadLetter(w io.Writer, v producers.DeadLetterView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("id", v.ID)
	row("queue", v.Queue+" (dead-lettered to "+v.DeadLetterQueue+")")
	row("run", v.RunID)
	if v.RunStatus != "" {
		row("run status", string(v.RunStatus))
	}
	if v.OrderNum > 0 {
		row("order", fmt.Sprintf("%s (#%d, %s), attempt %d", dash(v.OrderName), v.OrderNum, dash(v.Target), v.Attempt))
	}
	if v.Order != nil {
		row("order status", fmt.Sprintf("%s, attempt %d", v.Order.Status, v.Order.Attempt))
	}
	row("receives", fmt.Sprint(v.Receives))
	if !v.FirstFailure.IsZero() {
		row("failures", v.FirstFailure.Format(time.RFC3339)+" to "+v.LastFailure.Format(time.RFC3339))
	}
	row("dead since", v.DeadAt.Format(time.RFC3339))
	row("reason", v.Reason)
	row("outcome", v.Outcome)
	row("redrive would", v.Redrive)
	tw.Flush()
	var body bytes.Buffer
	if json.Indent(&body, v.Body, "  ", "  ") == nil {
		fmt.Fprintf(w, "message:\n  %s\n", body.String())
	}
	if len(v.History) > 0 {
		fmt.Fprintln(w, "history:")
		for _, e := range v.History {
			what := e.OrderName
			if what == "" {
				what = "run"
			}
			line := fmt.Sprintf("  %s  %-10s %s", e.Time.Format(time.RFC3339), what, e.Status)
			if e.Details != "" {
				line += "  " + oneLine(e.Details, 100)
			}
			fmt.Fprintln(w, line)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine is s on one line, at most n characters.
func oneLine(s string, n int) string {
	return cut(strings.Join(strings.Fields(s), " "), n)
}

const rerunUsage = `Usage: iac-ci rerun RUN [flags]

Runs the job of an earlier run again, as a new run (the same code and commit), and prints the new
run's id. It acts on a data folder (--data: the new run runs when iac-ci serve runs on the
folder), on the AWS resources the IAC_CI_* variables name (--backend aws), or asks a running
server (--server URL, with its API token).

Example:
  iac-ci rerun 20261206T101500Z-4f1c2b --server http://127.0.0.1:8080

Flags:
`

// rerunCommand is `iac-ci rerun`.
func rerunCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rerun", flag.ContinueOnError)
	target := addTargetFlags(fs, getenv)
	asJSON := fs.Bool("json", false, "print the new run as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), rerunUsage)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("rerun: give one run id")
	}
	ops, err := target.open(ctx)
	if err != nil {
		return err
	}
	defer ops.close()
	acc, err := ops.rerun(ctx, rest[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, acc)
	}
	fmt.Fprintln(stdout, acc.RunID)
	return nil
}

const logsUsage = `Usage: iac-ci logs RUN ORDER [flags]

Prints the whole log of an order's attempt (the latest, or --attempt N), masked as every stored
log is; with -f, follows it while the order runs, and ends when the attempt does. ORDER is the
order's name. It reads a data folder (--data, when no server holds it), the AWS resources the
IAC_CI_* variables name (--backend aws), or asks a running server (--server URL, with its API
token): a log that is being written is followed best through the server that runs the order.

Example:
  iac-ci logs 20261206T101500Z-4f1c2b plan --server http://127.0.0.1:8080 -f

Flags:
`

// logsCommand is `iac-ci logs`.
func logsCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	target := addTargetFlags(fs, getenv)
	attempt := fs.Int("attempt", 0, "the attempt to print (default: the latest)")
	follow := fs.Bool("f", false, "follow the log while the order runs")
	fs.BoolVar(follow, "follow", false, "the same as -f")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), logsUsage)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usagef("logs: give a run id and an order's name")
	}
	if *attempt < 0 {
		return usagef("logs: --attempt %d: want 1 or more", *attempt)
	}
	ops, err := target.open(ctx)
	if err != nil {
		return err
	}
	defer ops.close()
	return ops.log(ctx, rest[0], rest[1], *attempt, *follow, stdout)
}
