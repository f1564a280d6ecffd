package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/sealing"
)

// envAWSSerialize is the default of serve's --aws-serialize.
const envAWSSerialize = "IAC_CI_AWS_SERIALIZE"

// awsServeFlags are the flags of `iac-ci serve` that only the aws backend reads.
type awsServeFlags struct {
	serialize     *bool
	debugCalls    *bool
	sweepInterval *time.Duration
	getenv        Env
}

func addAWSServeFlags(fs *flag.FlagSet, getenv Env) *awsServeFlags {
	return &awsServeFlags{
		serialize: fs.Bool("aws-serialize", false, "aws: allow only one AWS HTTP request in flight at a time, and poll "+
			"queues with short receives instead of long polls; for emulators that are not safe under concurrent "+
			"requests, such as moto_server (default $"+envAWSSerialize+")"),
		debugCalls: fs.Bool("debug-aws-calls", false, "aws: serve GET /debug/aws-calls, the AWS calls this process "+
			"made so far by service and operation (for the benchmark)"),
		sweepInterval: fs.Duration("sweep-interval", time.Minute, "aws: how often the sweeper repairs what crashes "+
			"and lost messages left (EventBridge Scheduler runs it every minute in a deployment)"),
		getenv: getenv,
	}
}

// serveAWS runs the engine against the AWS resources the IAC_CI_* variables name: the same
// producers and consumers as embedded, as long-poll loops in this process. Lambda orders run
// here, as the worker function would run them; codebuild and ssm orders are launched as
// CodeBuild builds and SSM commands. Results travel the AWS way: a worker PUTs result.json to a
// presigned URL, S3 notifies the results queue, the orchestrator reads it.
func serveAWS(ctx context.Context, o Options, f *awsServeFlags, getenv Env, stdout io.Writer) error {
	serialize := *f.serialize
	if v := getenv(envAWSSerialize); v != "" && !serialize {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return usagef("%s=%q: want true or false", envAWSSerialize, v)
		}
		serialize = b
	}
	if *f.sweepInterval <= 0 {
		return usagef("--sweep-interval must be positive, not %s", *f.sweepInterval)
	}
	cfg, err := awsbackend.FromEnv(getenv)
	if err != nil {
		return err
	}
	awsCfg, err := awsbackend.LoadAWS(ctx)
	if err != nil {
		return err
	}
	calls := &awsbackend.Calls{}
	clients := awsbackend.NewClients(awsCfg, cfg, awsbackend.ClientOptions{Serialize: serialize, Calls: calls})
	b, err := awsbackend.Open(cfg, clients, serialize, calls)
	if err != nil {
		return err
	}
	checkCtx, cancelCheck := context.WithTimeout(ctx, time.Minute)
	err = b.Check(checkCtx)
	cancelCheck()
	if err != nil {
		return err
	}
	workDir := filepath.Join(o.DataDir, "work")
	for _, dir := range []string{filepath.Join(workDir, "intake"), filepath.Join(workDir, "orders")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("scratch folder (--data): %w", err)
		}
	}
	listener, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	s := &System{Opts: o, BaseURL: "http://" + listener.Addr().String(), listener: listener}
	doneURL := func(runID string) string { return s.PublicBaseURL() + "/done/" + url.PathEscape(runID) }
	e := b.Engine(o.Log, doneURL)
	e.Watchers, e.Finishers = o.Watchers, o.Finishers
	s.Engine = e
	s.Accepter = b.Accepter(doneURL)
	s.Intake = b.Intake(e, o.GitBaseURL, filepath.Join(workDir, "intake"))
	extra := map[string]http.Handler{}
	if *f.debugCalls {
		extra["GET /debug/aws-calls"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(calls.Report())
		})
	}
	s.Server = &producers.Server{Accepter: s.Accepter, Store: b.Store, Done: b.Done, Secret: o.WebhookSecret,
		Insecure: o.Insecure, APIToken: o.APIToken, GitHub: o.GitHub, Log: o.Log, Reads: extra}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	flush, err := startAWS(ctx, s, b, *f.sweepInterval, filepath.Join(workDir, "orders"))
	if err != nil {
		listener.Close()
		return err
	}
	where := "region " + awsCfg.Region
	if cfg.Endpoint != "" {
		where += ", endpoint " + cfg.Endpoint
	}
	o.Log.Info("iac-ci serving", "url", s.BaseURL, "backend", "aws", "region", awsCfg.Region, "endpoint", cfg.Endpoint,
		"prefix", cfg.Prefix, "serialize", serialize, "version", Version)
	fmt.Fprintf(stdout, "iac-ci serving on %s (aws: %s, resources prefixed %s)\n", s.BaseURL, where, cfg.Prefix)
	<-ctx.Done()
	s.Wait()
	flush()
	r := calls.Report()
	o.Log.Info("aws calls made", "total", r.Total, "empty_receives", r.EmptyReceives)
	return nil
}

// startAWS serves HTTP and starts every consumer of the aws backend until ctx ends.
// The returned flush deletes the messages handled last; call it once the consumers stopped.
func startAWS(ctx context.Context, s *System, b *awsbackend.Backend, sweepEvery time.Duration, orderRoot string) (flush func(), err error) {
	e := s.Engine
	log := e.Logger()
	visibility := map[string]time.Duration{}
	for _, spec := range queues.Topology() {
		visibility[spec.Name] = spec.Visibility
	}
	// Check resolved every queue already; this makes no call. Nothing has started on an error.
	open := map[string]queues.Queue{}
	for name := range visibility {
		q, err := e.Queues.Queue(name)
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", name, err)
		}
		open[name] = q
	}

	for _, run := range s.Opts.Runners {
		s.go_(func() { run(ctx, s) })
	}
	srv := &http.Server{Handler: s.Server.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.go_(func() {
		if err := srv.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	})
	s.go_(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})

	// Each queue's consumers share a deleter: handled messages are deleted ten to a request.
	deleters := map[string]*awsbackend.Deleter{}
	consumer := func(name string, batch int) *awsbackend.Consumer {
		d := deleters[name]
		if d == nil {
			d = awsbackend.NewDeleter(open[name], log)
			deleters[name] = d
		}
		return &awsbackend.Consumer{Queue: open[name], Batch: batch, Deleter: d, Log: log}
	}
	consume := func(name string, batch int, h consumers.Handler) {
		c := consumer(name, batch)
		s.go_(func() { c.Run(ctx, h) })
	}
	// Intake of a large job can outlast the queue's visibility timeout: keep its message hidden.
	for range 2 {
		c := consumer(queues.Intake, 1)
		c.KeepHidden = visibility[queues.Intake]
		s.go_(func() { c.Run(ctx, s.Intake.Handle) })
	}
	consume(queues.Intake+queues.DeadLetterSuffix, queues.MaxBatch, (&producers.IntakeDeadLetters{Intake: s.Intake}).Handle)
	orch := &consumers.Orchestrator{Engine: e, Queue: open[queues.Results]}
	for range 2 {
		consume(queues.Results, queues.MaxBatch, orch.Handle)
	}

	// Lambda orders run in this process, as the worker function runs them.
	lambdaQ := queues.Orders(string(domain.TargetLambda))
	// One receive feeds every idle worker, as a Lambda event source mapping hands the function
	// batches.
	w := &consumers.Worker{Engine: e, Queue: open[lambdaQ], Visibility: visibility[lambdaQ],
		WorkRoot: orderRoot, BaseEnv: consumers.WorkerEnv(), HTTPClient: b.Clients.HTTP, Opener: sealing.NewOpener(openerKeys)}
	workers := consumer(lambdaQ, queues.MaxBatch)
	workers.Handlers = max(s.Opts.Workers, 1)
	s.go_(func() { workers.Run(ctx, w.Handle) })
	// CodeBuild and SSM orders are launched there; the worker at the target delivers the result.
	codebuildQ, ssmQ := queues.Orders(string(domain.TargetCodeBuild)), queues.Orders(string(domain.TargetSSM))
	consume(codebuildQ, queues.MaxBatch, (&consumers.Launcher{Engine: e, Queue: open[codebuildQ],
		RunKeyParameter: b.Keys.ParameterName,
		Starter:         &awslaunch.CodeBuild{Client: b.Clients.CodeBuild, Project: b.Config.CodeBuildProject}}).Handle)
	consume(ssmQ, queues.MaxBatch, (&consumers.Launcher{Engine: e, Queue: open[ssmQ],
		RunKeyParameter: b.Keys.ParameterName, DefaultDocument: b.Config.SSMDocument,
		Starter: &awslaunch.SSM{Client: b.Clients.SSM}}).Handle)
	for _, t := range domain.Targets {
		name := queues.Orders(string(t)) + queues.DeadLetterSuffix
		dl := &consumers.DeadLetters{Engine: e, Queue: open[name], MaxReceives: queues.MaxReceivesDefault}
		consume(name, queues.MaxBatch, dl.Handle)
	}
	sw := &consumers.Sweeper{Engine: e, Orchestrator: orch, Interval: sweepEvery}
	s.go_(func() { _ = sw.Run(ctx) })
	return func() {
		for _, d := range deleters {
			d.Flush()
		}
	}, nil
}

// awsSetupCommand is `iac-ci aws-setup`: it creates every AWS resource iac-ci uses, or with
// --print describes them as JSON.
func awsSetupCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aws-setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	printOnly := fs.Bool("print", false, "print every resource's name and settings as JSON and create nothing (needs no AWS access)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: iac-ci aws-setup [--print]

Creates the AWS resources iac-ci uses, or brings existing ones in line: the SQS queues with their
dead-letter queues, the DynamoDB tables with their indexes and TTL, and the S3 buckets with the
result notification. Running it again changes nothing. Point it at an emulator with
AWS_ENDPOINT_URL (for example AWS_ENDPOINT_URL=http://127.0.0.1:5000 with moto_server).

Names derive from IAC_CI_PREFIX (default iac-ci); each can be set on its own:
  IAC_CI_QUEUE_PREFIX, IAC_CI_ORDERS_TABLE, IAC_CI_EVENTS_TABLE, IAC_CI_INTERNAL_BUCKET,
  IAC_CI_DONE_BUCKET, IAC_CI_RUN_KEY_PREFIX, IAC_CI_CODEBUILD_PROJECT, IAC_CI_SSM_DOCUMENT,
  IAC_CI_S3_PATH_STYLE. The region is AWS_REGION; credentials are the SDK's usual ones.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("aws-setup takes no arguments, got %q", strings.Join(fs.Args(), " "))
	}
	cfg, err := awsbackend.FromEnv(getenv)
	if err != nil {
		return err
	}
	if *printOnly {
		_, err := stdout.Write(awsbackend.Describe(cfg).JSON())
		return err
	}
	awsCfg, err := awsbackend.LoadAWS(ctx)
	if err != nil {
		return err
	}
	clients := awsbackend.NewClients(awsCfg, cfg, awsbackend.ClientOptions{})
	if err := awsbackend.Setup(ctx, clients, cfg, stdout); err != nil {
		return fmt.Errorf("aws-setup: %w", err)
	}
	where := "region " + awsCfg.Region
	if cfg.Endpoint != "" {
		where += " at " + cfg.Endpoint
	}
	fmt.Fprintf(stdout, "iac-ci aws-setup: every resource is ready (%s)\n", where)
	return nil
}
