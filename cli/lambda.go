package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/lambdafn"
	"github.com/iac-ci/iac-ci/secrets"
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
	sys, prefix, err := lambdaSystem(ctx, name, getenv, log)
	if err != nil {
		return fmt.Errorf("%s function: %w", name, err)
	}
	h, err := lambdafn.New(name, sys, prefix)
	if err != nil {
		return err
	}
	h = lambdafn.WithMetrics(h, sys.Metrics, stdout, name == lambdafn.Sweeper, log)
	log.Info("iac-ci function ready", "version", Version)
	lambda.StartWithOptions(h, lambda.WithContext(ctx))
	return nil
}

// lambdaSystem assembles iac-ci for one function on the AWS resources the variables name, and
// returns the queues' name prefix. It makes no AWS call but for the webhook function's secrets;
// the function's queues are looked up by lambdafn.New.
func lambdaSystem(ctx context.Context, name string, getenv Env, log *slog.Logger) (*assembly.System, string, error) {
	cfg, err := awsbackend.FromEnv(getenv)
	if err != nil {
		return nil, "", err
	}
	awsCfg, err := awsbackend.LoadAWS(ctx)
	if err != nil {
		return nil, "", err
	}
	b, err := awsbackend.Open(cfg, awsbackend.NewClients(awsCfg, cfg, awsbackend.ClientOptions{}), false, nil)
	if err != nil {
		return nil, "", err
	}
	o := assembly.Options{Log: log, GitBaseURL: getenv(lambdafn.EnvGitBaseURL), ScratchDir: lambdaScratch, Workers: 1}
	if base := strings.TrimSuffix(getenv(lambdafn.EnvPublicURL), "/"); base != "" {
		o.PublicURL = func() string { return base }
	}
	if name == lambdafn.Webhook {
		secret, err := lambdaSecret(ctx, b.Secrets, getenv, lambdafn.EnvWebhookSecretLocation)
		if err != nil {
			return nil, "", err
		}
		if secret == "" {
			return nil, "", usagef("%s is not set: store the webhook secret as a SecureString parameter and set it to "+
				"aws:::ssm:<path> (or aws:::secretd:<name>)", lambdafn.EnvWebhookSecretLocation)
		}
		o.WebhookSecret = []byte(secret)
		apiToken, err := lambdaSecret(ctx, b.Secrets, getenv, lambdafn.EnvAPITokenLocation)
		if err != nil {
			return nil, "", err
		}
		o.APIToken, o.GuardedUpstream = []byte(apiToken), getenv(lambdafn.EnvStatusAuthorization) == "AWS_IAM"
		token, err := lambdaSecret(ctx, b.Secrets, getenv, lambdafn.EnvGitHubTokenLocation)
		if err != nil {
			return nil, "", err
		}
		if token != "" {
			client, err := github.New(getenv(lambdafn.EnvGitHubAPIURL), token, nil)
			if err != nil {
				return nil, "", usagef("%s: %v", lambdafn.EnvGitHubAPIURL, err)
			}
			o.GitHub = jobsFromEvents(client)
		}
	}
	sys, err := assembly.New(b.Ports(), o)
	if err != nil {
		return nil, "", err
	}
	return sys, cfg.QueuePrefix, nil
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
