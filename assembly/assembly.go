package assembly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/deadletters"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/livelog"
	"github.com/iac-ci/iac-ci/metrics"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/sealing"
)

// Options are what a host says of itself; the ports say the rest.
type Options struct {
	Log *slog.Logger
	// PublicURL is where people and GitHub reach the HTTP server: the base of done links and of
	// links in comments. Nil or empty leaves runs without a done endpoint. It is read when a run
	// is accepted, so it may change after New (a host that listens on a free port learns its
	// address later).
	PublicURL func() string

	// WebhookSecret signs webhook bodies; Insecure accepts unsigned ones and, without an
	// APIToken, answers reads to anyone.
	WebhookSecret []byte
	Insecure      bool
	// APIToken guards every read and control route (Authorization: Bearer <token>, or a signed
	// link to one run); GuardedUpstream says something in front (API Gateway's IAM auth) already
	// authenticates them (producers.Server).
	APIToken        []byte
	GuardedUpstream bool
	// GitHub turns pull-request events into jobs; nil answers them 501.
	GitHub producers.EventSource
	// GitBaseURL is where git_repo is cloned from; GitHubToken clones the code of runs that
	// GitHub events start.
	GitBaseURL, GitHubToken string

	Watchers  []engine.Watcher
	Finishers []engine.Finisher

	// ScratchDir holds intake's scratch space (ScratchDir/intake) and the orders' working
	// directories (ScratchDir/orders). Required.
	ScratchDir string
	// Workers is how many orders of each target that runs in this process run at once.
	Workers int
	// ResultsInProcess makes the workers hand their results to the orchestrator of this
	// process instead of PUTting result.json for the results queue to carry (embedded, where
	// both run in one process and the round trip is pure cost).
	ResultsInProcess bool
	// BaseEnv is the environment orders start from; nil is consumers.LocalEnv(). AWS
	// credentials in it are left out (consumers.WithoutCredentials).
	BaseEnv []string
	// Hide names folders and files of this process that orders' commands must not reach (the
	// data folder, the secrets file): see package sandbox.
	Hide []string
	// AllowEnv names the variables env: secret locations may read on jobs that arrive over HTTP
	// (producers.Accepter.AllowEnv).
	AllowEnv []string
	// SweepInterval is how often Serve sweeps; zero is a minute.
	SweepInterval time.Duration
	// Routes are read routes of the host's own (a debugging endpoint), guarded as every read
	// route is; may be nil.
	Routes map[string]http.Handler
	// Runners run beside the consumers, from Start until its ctx ends (the pull-request
	// reporter's publishing loop); each gets the system, whose store and URL it may need.
	Runners []func(ctx context.Context, s *System)
}

// System is iac-ci assembled on one set of ports.
type System struct {
	Ports        Ports
	Opts         Options
	Engine       *engine.Engine
	Accepter     *producers.Accepter
	Intake       *producers.Intake
	Server       *producers.Server
	Orchestrator *consumers.Orchestrator
	Sweeper      *consumers.Sweeper
	// BuildEvents ends the orders of CodeBuild builds that died without their result.
	BuildEvents *consumers.BuildEvents
	// DeadLetters keeps every dead letter, with the last error that killed it; Control is what
	// operators do to them and to runs.
	DeadLetters *deadletters.Book
	Control     *producers.Control
	// LiveLogs holds the output of the attempts running in this process.
	LiveLogs *livelog.Logs
	// Metrics are the figures GET /metrics serves (and Lambda hosts write as EMF lines).
	Metrics *metrics.Metrics
	// Routes says which handler consumes which queue (routes.go).
	Routes []Route

	workDirs *consumers.WorkDirs
	workers  []*consumers.Worker
	wg       sync.WaitGroup
	flush    []func()
}

// openerKeys bounds the data keys (and identities) the workers' Opener keeps: one per run, or
// per order with a sops_key, in flight.
const openerKeys = 1024

// New assembles iac-ci on p. It makes no call to the ports, and only makes the scratch folders.
func New(p Ports, o Options) (*System, error) {
	if p.Store == nil || p.Queues == nil || p.Internal == nil || p.Done == nil || p.Keys == nil {
		return nil, errors.New("assembly: the store, queues, buckets and keys are all needed")
	}
	if o.ScratchDir == "" {
		return nil, errors.New("assembly: no scratch folder")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	intakeDir, ordersDir := filepath.Join(o.ScratchDir, "intake"), filepath.Join(o.ScratchDir, "orders")
	for _, dir := range []string{intakeDir, ordersDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("scratch folder: %w", err)
		}
	}
	var doneURL func(string) string
	if o.PublicURL != nil {
		doneURL = func(runID string) string {
			base := o.PublicURL()
			if base == "" {
				return ""
			}
			return base + "/done/" + url.PathEscape(runID)
		}
	}
	s := &System{Ports: p, Opts: o}
	var queueNames []string
	for _, spec := range queues.Topology() {
		queueNames = append(queueNames, spec.Name)
	}
	s.Metrics = metrics.New(metrics.Options{Queues: p.Queues, QueueNames: queueNames, Store: p.Store, Log: o.Log})
	s.Engine = &engine.Engine{
		Store: p.Store, Queues: p.Queues, Blobs: p.Internal, Done: p.Done, Keys: p.Keys, Log: o.Log,
		Watchers: o.Watchers, Finishers: o.Finishers, Observers: []engine.Observer{s.Metrics}, DoneURL: doneURL,
		RequeueAfter: p.RequeueAfter, WaitRecheck: p.WaitRecheck, Grace: p.Grace,
	}
	s.Accepter = &producers.Accepter{Blobs: p.Internal, Queues: p.Queues, DoneURL: doneURL, Embedded: p.Embedded, AllowEnv: o.AllowEnv}
	s.Intake = &producers.Intake{Engine: s.Engine, Secrets: p.Secrets, Getenv: p.Getenv, GetObject: p.GetObject,
		GitBaseURL: o.GitBaseURL, GitHubToken: o.GitHubToken, WorkDir: intakeDir}
	s.Server = &producers.Server{Accepter: s.Accepter, Store: p.Store, Done: p.Done, Secret: o.WebhookSecret,
		Insecure: o.Insecure, APIToken: o.APIToken, GuardedUpstream: o.GuardedUpstream, GitHub: o.GitHub, Log: o.Log,
		Health: p.Health, Extra: p.Routes, Reads: o.Routes, Observer: s.Metrics, Metrics: s.Metrics.Handler(),
		GitHubWebURL: o.GitBaseURL} // a GitHub Enterprise server serves its pull requests where it serves clones
	s.Orchestrator = &consumers.Orchestrator{Engine: s.Engine}
	s.DeadLetters = &deadletters.Book{Bucket: p.Internal, Now: s.Engine.Time}
	s.LiveLogs = &livelog.Logs{}
	s.Control = &producers.Control{Engine: s.Engine, Accepter: s.Accepter, DeadLetters: s.DeadLetters, Live: s.LiveLogs}
	s.Server.Control = s.Control
	s.BuildEvents = &consumers.BuildEvents{Engine: s.Engine}
	s.Sweeper = &consumers.Sweeper{Engine: s.Engine, Orchestrator: s.Orchestrator, Interval: o.SweepInterval, Observer: s.Metrics}

	// One set of working directories for every worker; those orders leave empty are kept for
	// the next orders, as many as orders run at once.
	local := 0
	for _, t := range domain.Targets {
		if p.Starters[t] == nil {
			local++
		}
	}
	s.workDirs = &consumers.WorkDirs{Root: ordersDir, Keep: o.Workers * local}
	s.Routes = s.routes()
	return s, nil
}

// worker is the consumer that runs orders of a target in this process. One Opener serves every
// worker: the orders of a run share a data key, unwrapped once.
func (s *System) worker(opener *sealing.Opener) *consumers.Worker {
	base := s.Opts.BaseEnv
	if base == nil {
		base = consumers.LocalEnv()
	}
	w := &consumers.Worker{Engine: s.Engine, WorkRoot: s.workDirs.Root, Dirs: s.workDirs,
		BaseEnv: consumers.WithoutCredentials(base), HTTPClient: s.Ports.HTTPClient, Opener: opener,
		Credentials: s.Ports.OrderCredentials, Live: s.LiveLogs, LiveFlush: s.Ports.LiveLogFlush, Hide: s.Opts.Hide}
	s.workers = append(s.workers, w)
	if s.Opts.ResultsInProcess {
		w.Recorder = s.Orchestrator
	}
	return w
}

// PublicURL is where people reach the HTTP server (Options.PublicURL), "" when unknown.
func (s *System) PublicURL() string {
	if s.Opts.PublicURL == nil {
		return ""
	}
	return s.Opts.PublicURL()
}

// Close releases what the system holds beside its ports: the workers' sandbox sessions and the
// kept working directories. Call it after Wait.
func (s *System) Close() error {
	for _, w := range s.workers {
		_ = w.Close()
	}
	return s.workDirs.Close()
}
