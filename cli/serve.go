package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/embedded"
)

// serveCommand is `iac-ci serve`: the producers, the status endpoints and every consumer in one
// process, until interrupted.
func serveCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	dataDir := fs.String("data", "./.iac-ci", "data folder (embedded backend)")
	workers := workersFlag(fs)
	secret := fs.String("webhook-secret", "", "secret that signs webhook bodies (default $IAC_CI_WEBHOOK_SECRET)")
	insecure := fs.Bool("insecure-skip-signature", false, "accept unsigned webhook bodies, and without an API token answer reads unauthenticated (local experiments only)")
	apiToken := fs.String("api-token", "", "token every read and control route asks for as Authorization: Bearer <token> (default $IAC_CI_API_TOKEN, which keeps it out of the process list)")
	secretsFile := fs.String("secrets", "", "JSON file of secret values by Parameter Store path or Secrets Manager name (mode 0600)")
	logFormat := logFormatFlag(fs)
	logLevel := logLevelFlag(fs, "info")
	backend := choiceFlag(fs, "backend", "embedded", "where state and queues live: SQLite and a folder, or AWS", "embedded", "aws")
	visibility := fs.Duration("visibility", 15*time.Second, "embedded: how long a received message stays hidden; consumers extend it while they work, so it bounds how soon a dead consumer's work is retried")
	retention := fs.Duration("retention", embedded.DefaultRetention, "embedded: how long the data folder keeps a run after it ended, its history, logs and objects included (0 keeps every run)")
	allowEnv := fs.String("allow-env", "", "comma-separated variables of this process's environment that jobs arriving over HTTP may name as env:NAME secret locations (default: none)")
	publicURL := fs.String("public-url", "", "where people and GitHub reach this server, for links in comments and done_endpt (default: the listening address)")
	gh := addGitHubFlags(fs, getenv)
	awsFlags := addAWSServeFlags(fs, getenv)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: iac-ci serve [flags]\n\nServes POST /webhook, POST /ssm, GET /runs (the runs; a page for a browser),\nGET /runs/{run_id} (a run; its status page for a browser), GET /runs/{run_id}/events,\nGET /runs/{run_id}/orders/{order}/log, GET /done/{run_id}, GET /dead-letters, GET /metrics\nand GET /healthz, and runs every job it accepts. Every route but the signed posts and\n/healthz asks for Authorization: Bearer <API token>, or a signed link to one run (the\nstatus link of a pull-request comment).\n\n"+
			"Example:\n  IAC_CI_WEBHOOK_SECRET=$(openssl rand -hex 32) IAC_CI_API_TOKEN=$(openssl rand -hex 32) iac-ci serve --addr 127.0.0.1:8080 --data ./.iac-ci\n\nFlags:")
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("serve takes no arguments, got %q", strings.Join(rest, " "))
	}
	if *secret == "" {
		*secret = getenv("IAC_CI_WEBHOOK_SECRET")
	}
	if *secret == "" && !*insecure {
		return usagef("no webhook secret: pass --webhook-secret or set IAC_CI_WEBHOOK_SECRET " +
			"(or --insecure-skip-signature to accept unsigned bodies, for local experiments only)")
	}
	if *apiToken == "" {
		*apiToken = getenv("IAC_CI_API_TOKEN")
	}
	if *apiToken == "" && !*insecure {
		return usagef("no API token: pass --api-token or set IAC_CI_API_TOKEN; GET /runs/{run_id}, /runs/{run_id}/events and " +
			"/done/{run_id} ask for it as Authorization: Bearer <token> " +
			"(or --insecure-skip-signature to answer them to anyone, for local experiments only)")
	}
	log := newLogger(stderr, *logFormat, *logLevel)
	opts := Options{
		DataDir: *dataDir, Addr: *addr, Workers: *workers, SecretsFile: *secretsFile, Getenv: getenv, Log: log,
		WebhookSecret: []byte(*secret), Insecure: *insecure, APIToken: []byte(*apiToken), Visibility: *visibility, PublicURL: *publicURL,
		Retention: *retention, AllowEnv: splitList(*allowEnv),
	}
	if *retention < 0 {
		return usagef("--retention %s: want a duration of 0 (keep every run) or more", *retention)
	}
	if err := gh.apply(&opts, log); err != nil {
		return err
	}
	switch *backend {
	case "embedded":
	case "aws":
		return serveAWS(ctx, opts, awsFlags, getenv, stdout)
	default:
		return usagef("--backend must be embedded or aws, not %q", *backend)
	}
	sys, err := openEmbedded(ctx, opts)
	if err != nil {
		return err
	}
	defer sys.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := sys.Start(ctx); err != nil {
		return err
	}
	log.Info("iac-ci serving", "url", sys.BaseURL, "data", *dataDir, "backend", "embedded", "version", Version)
	fmt.Fprintf(stdout, "iac-ci serving on %s (data in %s)\n", sys.BaseURL, *dataDir)
	<-ctx.Done()
	sys.Wait()
	return nil
}
