// Package lambdafn runs iac-ci's producers and consumers as AWS Lambda functions. One container
// image holds every function; the IAC_CI_FUNCTION variable picks which one a process serves
// (see Names), and New returns its handler for lambda.Start.
//
// It adds no behaviour of its own: each function serves the routes of the assembly's route table
// whose Function is its name (assembly.System.RoutesOf), the HTTP server, or one sweep, exactly
// as the embedded engine runs them. What it promises is the translation:
//
//   - an API Gateway HTTP API request (payload format 2.0) becomes an http.Request for
//     producers.Server, and its answer the function's response;
//   - each record of an SQS batch becomes a queues.Message; a record whose handler fails is
//     listed in the partial batch response (BatchItemFailures), so SQS retries only that one,
//     and a record never handled before the function's deadline is listed too;
//   - a scheduled event makes one sweep.
//
// Messages are deleted by the event source mapping, not here: it deletes every record that is
// not listed as failed.
package lambdafn

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/consumers"
)

// The functions, by the name IAC_CI_FUNCTION gives them (assembly.Functions).
const (
	Webhook      = assembly.FunctionWebhook
	Intake       = assembly.FunctionIntake
	Worker       = assembly.FunctionWorker
	Launcher     = assembly.FunctionLauncher
	Orchestrator = assembly.FunctionOrchestrator
	DeadLetters  = assembly.FunctionDeadLetters
	Sweeper      = assembly.FunctionSweeper
)

// The variables `iac-ci lambda` reads beside awsbackend's (IAC_CI_PREFIX and the resources'
// names). infra/02-deploy sets them; only locations of secrets travel in them, never values.
const (
	// EnvFunction names the function a process serves: one of Names.
	EnvFunction = "IAC_CI_FUNCTION"
	// EnvWebhookSecretLocation says where the secret that signs webhook bodies lives
	// (aws:::ssm:<path> or aws:::secretd:<name>); the webhook function reads it at its start.
	EnvWebhookSecretLocation = "IAC_CI_WEBHOOK_SECRET_LOCATION"
	// EnvGitHubTokenLocation, when set, makes the webhook function turn GitHub's pull-request
	// events into runs, reading .iac-ci.yml with the token it points to; EnvGitHubAPIURL is the
	// API of a GitHub Enterprise server.
	EnvGitHubTokenLocation = "IAC_CI_GITHUB_TOKEN_LOCATION"
	EnvGitHubAPIURL        = "IAC_CI_GITHUB_API_URL"
	// EnvStatusAuthorization is the API Gateway authorization of the read routes, AWS_IAM or
	// NONE. With AWS_IAM, API Gateway lets only SigV4-signed callers through (the signature
	// takes the Authorization header), and the function answers what arrives. With NONE the
	// routes are public, and the function asks for the API token that EnvAPITokenLocation
	// points to (as EnvWebhookSecretLocation does for the secret), or a signed run link;
	// without a token it answers them 401.
	EnvStatusAuthorization = "IAC_CI_STATUS_AUTHORIZATION"
	EnvAPITokenLocation    = "IAC_CI_API_TOKEN_LOCATION"
	// EnvGitBaseURL is where intake clones git_repo from: a GitHub Enterprise server's URL
	// (https://github.com when unset).
	EnvGitBaseURL = "IAC_CI_GIT_BASE_URL"
	// EnvPublicURL is the API's base URL: accepted jobs are told their done endpoint under it.
	EnvPublicURL = "IAC_CI_PUBLIC_URL"
	// EnvLogLevel is debug, info (the default), warn or error.
	EnvLogLevel = "IAC_CI_LOG_LEVEL"
)

// Names lists every function, in the order the documentation gives them.
var Names = assembly.Functions

// ErrUnknownFunction: the name is none of Names.
var ErrUnknownFunction = errors.New("unknown function")

// New returns the handler of the named function on the assembled system, for lambda.Start. It
// resolves the queues the function serves now, so a function wired to a queue that does not
// exist fails at its start. prefix is what the backend puts before a queue's name ("iac-ci-"):
// an SQS record's eventSourceARN ends in prefix + name, which tells the function which queue it
// came from.
func New(name string, sys *assembly.System, prefix string) (lambda.Handler, error) {
	if !slices.Contains(Names, name) {
		return nil, fmt.Errorf("%q is not one of %v: %w", name, Names, ErrUnknownFunction)
	}
	if sys == nil {
		return nil, errors.New("lambda function " + name + ": nothing assembled")
	}
	switch name {
	case Webhook:
		return lambda.NewHandler(HTTP(sys.Server.Handler())), nil
	case Sweeper:
		return lambda.NewHandler(Events(sys.Sweeper, sys.BuildEvents)), nil
	}
	routes := map[string]consumers.Handler{}
	for _, r := range sys.RoutesOf(name) {
		if _, err := sys.Engine.Queues.Queue(r.Queue); err != nil {
			return nil, fmt.Errorf("lambda function %s: queue %s%s: %w", name, prefix, r.Queue, err)
		}
		routes[r.Queue] = r.Handler
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("lambda function %s: it serves no queue on this backend", name)
	}
	return lambda.NewHandler(Batch(sys.Engine.Logger(), prefix, func(queue string) (consumers.Handler, bool) {
		h, ok := routes[queue]
		return h, ok
	})), nil
}

// Events returns the sweeper function, which EventBridge invokes two ways: on its schedule, for
// one sweep, and with CodeBuild's build state changes (an EventBridge rule, infra/), which end
// the order of a build that died without its result (consumers.BuildEvents).
func Events(s *consumers.Sweeper, builds *consumers.BuildEvents) func(context.Context, events.EventBridgeEvent) error {
	return func(ctx context.Context, ev events.EventBridgeEvent) error {
		if ev.Source == "aws.codebuild" && ev.DetailType == "CodeBuild Build State Change" && builds != nil {
			if _, err := builds.HandleCodeBuild(ctx, ev.Detail); err != nil {
				return fmt.Errorf("build state change: %w", err)
			}
			return nil
		}
		if err := s.Sweep(ctx); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		return nil
	}
}

// After returns h, calling after once each invocation has been handled, before its answer is
// sent: while the function is still running, since Lambda freezes it between invocations (the
// pull-request reporter publishes what the invocation changed then).
func After(h lambda.Handler, after func(ctx context.Context)) lambda.Handler {
	return afterHandler{h, after}
}

type afterHandler struct {
	lambda.Handler
	after func(ctx context.Context)
}

func (a afterHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := a.Handler.Invoke(ctx, payload)
	a.after(ctx)
	return out, err
}
