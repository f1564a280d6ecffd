package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/lambdafn"
	"github.com/iac-ci/iac-ci/secrets"
	"github.com/iac-ci/iac-ci/vcs"
	"github.com/iac-ci/iac-ci/vcs/github"
)

// lambdaRuntimeAPI is set by Lambda in every function's sandbox.
const lambdaRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"

// lambdaScratch is where functions work: /tmp is the one writable place in a Lambda sandbox.
const lambdaScratch = "/tmp/iac-ci"

// lambdaCommand is `iac-ci lambda`: the binary as one of iac-ci's Lambda functions, the one
// IAC_CI_FUNCTION names. It serves invocations until Lambda ends the sandbox.
func lambdaCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintf(stdout, "Usage: iac-ci lambda\n\nRuns as the AWS Lambda function named by $%s, one of: %s.\n"+
			"The AWS resources are named by the same IAC_CI_* variables as `iac-ci aws-setup`; see docs/deploy.md.\n\n"+
			"Example (the container image's command, in the Lambda function's configuration):\n  IAC_CI_FUNCTION=intake iac-ci lambda\n",
			lambdafn.EnvFunction, strings.Join(lambdafn.Names, ", "))
		return nil
	}
	if len(args) > 0 {
		return usagef("lambda takes no arguments, got %q: the function is named by $%s", strings.Join(args, " "), lambdafn.EnvFunction)
	}
	name := getenv(lambdafn.EnvFunction)
	if name == "" {
		return usagef("%s is not set: set it to the function this is, one of %s", lambdafn.EnvFunction, strings.Join(lambdafn.Names, ", "))
	}
	if !slices.Contains(lambdafn.Names, name) {
		return usagef("%s=%q: want one of %s", lambdafn.EnvFunction, name, strings.Join(lambdafn.Names, ", "))
	}
	if getenv(lambdaRuntimeAPI) == "" {
		return usagef("%s is not set, so this is not an AWS Lambda sandbox: `iac-ci lambda` runs only as a Lambda function "+
			"(locally, use `iac-ci serve`)", lambdaRuntimeAPI)
	}
	level := getenv(lambdafn.EnvLogLevel)
	if level == "" {
		level = "info"
	}
	log := newLogger(stderr, "json", level).With("function", name)
	sys, prefix, reporter, err := lambdaSystem(ctx, name, getenv, log)
	if err != nil {
		return fmt.Errorf("%s function: %w", name, err)
	}
	h, err := lambdafn.New(name, sys, prefix)
	if err != nil {
		return err
	}
	if reporter != nil {
		// What an invocation changed is shown on the pull request before it returns; the
		// coalescing interval holds across a warm container's invocations.
		h = lambdafn.After(h, reporter.PublishDue)
	}
	h = lambdafn.WithMetrics(h, sys.Metrics, stdout, name == lambdafn.Sweeper, log)
	log.Info("iac-ci function ready", "version", Version)
	lambda.StartWithOptions(h, lambda.WithContext(ctx))
	return nil
}

// lambdaSystem assembles iac-ci for one function on the AWS resources the variables name, and
// returns the queues' name prefix and, when a GitHub token is configured, the pull-request
// reporter (every function but the webhook moves runs, and so keeps their comments). It makes no
// AWS call but to read its secrets; the function's queues are looked up by lambdafn.New.
func lambdaSystem(ctx context.Context, name string, getenv Env, log *slog.Logger) (*assembly.System, string, *vcs.Reporter, error) {
	fail := func(err error) (*assembly.System, string, *vcs.Reporter, error) { return nil, "", nil, err }
	cfg, err := awsbackend.FromEnv(getenv)
	if err != nil {
		return fail(err)
	}
	awsCfg, err := awsbackend.LoadAWS(ctx)
	if err != nil {
		return fail(err)
	}
	b, err := awsbackend.Open(cfg, awsbackend.NewClients(awsCfg, cfg, awsbackend.ClientOptions{}), false, nil)
	if err != nil {
		return fail(err)
	}
	o := assembly.Options{Log: log, GitBaseURL: getenv(lambdafn.EnvGitBaseURL), ScratchDir: lambdaScratch, Workers: 1,
		BaseEnv: consumers.LocalEnv("AWS_REGION", "AWS_DEFAULT_REGION")}
	base := strings.TrimSuffix(getenv(lambdafn.EnvPublicURL), "/")
	if base != "" {
		o.PublicURL = func() string { return base }
	}
	// The API token guards the reads and signs the links comments carry.
	apiToken, err := lambdaSecret(ctx, b.Secrets, getenv, lambdafn.EnvAPITokenLocation)
	if err != nil {
		return fail(err)
	}
	o.APIToken, o.GuardedUpstream = []byte(apiToken), getenv(lambdafn.EnvStatusAuthorization) == "AWS_IAM"
	token, err := lambdaSecret(ctx, b.Secrets, getenv, lambdafn.EnvGitHubTokenLocation)
	if err != nil {
		return fail(err)
	}
	var client *github.Client
	if token != "" {
		// A bounded wait: a publish holds up the finalization of its run.
		if client, err = github.New(getenv(lambdafn.EnvGitHubAPIURL), token, &http.Client{Timeout: githubTimeout}); err != nil {
			return fail(usagef("%s: %v", lambdafn.EnvGitHubAPIURL, err))
		}
	}
	var reporter *vcs.Reporter
	if name == lambdafn.Webhook {
		secret, err := lambdaSecret(ctx, b.Secrets, getenv, lambdafn.EnvWebhookSecretLocation)
		if err != nil {
			return fail(err)
		}
		if secret == "" {
			return fail(usagef("%s is not set: store the webhook secret as a SecureString parameter and set it to "+
				"aws:::ssm:<path> (or aws:::secretd:<name>)", lambdafn.EnvWebhookSecretLocation))
		}
		o.WebhookSecret = []byte(secret)
		if client != nil {
			o.GitHub = jobsFromEvents(client)
		}
	} else if client != nil {
		reporter = vcs.NewReporter(client, vcs.ReporterOptions{Log: log})
		o.Watchers, o.Finishers = []engine.Watcher{reporter}, []engine.Finisher{reporter}
	}
	sys, err := assembly.New(b.Ports(), o)
	if err != nil {
		return fail(err)
	}
	if reporter != nil {
		var statusURL func(string) string
		if base != "" {
			statusURL = func(runID string) string {
				return base + "/runs/" + url.PathEscape(runID) + sys.Server.RunLinkQuery(runID)
			}
		}
		go reporter.Run(ctx, sys.Engine.Store, statusURL)
	}
	return sys, cfg.QueuePrefix, reporter, nil
}

// lambdaSecret reads the secret whose location the variable holds ("" when unset). Errors name
// the variable, never the value.
func lambdaSecret(ctx context.Context, src secrets.Source, getenv Env, variable string) (string, error) {
	raw := getenv(variable)
	if raw == "" {
		return "", nil
	}
	loc, err := domain.ParseSecretLocation(raw)
	if err != nil {
		return "", usagef("%s: %v", variable, err)
	}
	if loc.Kind == domain.SecretEnv {
		return "", usagef("%s: want aws:::ssm:<path> or aws:::secretd:<name>, not an env: location", variable)
	}
	v, err := secrets.Resolve(ctx, src, loc, getenv)
	if err != nil {
		return "", fmt.Errorf("read the secret %s names: %w", variable, err)
	}
	return v, nil
}
