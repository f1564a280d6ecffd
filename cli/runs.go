package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iac-ci/iac-ci/embedded"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/store"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
)

// EnvAPIToken is where `runs` and `status` find the API token of --server.
const EnvAPIToken = "IAC_CI_API_TOKEN"

// runReader is where `iac-ci runs` and `iac-ci status` read runs: a data folder's store, the
// AWS tables, or a running server's HTTP routes, all answering with the same views.
type runReader interface {
	List(ctx context.Context, q url.Values) (producers.RunList, error)
	Run(ctx context.Context, runID string) (producers.RunView, error)
	Close() error
}

// sourceFlags say where to read: --data, --server (with --api-token) or --backend aws.
type sourceFlags struct {
	data, server, token, backend *string
	getenv                       Env
}

func addSourceFlags(fs *flag.FlagSet, getenv Env) *sourceFlags {
	return &sourceFlags{
		data:    fs.String("data", "", "data folder of the embedded backend (default ./.iac-ci, as serve's)"),
		server:  fs.String("server", "", "URL of a running iac-ci serve (or the AWS webhook endpoint) to ask instead"),
		token:   fs.String("api-token", "", "API token for --server (default $"+EnvAPIToken+")"),
		backend: fs.String("backend", "embedded", "embedded (the data folder) or aws (the tables the $IAC_CI_* configuration names)"),
		getenv:  getenv,
	}
}

// open opens the reader the flags name.
func (f *sourceFlags) open(ctx context.Context) (runReader, error) {
	if *f.server != "" {
		if *f.data != "" || *f.backend != "embedded" {
			return nil, usagef("--server reads from a server: leave out --data and --backend")
		}
		base, token, err := serverOf(*f.server, *f.token, f.getenv)
		if err != nil {
			return nil, err
		}
		return &serverReader{base: base, token: token, client: &http.Client{Timeout: time.Minute}}, nil
	}
	switch *f.backend {
	case "embedded":
		dir := *f.data
		if dir == "" {
			dir = "./.iac-ci"
		}
		return openStoreReader(dir)
	case "aws":
		if *f.data != "" {
			return nil, usagef("--backend aws reads the AWS tables: leave out --data")
		}
		ports, err := awsPorts(ctx, f.getenv)
		if err != nil {
			return nil, err
		}
		return storeReader{store: ports.Store}, nil
	}
	return nil, usagef("--backend must be embedded or aws, not %q", *f.backend)
}

// storeReader reads a store directly.
type storeReader struct {
	store store.Store
	close func() error
}

// openStoreReader opens the store of a data folder beside whatever serves it (SQLite lets
// many processes read one database); it never creates a folder that is not there.
func openStoreReader(dir string) (runReader, error) {
	path := filepath.Join(dir, embedded.StoreDB)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no iac-ci data in %s (%w): give the folder `iac-ci serve --data` or `iac-ci run --data` used", dir, err)
	}
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := sqlitestore.Open(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return storeReader{store: st, close: func() error { return errors.Join(st.Close(), db.Close()) }}, nil
}

func (r storeReader) List(ctx context.Context, q url.Values) (producers.RunList, error) {
	f, err := producers.RunFilterOf(q)
	if err != nil {
		return producers.RunList{}, err
	}
	page, err := r.store.ListRuns(ctx, f)
	if err != nil {
		return producers.RunList{}, err
	}
	return producers.ListOf(page, "/runs", q), nil
}

func (r storeReader) Run(ctx context.Context, runID string) (producers.RunView, error) {
	run, err := r.store.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return producers.RunView{}, fmt.Errorf("no run %s here (a run accepted but not yet through intake is not stored yet): %w", runID, err)
	}
	if err != nil {
		return producers.RunView{}, err
	}
	orders, err := r.store.ListOrders(ctx, runID)
	if err != nil {
		return producers.RunView{}, err
	}
	return producers.ViewOf(run, orders), nil
}

func (r storeReader) Close() error {
	if r.close == nil {
		return nil
	}
	return r.close()
}

// serverReader asks a running server, with the API token as a bearer token.
type serverReader struct {
	base, token string
	client      *http.Client
}

func (r *serverReader) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", r.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", r.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (give the server's API token with --api-token or $" + EnvAPIToken + ")"
		}
		return fmt.Errorf("GET %s%s: %s: %s%s", r.base, path, resp.Status, e.Error, hint)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s%s: not the JSON of iac-ci: %w", r.base, path, err)
	}
	return nil
}

func (r *serverReader) List(ctx context.Context, q url.Values) (producers.RunList, error) {
	var l producers.RunList
	path := "/runs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := r.get(ctx, path, &l)
	return l, err
}

func (r *serverReader) Run(ctx context.Context, runID string) (producers.RunView, error) {
	var v producers.RunView
	err := r.get(ctx, "/runs/"+url.PathEscape(runID), &v)
	return v, err
}

func (r *serverReader) Close() error { return nil }

// runsCommand is `iac-ci runs`: a page of runs, newest first, as a table or JSON.
func runsCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("runs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := addSourceFlags(fs, getenv)
	status := fs.String("status", "", "only runs in this status: accepted, running, succeeded, failed, timed_out")
	repo := fs.String("repo", "", "only runs of this repository (owner/name)")
	pr := fs.Int("pr", 0, "only runs of this pull request number")
	user := fs.String("username", "", "only runs this username asked for")
	limit := fs.Int("limit", store.DefaultRunPage, fmt.Sprintf("runs in the page, 1 to %d", store.MaxRunPage))
	after := fs.String("after", "", "start after this cursor (the next page's, which the last line gives)")
	asJSON := fs.Bool("json", false, "print the page as JSON (runs, next) instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: iac-ci runs [flags]\n\nLists runs, newest first, from a data folder, a running server (--server) or AWS (--backend aws).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("runs takes no arguments, got %q (filters are flags: --status, --repo, --pr, --username)", strings.Join(fs.Args(), " "))
	}
	q := url.Values{}
	for k, v := range map[string]string{"status": *status, "repo": *repo, "username": *user, "after": *after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *pr != 0 {
		q.Set("pr", strconv.Itoa(*pr))
	}
	q.Set("limit", strconv.Itoa(*limit))
	// The filters are checked here too, so a mistake reads the same from every source.
	if _, err := producers.RunFilterOf(q); err != nil {
		return usageError{strings.Replace(err.Error(), "job rejected: ", "", 1)}
	}
	r, err := src.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	list, err := r.List(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, list)
	}
	printRuns(stdout, list)
	return nil
}

// printRuns prints a page of runs as a table, and how to get the next page.
func printRuns(w io.Writer, l producers.RunList) {
	if len(l.Runs) == 0 {
		fmt.Fprintln(w, "no runs")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATUS\tREPOSITORY\tPR\tUSER\tORDERS\tSTARTED (UTC)\tDURATION")
	for _, r := range l.Runs {
		repo, pr, started, took := "-", "-", "-", "-"
		if r.GitRepo != "" {
			repo = r.GitRepo
		}
		if r.PRNumber != 0 {
			pr = "#" + strconv.Itoa(r.PRNumber)
		}
		if r.CreatedAt != nil {
			started = r.CreatedAt.UTC().Format("2006-01-02 15:04:05")
			if r.FinishedAt != nil {
				took = r.FinishedAt.Sub(*r.CreatedAt).Round(time.Millisecond).String()
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.RunID, r.Status, repo, pr, r.Username, r.OrderCount, started, took)
	}
	tw.Flush()
	if l.Next != "" {
		fmt.Fprintf(w, "more: --after %s\n", l.Next)
	}
}

// statusCommand is `iac-ci status RUN`: the final table of any run (or where it stands).
func statusCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := addSourceFlags(fs, getenv)
	asJSON := fs.Bool("json", false, "print the run as JSON (as GET /runs/{run_id} answers) instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: iac-ci status [flags] RUN_ID\n\nShows a run's orders as `iac-ci run` does at its end, from a data folder, a running server\n(--server) or AWS (--backend aws).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("status takes one run id (iac-ci runs lists them), got %d arguments", fs.NArg())
	}
	r, err := src.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	v, err := r.Run(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, v)
	}
	printTable(stdout, v)
	return nil
}
