package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/sandbox"
	"github.com/iac-ci/iac-ci/secrets/awssecrets"
)

const workerUsage = `Usage: iac-ci worker [flags]

Runs one attempt of an order, as a CodeBuild build or an SSM instance does for iac-ci: downloads
the order's bundle, opens its sealed environment with the run's key, runs the commands, and
delivers the log and the result to presigned URLs. It exits 0 when the result was delivered,
whatever the order's status, and non-zero when it could not be.

Inputs come from the environment (or from the flags, which other users of the machine can see in
its process list, so prefer the environment for the URLs):
  IAC_CI_BUNDLE_URL         presigned GET URL of the order's exec.zip (required)
  IAC_CI_CALLBACK_URL       presigned PUT URL of the attempt's result.json (required)
  IAC_CI_LOG_URL            presigned PUT URL of the attempt's log (without it the log is not kept)
  IAC_CI_RUN_KEY_PARAMETER  Parameter Store name of the run's key, read with decryption
  IAC_CI_KEY_FILE           or a file holding the run's key (for machines without Parameter Store)
  IAC_CI_RUN_ID, IAC_CI_ORDER_NUM, IAC_CI_ATTEMPT
                            the attempt; read from the callback URL when not given
Parameter Store is reached with the usual AWS settings (AWS_REGION, or the instance's region).

Example:
  IAC_CI_BUNDLE_URL=... IAC_CI_CALLBACK_URL=... IAC_CI_RUN_KEY_PARAMETER=/iac-ci/run-keys/RUN_ID iac-ci worker

Flags:`

// workerInputs is what one attempt is handed.
type workerInputs struct {
	bundleURL, callbackURL, logURL string
	runKeyParameter, keyFile       string
	runID                          string
	orderNum, attempt              string
	workDir                        string
	// orderRole is the role the commands' AWS credentials come from; orderSession how long
	// their session lasts (at most the role's max_session_duration).
	orderRole    string
	orderSession time.Duration
}

// The variables of the order role, set on the CodeBuild project and the instances by infra/.
const (
	envOrderRoleARN     = "IAC_CI_ORDER_ROLE_ARN"
	envOrderRoleSession = "IAC_CI_ORDER_ROLE_SESSION"
)

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// workerCommand is `iac-ci worker`: one order attempt, as CodeBuild or an SSM instance runs it.
func workerCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	var in workerInputs
	// No flag has a default from the environment: -h prints defaults, and these are credentials.
	fs.StringVar(&in.bundleURL, "bundle-url", "", "presigned GET URL of the order's bundle (or $"+consumers.EnvBundleURL+")")
	fs.StringVar(&in.callbackURL, "callback-url", "", "presigned PUT URL of the attempt's result.json (or $"+consumers.EnvCallbackURL+")")
	fs.StringVar(&in.logURL, "log-url", "", "presigned PUT URL of the attempt's log (or $"+consumers.EnvLogURL+")")
	fs.StringVar(&in.runKeyParameter, "run-key-parameter", "", "Parameter Store name of the run's key (or $"+consumers.EnvRunKeyParameter+")")
	fs.StringVar(&in.keyFile, "key-file", "", "file holding the run's key, instead of Parameter Store (or $"+consumers.EnvKeyFile+")")
	fs.StringVar(&in.runID, "run-id", "", "the run (or $"+consumers.EnvRunID+"; default: from the callback URL)")
	fs.StringVar(&in.orderNum, "order-num", "", "the order's number (or $"+consumers.EnvOrderNum+"; default: from the callback URL)")
	fs.StringVar(&in.attempt, "attempt", "", "the attempt (or $"+consumers.EnvAttempt+"; default: from the callback URL)")
	fs.StringVar(&in.workDir, "work-dir", "", "folder for the order's working directory (default: a new temporary folder)")
	fs.StringVar(&in.orderRole, "order-role-arn", "", "role whose credentials the commands get, assumed with this process's own (or $"+envOrderRoleARN+
		"); without one the commands get no AWS credentials")
	fs.DurationVar(&in.orderSession, "order-role-session", time.Hour, "how long the order role's session lasts, at most the role's max_session_duration (or $"+envOrderRoleSession+")")
	logFormat := logFormatFlag(fs)
	logLevel := logLevelFlag(fs, "info")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), workerUsage)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("worker takes no arguments, got %q", strings.Join(rest, " "))
	}
	for _, f := range []struct {
		v   *string
		env string
	}{
		{&in.bundleURL, consumers.EnvBundleURL}, {&in.callbackURL, consumers.EnvCallbackURL},
		{&in.logURL, consumers.EnvLogURL}, {&in.runKeyParameter, consumers.EnvRunKeyParameter},
		{&in.keyFile, consumers.EnvKeyFile}, {&in.runID, consumers.EnvRunID},
		{&in.orderNum, consumers.EnvOrderNum}, {&in.attempt, consumers.EnvAttempt},
	} {
		if *f.v == "" {
			*f.v = getenv(f.env)
		}
	}
	if in.orderRole == "" {
		in.orderRole = getenv(envOrderRoleARN)
	}
	if v := getenv(envOrderRoleSession); v != "" && !flagSet(fs, "order-role-session") {
		d, err := time.ParseDuration(v)
		if err != nil || d < 15*time.Minute || d > 12*time.Hour {
			return usagef("worker: %s=%q: want a duration from 15m to 12h", envOrderRoleSession, v)
		}
		in.orderSession = d
	}
	runID, orderNum, attempt, err := in.identify()
	if err != nil {
		return err
	}
	log := newLogger(stderr, *logFormat, *logLevel).With("run_id", runID, "order_num", orderNum, "attempt", attempt)
	sandbox.Default.LogTo(log) // says how the commands are confined

	client := &http.Client{Timeout: 10 * time.Minute}
	task := consumers.Task{
		RunID: runID, OrderNum: orderNum, Attempt: attempt, CallbackURL: in.callbackURL,
		// The build's or instance's own settings, not its credentials: an order's commands get
		// those of the order role, never the worker's.
		BaseEnv: consumers.WithoutCredentials(consumers.LocalEnv("AWS_REGION", "AWS_DEFAULT_REGION", "CODEBUILD_*")), Log: log,
		Hide: []string{in.keyFile},
	}
	if in.logURL != "" {
		task.LogKey = blobs.LogKey(runID, orderNum, attempt)
		task.PutLog = func(ctx context.Context, body []byte) error {
			_, err := consumers.Transfer(ctx, client, http.MethodPut, in.logURL, "text/plain; charset=utf-8", body, 0)
			return err
		}
	}
	// What cannot be had is left empty: Execute then ends the attempt failed, with a reason, and
	// the result still goes back, so the run does not wait for the order's timeout.
	task.Bundle, err = consumers.Transfer(ctx, client, http.MethodGet, in.bundleURL, "", nil, bundle.DefaultLimits.MaxTotalBytes)
	if err != nil {
		log.ErrorContext(ctx, "download the bundle", "err", err)
	}
	task.Identity, err = in.runKey(ctx)
	if err != nil {
		log.ErrorContext(ctx, "read the run key", "err", err)
	}
	if in.orderRole != "" {
		// The commands run with the order role's credentials; this process's own (the build's
		// or the instance's role, which reads run keys) never reach their environment.
		creds, err := in.orderCredentials(ctx)
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		task.BaseEnv = append(task.BaseEnv, creds...)
	}
	if in.workDir == "" {
		// A folder of its own, made 0700, rather than a fixed name another user could make first.
		if in.workDir, err = os.MkdirTemp("", "iac-ci-worker-"); err != nil {
			return fmt.Errorf("worker: make a working folder: %w", err)
		}
		defer os.RemoveAll(in.workDir)
	}
	task.WorkRoot = in.workDir

	task.DeliverAfterCancel = 30 * time.Second // stopped by CodeBuild or SSM: still say why
	res, err := consumers.Execute(ctx, task)
	if err != nil {
		return fmt.Errorf("worker: order %04d attempt %d ended %s, but its result could not be delivered: %w", orderNum, attempt, res.Status, err)
	}
	log.InfoContext(ctx, "result delivered", "status", res.Status, "exit_code", res.ExitCode)
	fmt.Fprintf(stdout, "order %04d attempt %d of run %s: %s (exit %d), result delivered\n", orderNum, attempt, runID, res.Status, res.ExitCode)
	return nil
}

// orderCredentials assumes the order role with this process's own credentials.
func (in *workerInputs) orderCredentials(ctx context.Context) ([]string, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithEC2IMDSRegion())
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	role := &awslaunch.OrderRole{Client: sts.NewFromConfig(cfg), RoleARN: in.orderRole, MaxSession: in.orderSession}
	return role.Env(ctx, in.orderSession)
}

// identify checks the inputs and returns the attempt they name. The callback URL's path holds
// the result key (…/callbacks/<run_id>/<order_num>/<attempt>/result.json), so the ids need not
// be given; given, they must agree with it.
func (in *workerInputs) identify() (runID string, orderNum, attempt int, err error) {
	switch {
	case in.bundleURL == "":
		return "", 0, 0, usagef("worker: no bundle URL: set %s (or --bundle-url)", consumers.EnvBundleURL)
	case in.callbackURL == "":
		return "", 0, 0, usagef("worker: no callback URL: set %s (or --callback-url)", consumers.EnvCallbackURL)
	case in.runKeyParameter == "" && in.keyFile == "":
		return "", 0, 0, usagef("worker: no run key: set %s to its Parameter Store name, or %s to a file holding it",
			consumers.EnvRunKeyParameter, consumers.EnvKeyFile)
	}
	for _, u := range []struct{ name, value string }{
		{consumers.EnvBundleURL, in.bundleURL}, {consumers.EnvCallbackURL, in.callbackURL}, {consumers.EnvLogURL, in.logURL},
	} {
		if u.value == "" {
			continue
		}
		if p, err := url.Parse(u.value); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			// The value is a credential: say what is wrong, never what it is.
			return "", 0, 0, usagef("worker: %s is not an http(s) URL", u.name)
		}
	}
	fromURL, fromNum, fromAttempt, urlErr := resultKeyOf(in.callbackURL)
	given := func(name, v string, fromURL int) (int, error) {
		if v == "" {
			if urlErr != nil {
				return 0, usagef("worker: %s is not given, and the callback URL does not name the attempt (%v)", name, urlErr)
			}
			return fromURL, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, usagef("worker: %s %q is not a positive number", name, v)
		}
		if urlErr == nil && n != fromURL {
			return 0, usagef("worker: %s %d does not match the callback URL's %d", name, n, fromURL)
		}
		return n, nil
	}
	if orderNum, err = given(consumers.EnvOrderNum, in.orderNum, fromNum); err != nil {
		return "", 0, 0, err
	}
	if attempt, err = given(consumers.EnvAttempt, in.attempt, fromAttempt); err != nil {
		return "", 0, 0, err
	}
	switch {
	case in.runID == "" && urlErr != nil:
		return "", 0, 0, usagef("worker: %s is not given, and the callback URL does not name the run (%v)", consumers.EnvRunID, urlErr)
	case in.runID == "":
		runID = fromURL
	case urlErr == nil && in.runID != fromURL:
		return "", 0, 0, usagef("worker: %s %q does not match the callback URL's %q", consumers.EnvRunID, in.runID, fromURL)
	default:
		runID = in.runID
	}
	return runID, orderNum, attempt, nil
}

// resultKeyOf reads the result key out of a presigned callback URL: S3 (virtual-hosted or
// path-style) and the embedded blob server both put the object's key at the end of the path.
func resultKeyOf(callbackURL string) (runID string, orderNum, attempt int, err error) {
	u, err := url.Parse(callbackURL)
	if err != nil {
		return "", 0, 0, errors.New("not a URL")
	}
	i := strings.LastIndex(u.Path, "/callbacks/")
	if i < 0 {
		return "", 0, 0, errors.New("no callbacks/ in its path")
	}
	return blobs.ParseResultKey(u.Path[i+1:])
}

// runKey reads the run's key from the key file or from Parameter Store.
func (in *workerInputs) runKey(ctx context.Context) (string, error) {
	if in.keyFile != "" {
		data, err := os.ReadFile(in.keyFile)
		if err != nil {
			return "", fmt.Errorf("key file: %w", err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	// On an instance the region comes from its metadata when the environment does not say.
	cfg, err := config.LoadDefaultConfig(ctx, config.WithEC2IMDSRegion())
	if err != nil {
		return "", fmt.Errorf("aws configuration: %w", err)
	}
	key, err := awssecrets.NewSource(ssm.NewFromConfig(cfg), nil).Parameter(ctx, in.runKeyParameter)
	if err != nil {
		return "", fmt.Errorf("run key: %w", err)
	}
	return strings.TrimSpace(key), nil
}
