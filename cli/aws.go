package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/sandbox"
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

// serveAWS runs iac-ci against the AWS resources the IAC_CI_* variables name: the same assembly
// as embedded, its routes as long-poll loops in this process. Lambda orders run here, as the
// worker function would run them; codebuild and ssm orders are launched as CodeBuild builds and
// SSM commands. Results travel the AWS way: a worker PUTs result.json to a presigned URL, S3
// notifies the results queue, the orchestrator reads it.
func serveAWS(ctx context.Context, o Options, f *awsServeFlags, getenv Env, stdout io.Writer) error {
	serialize := *f.serialize
	if v := getenv(envAWSSerialize); v != "" && !serialize {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return usagef("%s=%q: want true or false", envAWSSerialize, v)
		}
		serialize = b
	}
	if o.SweepInterval = *f.sweepInterval; o.SweepInterval <= 0 {
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
	h, err := listen(o)
	if err != nil {
		return err
	}
	defer h.Close()
	if *f.debugCalls {
		o.routes = map[string]http.Handler{"GET /debug/aws-calls": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(calls.Report())
		})}
	}
	// Results travel the AWS way, through result.json and the results queue. Lambda orders run
	// here as in the worker function: with the order role's credentials, not this process's.
	sandbox.Default.LogTo(o.Log)
	o.baseEnv, o.hide = consumers.LocalEnv("AWS_REGION", "AWS_DEFAULT_REGION"), []string{o.DataDir}
	if err := h.assemble(b.Ports(), o, filepath.Join(o.DataDir, "work"), false); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		return err
	}
	where := "region " + awsCfg.Region
	if cfg.Endpoint != "" {
		where += ", endpoint " + cfg.Endpoint
	}
	o.Log.Info("iac-ci serving", "url", h.BaseURL, "backend", "aws", "region", awsCfg.Region, "endpoint", cfg.Endpoint,
		"prefix", cfg.Prefix, "serialize", serialize, "version", Version)
	fmt.Fprintf(stdout, "iac-ci serving on %s (aws: %s, resources prefixed %s)\n", h.BaseURL, where, cfg.Prefix)
	<-ctx.Done()
	h.Wait()
	r := calls.Report()
	o.Log.Info("aws calls made", "total", r.Total, "empty_receives", r.EmptyReceives)
	return nil
}

// awsSetupCommand is `iac-ci aws-setup`: it creates every AWS resource iac-ci uses, or with
// --print describes them as JSON.
func awsSetupCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aws-setup", flag.ContinueOnError)
	printOnly := fs.Bool("print", false, "print every resource's name and settings as JSON and create nothing (needs no AWS access)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: iac-ci aws-setup [--print]

Creates the AWS resources iac-ci uses, or brings existing ones in line: the SQS queues with their
dead-letter queues, the DynamoDB tables with their indexes and TTL, and the S3 buckets with the
result notification. Running it again changes nothing. Point it at an emulator with
AWS_ENDPOINT_URL (for example AWS_ENDPOINT_URL=http://127.0.0.1:5000 with moto_server).

Names derive from IAC_CI_PREFIX (default iac-ci); each can be set on its own:
  IAC_CI_QUEUE_PREFIX, IAC_CI_ORDERS_TABLE, IAC_CI_EVENTS_TABLE, IAC_CI_INTERNAL_BUCKET,
  IAC_CI_DONE_BUCKET, IAC_CI_RUN_KEY_PREFIX, IAC_CI_CODEBUILD_PROJECT, IAC_CI_SSM_DOCUMENT,
  IAC_CI_S3_PATH_STYLE. The region is AWS_REGION; credentials are the SDK's usual ones.

Example:
  AWS_REGION=eu-west-1 iac-ci aws-setup --print

Flags:
`)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("aws-setup takes no arguments, got %q", strings.Join(rest, " "))
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
