package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/embedded"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/sandbox"
)

// Options configure a host: what `iac-ci run` and `iac-ci serve` read from their flags.
type Options struct {
	DataDir string
	// Temporary says the data folder is deleted when the process ends (iac-ci run without
	// --data).
	Temporary   bool
	Addr        string // where the HTTP server listens; "127.0.0.1:0" picks a free port
	Workers     int    // concurrent orders per execution target run here
	SecretsFile string // embedded secret values (--secrets)
	Getenv      func(string) string
	Log         *slog.Logger
	// Visibility is the embedded queues' visibility timeout; consumers extend it while they work.
	Visibility    time.Duration
	SweepInterval time.Duration
	WebhookSecret []byte
	Insecure      bool
	APIToken      []byte // guards the read and control routes (producers.Server.APIToken)
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
	Runners   []func(ctx context.Context, s *assembly.System)
	// Retention is how long a data folder keeps a run after it ended (0 keeps every run).
	Retention time.Duration
	// AllowEnv names the variables that env: secret locations may read on jobs that arrive
	// over HTTP (producers.Accepter.AllowEnv).
	AllowEnv []string
	// baseEnv and hide are what orders start from and must not reach (assembly.Options).
	baseEnv, hide []string
	// routes are the host's own HTTP routes (serve --debug-aws-calls).
	routes map[string]http.Handler
}

// host is iac-ci assembled on one backend and served in this process: the HTTP server on its
// listener, every route's consumer loop, the sweeper.
type host struct {
	*assembly.System
	BaseURL  string // where the listener is reached
	listener net.Listener
	closers  []func() error
}

// listen opens o.Addr and makes the host that will serve on it.
func listen(o Options) (*host, error) {
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	return &host{BaseURL: "http://" + l.Addr().String(), listener: l, closers: []func() error{l.Close}}, nil
}

// publicURL is where people reach the host: Options.PublicURL, or the listening address.
func (h *host) publicURL(o Options) func() string {
	return func() string {
		if o.PublicURL != "" {
			return strings.TrimRight(o.PublicURL, "/")
		}
		return h.BaseURL
	}
}

// assemble builds the system on ports, with what the options say of the host.
func (h *host) assemble(p assembly.Ports, o Options, scratch string, inProcess bool) error {
	sys, err := assembly.New(p, assembly.Options{
		Log: o.Log, PublicURL: h.publicURL(o), WebhookSecret: o.WebhookSecret, Insecure: o.Insecure, APIToken: o.APIToken,
		GitHub: o.GitHub, GitBaseURL: o.GitBaseURL, GitHubToken: o.GitHubToken,
		Watchers: o.Watchers, Finishers: o.Finishers, Runners: o.Runners,
		ScratchDir: scratch, Workers: o.Workers, ResultsInProcess: inProcess, SweepInterval: o.SweepInterval,
		BaseEnv: o.baseEnv, Hide: o.hide, AllowEnv: o.AllowEnv,
		Routes: o.routes,
	})
	if err != nil {
		return err
	}
	h.System = sys
	h.closers = append(h.closers, sys.Close)
	return nil
}

// openEmbedded opens (creating if needed) iac-ci on a data folder, ready to Start.
func openEmbedded(ctx context.Context, o Options) (*host, error) {
	if o.SweepInterval <= 0 {
		o.SweepInterval = 2 * time.Second
	}
	var h *host
	b, err := embedded.Open(ctx, embedded.Options{DataDir: o.DataDir, Temporary: o.Temporary, SecretsFile: o.SecretsFile,
		Getenv: o.Getenv, Visibility: o.Visibility, Log: o.Log, BaseURL: func() string { return h.BaseURL }})
	if err != nil {
		return nil, err
	}
	if h, err = listen(o); err != nil {
		b.Close()
		return nil, err
	}
	h.closers = append([]func() error{b.Close}, h.closers...)
	if o.Retention > 0 {
		o.Runners = append(o.Runners, func(ctx context.Context, s *assembly.System) { prune(ctx, b, o.Retention, o.Log) })
	}
	// Orders reach neither the data folder nor the secrets file (package sandbox).
	sandbox.Default.LogTo(o.Log) // says once how orders are confined
	o.baseEnv, o.hide = consumers.LocalEnv(), []string{o.DataDir, o.SecretsFile}
	// The workers run beside the orchestrator: each hands its results to it in this process,
	// rather than storing result.json for the results queue to carry back here.
	if err := h.assemble(b.Ports, o, b.ScratchDir, true); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// Start serves HTTP and runs every consumer until ctx ends; Wait waits for them.
func (h *host) Start(ctx context.Context) error { return h.System.Start(ctx, h.listener) }

// Close releases the backend (the data folder). Call it after Wait.
func (h *host) Close() error {
	var first error
	for i := len(h.closers) - 1; i >= 0; i-- {
		if err := h.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	h.closers = nil
	return first
}

// pruneEvery is how often a server removes the runs past the data folder's retention.
const pruneEvery = time.Hour

// prune removes the runs that ended more than retention ago, at start and then every
// pruneEvery, until ctx ends.
func prune(ctx context.Context, b *embedded.Backend, retention time.Duration, log *slog.Logger) {
	for {
		n, err := b.Prune(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "prune ended runs", "err", err)
		case n > 0:
			log.InfoContext(ctx, "pruned ended runs", "runs", n, "older_than", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pruneEvery):
		}
	}
}
