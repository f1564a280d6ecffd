package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// serveCommand is `iac-ci serve`: the producers, the status endpoints and every consumer in one
// process, until interrupted.
func serveCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	dataDir := fs.String("data", "./.iac-ci", "data folder (embedded backend)")
	workers := fs.Int("workers", 4, "orders run at once per execution target")
	secret := fs.String("webhook-secret", "", "secret that signs webhook bodies (default $IAC_CI_WEBHOOK_SECRET)")
	insecure := fs.Bool("insecure-skip-signature", false, "accept unsigned webhook bodies (local experiments only)")
	secretsFile := fs.String("secrets", "", "JSON file of secret values by Parameter Store path or Secrets Manager name (mode 0600)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	backend := fs.String("backend", "embedded", "embedded (SQLite and a folder) or aws")
	visibility := fs.Duration("visibility", 15*time.Second, "embedded: how long a received message stays hidden; consumers extend it while they work, so it bounds how soon a dead consumer's work is retried")
	allowEnv := fs.String("allow-env", "", "comma-separated variables of this process's environment that jobs arriving over HTTP may name as env:NAME secret locations (default: none)")
	publicURL := fs.String("public-url", "", "where people and GitHub reach this server, for links in comments and done_endpt (default: the listening address)")
	gh := addGitHubFlags(fs, getenv)
	awsFlags := addAWSServeFlags(fs, getenv)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: iac-ci serve [flags]\n\nServes POST /webhook, POST /ssm, GET /runs/{run_id}, GET /runs/{run_id}/events,\nGET /done/{run_id} and GET /healthz, and runs every job it accepts.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", strings.Join(fs.Args(), " "))
	}
	if *secret == "" {
		*secret = getenv("IAC_CI_WEBHOOK_SECRET")
	}
	if *secret == "" && !*insecure {
		return usagef("no webhook secret: pass --webhook-secret or set IAC_CI_WEBHOOK_SECRET " +
			"(or --insecure-skip-signature to accept unsigned bodies, for local experiments only)")
	}
	log := newLogger(stderr, *logFormat, *logLevel)
	opts := Options{
		DataDir: *dataDir, Addr: *addr, Workers: *workers, SecretsFile: *secretsFile, Getenv: getenv, Log: log,
		WebhookSecret: []byte(*secret), Insecure: *insecure, Visibility: *visibility, PublicURL: *publicURL,
		AllowEnv: splitList(*allowEnv),
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
	sys, err := OpenEmbedded(ctx, opts)
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
