package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
	"github.com/iac-ci/iac-ci/sandbox"
	"github.com/iac-ci/iac-ci/sealing"
	"github.com/iac-ci/iac-ci/secrets"
	"github.com/iac-ci/iac-ci/secrets/localsecrets"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
)

// Options configure a System.
type Options struct {
	DataDir string
	// Temporary says the data folder is deleted when the process ends (iac-ci run without
	// --data): its databases then never wait for the disk (sqlitedb.OpenTemporary).
	Temporary   bool
	Addr        string // where the HTTP server listens; "127.0.0.1:0" picks a free port
	Workers     int    // concurrent orders per execution target
	SecretsFile string // embedded secret values (--secrets)
	Getenv      func(string) string
	Log         *slog.Logger
	// Visibility is the embedded queues' visibility timeout; consumers extend it while they work.
	Visibility    time.Duration
	SweepInterval time.Duration
	WebhookSecret []byte
	Insecure      bool
	GitBaseURL    string
	// GitHubToken, when set, also clones the code of runs that GitHub events start (their jobs
	// come from the repository's own .iac-ci.yml and carry no git_token_location).
	GitHubToken string
	// PublicURL is where people and GitHub reach this server (links in comments, done_endpt);
	// the listening address when empty.
	PublicURL string
	GitHub    producers.EventSource
	Watchers  []engine.Watcher
	Finishers []engine.Finisher
	// Runners run beside the consumers, from Start until its ctx ends (the pull-request
	// reporter's publishing loop); each gets the open system, whose store and URL it may need.
	Runners []func(ctx context.Context, s *System)
	// AllowEnv names the variables that env: secret locations may read on jobs that arrive
	// over HTTP (producers.Accepter.AllowEnv).
	AllowEnv []string
}

// System is one embedded iac-ci: its ports on SQLite and a folder, the engine, the producers
// and every consumer, in one process.
type System struct {
	Opts     Options
	Engine   *engine.Engine
	Accepter *producers.Accepter
	Intake   *producers.Intake
	Server   *producers.Server
	BaseURL  string

	listener net.Listener
	lock     *os.File
	closers  []func() error
	wg       sync.WaitGroup
}

// The databases of a data folder.
const (
	StoreDB  = "iac-ci.db" // runs, orders and their history
	QueuesDB = "queues.db" // queue messages, and objects small enough to be rows
)

// ErrDataInUse: another iac-ci process has the data folder.
var ErrDataInUse = errors.New("data folder in use by another iac-ci process")

// OpenEmbedded opens (creating if needed) an embedded system on a data folder. Only one process
// may hold a data folder: everything in flight in it belongs to that process, so on open the
// messages a previous, dead process had received are made visible again at once.
func OpenEmbedded(ctx context.Context, o Options) (*System, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Visibility <= 0 {
		o.Visibility = 15 * time.Second
	}
	sandbox.Default.LogTo(o.Log) // says once how orders are confined
	if o.SweepInterval <= 0 {
		o.SweepInterval = 2 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	s := &System{Opts: o}
	lock, err := os.OpenFile(filepath.Join(o.DataDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%s: %w", o.DataDir, ErrDataInUse)
	}
	s.lock = lock
	s.closers = append(s.closers, lock.Close)
	fail := func(err error) (*System, error) { s.Close(); return nil, err }

	// Two databases, each with its own connection and its own writer: the store's (runs,
	// orders, events), and the queues' with the objects small enough to be rows (kept together,
	// so that a result's row and its notification are one transaction). Their writes then go on
	// side by side; in one database they waited for each other, about a twentieth of a fan-out's
	// time. No transaction spans the two, as none spans DynamoDB and SQS.
	openDB := sqlitedb.Open
	if o.Temporary {
		openDB = sqlitedb.OpenTemporary
	}
	db, err := openDB(filepath.Join(o.DataDir, QueuesDB))
	if err != nil {
		return fail(err)
	}
	s.closers = append(s.closers, db.Close)
	if !o.Temporary {
		// A data folder of an earlier version kept the queues and the rows of objects in
		// iac-ci.db too: they move here, so that no queued message or stored bundle is lost.
		n, err := sqlitedb.MoveTables(ctx, db, filepath.Join(o.DataDir, StoreDB), sqlitequeue.Table, folderblobs.Table)
		if err != nil {
			return fail(err)
		}
		if n > 0 {
			o.Log.InfoContext(ctx, "moved queued messages and stored objects to "+QueuesDB, "rows", n)
		}
	}
	stateDB, err := openDB(filepath.Join(o.DataDir, StoreDB))
	if err != nil {
		return fail(err)
	}
	s.closers = append(s.closers, stateDB.Close)
	specs := queues.Topology()
	for i := range specs {
		specs[i].Visibility = o.Visibility
	}
	broker, err := sqlitequeue.Open(db, specs)
	if err != nil {
		return fail(err)
	}
	if n, err := broker.ReleaseInFlight(ctx); err != nil {
		return fail(err)
	} else if n > 0 {
		o.Log.InfoContext(ctx, "released messages a previous process held", "messages", n)
	}
	st, err := sqlitestore.Open(stateDB)
	if err != nil {
		return fail(err)
	}
	keys, err := localsecrets.NewKeys(filepath.Join(o.DataDir, "keys"))
	if err != nil {
		return fail(err)
	}
	var src secrets.Source
	if src, err = localsecrets.LoadSource(o.SecretsFile); err != nil {
		return fail(err)
	}

	s.listener, err = net.Listen("tcp", o.Addr)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", o.Addr, err))
	}
	s.BaseURL = "http://" + s.listener.Addr().String()
	results, err := broker.Queue(queues.Results)
	if err != nil {
		return fail(err)
	}
	notify := func(ctx context.Context, body []byte) error {
		return results.Send(ctx, queues.Outgoing{Body: body})
	}
	// A result small enough to be a row is notified of in the transaction that stores it.
	notifyInTx := func(ctx context.Context, tx *sql.Tx, body []byte) (func(), error) {
		return broker.SendInTx(ctx, tx, queues.Results, queues.Outgoing{Body: body})
	}
	baseURL := func() string { return s.BaseURL }
	internal, err := folderblobs.New(filepath.Join(o.DataDir, "blobs"), "internal",
		folderblobs.Options{BaseURL: baseURL, Notify: notify, NotifyInTx: notifyInTx, Inline: db})
	if err != nil {
		return fail(err)
	}
	done, err := folderblobs.New(filepath.Join(o.DataDir, "blobs"), "done", folderblobs.Options{BaseURL: baseURL, Inline: db})
	if err != nil {
		return fail(err)
	}
	doneURL := func(runID string) string { return s.PublicBaseURL() + "/done/" + runID }

	s.Engine = &engine.Engine{
		Store: st, Queues: broker, Blobs: internal, Done: done, Keys: keys, Log: o.Log,
		Watchers: o.Watchers, Finishers: o.Finishers, DoneURL: doneURL,
		// Embedded, the sweeper's repairs come soon: a lost message here means a crash, and the
		// process that restarts after it should not wait minutes.
		RequeueAfter: 4 * o.Visibility, WaitRecheck: 4 * o.Visibility, Grace: 10 * time.Second,
	}
	s.Accepter = &producers.Accepter{Blobs: internal, Queues: broker, DoneURL: doneURL, Embedded: true, AllowEnv: o.AllowEnv}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	s.Intake = &producers.Intake{Engine: s.Engine, Secrets: src, Getenv: getenv, GitBaseURL: o.GitBaseURL, GitHubToken: o.GitHubToken,
		WorkDir: filepath.Join(o.DataDir, "work")}
	if err := os.MkdirAll(s.Intake.WorkDir, 0o700); err != nil {
		return fail(err)
	}
	s.Server = &producers.Server{Accepter: s.Accepter, Store: st, Done: done, Secret: o.WebhookSecret,
		Insecure: o.Insecure, GitHub: o.GitHub, Log: o.Log,
		Extra: map[string]http.Handler{"/blobs/": folderblobs.Handler(internal, done)}}
	return s, nil
}

// PublicBaseURL is where people reach this server: Options.PublicURL, or the listening address.
func (s *System) PublicBaseURL() string {
	if s.Opts.PublicURL != "" {
		return strings.TrimRight(s.Opts.PublicURL, "/")
	}
	return s.BaseURL
}

// openerKeys bounds the data keys (and identities) the workers' Opener keeps: one per run, or
// per order with a sops_key, in flight.
const openerKeys = 1024

// Start serves HTTP and runs every consumer until ctx ends; Wait waits for them.
func (s *System) Start(ctx context.Context) error {
	e := s.Engine
	for _, run := range s.Opts.Runners {
		s.go_(func() { run(ctx, s) })
	}
	srv := &http.Server{Handler: s.Server.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.go_(func() {
		if err := srv.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Opts.Log.Error("http server", "err", err)
		}
	})
	s.go_(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	q := func(name string) queues.Queue {
		qq, err := e.Queues.Queue(name)
		if err != nil {
			panic(err) // every name comes from queues.Topology
		}
		return qq
	}
	intakeQ := q(queues.Intake)
	for range 2 {
		s.go_(func() { _ = consumers.Consume(ctx, intakeQ, 1, e.Logger(), s.Intake.Handle) })
	}
	s.go_(func() {
		_ = consumers.Consume(ctx, q(queues.Intake+queues.DeadLetterSuffix), queues.MaxBatch, e.Logger(),
			(&producers.IntakeDeadLetters{Intake: s.Intake}).Handle)
	})
	orch := &consumers.Orchestrator{Engine: e, Queue: q(queues.Results)}
	for range 2 {
		s.go_(func() { _ = orch.Run(ctx) })
	}
	workRoot := filepath.Join(s.Opts.DataDir, "work")
	// One Opener for every worker: the orders of a run share a data key, unwrapped once.
	opener := sealing.NewOpener(openerKeys)
	// One set of working directories for every worker; those orders leave empty are kept for
	// the next orders, as many as orders run at once.
	dirs := &consumers.WorkDirs{Root: workRoot, Keep: s.Opts.Workers * len(domain.Targets)}
	s.closers = append(s.closers, dirs.Close)
	for _, t := range domain.Targets {
		for range s.Opts.Workers {
			// The workers run beside the orchestrator: each hands its results to it in this
			// process, rather than storing result.json for the results queue to carry back here.
			w := &consumers.Worker{Engine: e, Queue: q(queues.Orders(string(t))), Visibility: s.Opts.Visibility,
				WorkRoot: workRoot, BaseEnv: consumers.LocalEnv(), Opener: opener, Recorder: orch, Dirs: dirs,
				Hide: []string{s.Opts.DataDir, s.Opts.SecretsFile}}
			s.go_(func() { _ = w.Run(ctx) })
		}
		dl := &consumers.DeadLetters{Engine: e, Queue: q(queues.Orders(string(t)) + queues.DeadLetterSuffix),
			MaxReceives: queues.MaxReceivesDefault}
		s.go_(func() { _ = dl.Run(ctx) })
	}
	sw := &consumers.Sweeper{Engine: e, Orchestrator: orch, Interval: s.Opts.SweepInterval}
	s.go_(func() { _ = sw.Run(ctx) })
	return nil
}

func (s *System) go_(f func()) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
}

// Wait waits for everything Start started (after its ctx ends).
func (s *System) Wait() { s.wg.Wait() }

// Close releases the data folder. Call it after Wait.
func (s *System) Close() error {
	var first error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	s.closers = nil
	return first
}

var _ blobs.Bucket = (*folderblobs.Bucket)(nil)
