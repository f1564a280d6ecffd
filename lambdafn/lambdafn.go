// Package lambdafn runs iac-ci's producers and consumers as AWS Lambda functions. One container
// image holds every function; the IAC_CI_FUNCTION variable picks which one a process serves
// (see Names), and New returns its handler for lambda.Start.
//
// It adds no behaviour of its own: each function hands its events to the same handlers the
// embedded engine runs (producers.Server, producers.Intake, consumers.Worker, the orchestrator,
// the dead-letter consumers, the sweeper). What it promises is the translation:
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
	"os"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/sealing"
)

// The functions, by the name IAC_CI_FUNCTION gives them.
const (
	Webhook      = "webhook"      // API Gateway: POST /webhook, POST /ssm and the status routes
	Intake       = "intake"       // the intake queue
	Worker       = "worker"       // orders-lambda: runs lambda orders
	Launcher     = "launcher"     // orders-codebuild and orders-ssm: starts builds and commands
	Orchestrator = "orchestrator" // the results queue
	DeadLetters  = "deadletters"  // intake-dlq and the orders-*-dlq queues
	Sweeper      = "sweeper"      // EventBridge Scheduler, every minute
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
var Names = []string{Webhook, Intake, Worker, Launcher, Orchestrator, DeadLetters, Sweeper}

// ErrUnknownFunction: the name is none of Names.
var ErrUnknownFunction = errors.New("unknown function")

// WorkerVisibility is what the Lambda worker is told its message's visibility timeout is. In
// Lambda the event source mapping owns the message: the queue's visibility timeout is set (by
// infra/) above the function's timeout, which is at least the longest lambda order (900 s), so
// the message cannot come back while the function still runs, and nothing needs extending. The
// worker's extensions go to a queue that ignores them (see eventSourceQueue); this value only
// paces them.
const WorkerVisibility = 15 * time.Minute

// Pieces are the engine's parts, already built on some backend (AWS in Lambda, the embedded
// adapters in tests). Each function uses some of them.
type Pieces struct {
	Engine *engine.Engine
	// Server answers HTTP (webhook).
	Server *producers.Server
	// Intake handles accepted requests (intake) and dead intake messages (deadletters).
	Intake *producers.Intake
	// QueuePrefix is what the backend puts before a queue's name ("iac-ci-"): an SQS record's
	// eventSourceARN ends in prefix + name, which tells a function which queue it came from.
	QueuePrefix string
	// WorkRoot is where the worker makes each order's working directory (/tmp in Lambda, the
	// one writable place there); BaseEnv is what the order's commands start from.
	WorkRoot string
	BaseEnv  []string
	// Starters start the orders of the targets that run elsewhere (launcher): CodeBuild builds
	// and SSM commands. A target without one is not served.
	Starters map[domain.Target]consumers.Starter
	// RunKeyParameter names the parameter of a run's key, handed to launched workers
	// (awssecrets.Keys.ParameterName); SSMDocument is the document of ssm orders that name none.
	RunKeyParameter func(runID string) (string, error)
	SSMDocument     string
}

// New returns the handler of the named function, for lambda.Start. It resolves the queues the
// function needs now, so a function wired to a queue that does not exist fails at its start.
func New(name string, p Pieces) (lambda.Handler, error) {
	if !slices.Contains(Names, name) {
		return nil, fmt.Errorf("%q is not one of %v: %w", name, Names, ErrUnknownFunction)
	}
	if p.Engine == nil {
		return nil, errors.New("lambda function " + name + ": no engine")
	}
	var fn any
	var err error
	switch name {
	case Webhook:
		if p.Server == nil {
			return nil, errors.New("lambda function webhook: no HTTP server")
		}
		fn = HTTP(p.Server.Handler())
	case Intake:
		if p.Intake == nil {
			return nil, errors.New("lambda function intake: no intake")
		}
		if err := scratch(p.Intake.WorkDir); err != nil {
			return nil, fmt.Errorf("lambda function intake: %w", err)
		}
		fn = Batch(p.Engine.Logger(), p.QueuePrefix, only(queues.Intake, p.Intake.Handle))
	case Worker:
		fn, err = workerFunction(p)
	case Launcher:
		fn, err = launcherFunction(p)
	case Orchestrator:
		fn, err = orchestratorFunction(p)
	case DeadLetters:
		fn, err = deadLettersFunction(p)
	case Sweeper:
		fn = Sweep(&consumers.Sweeper{Engine: p.Engine, Orchestrator: &consumers.Orchestrator{Engine: p.Engine}})
	}
	if err != nil {
		return nil, fmt.Errorf("lambda function %s: %w", name, err)
	}
	return lambda.NewHandler(fn), nil
}

// queue opens a queue the function serves; the error names it as the backend does.
func (p Pieces) queue(name string) (queues.Queue, error) {
	q, err := p.Engine.Queues.Queue(name)
	if err != nil {
		return nil, fmt.Errorf("queue %s%s: %w", p.QueuePrefix, name, err)
	}
	return q, nil
}

// scratch makes a working folder: a Lambda function starts with an empty /tmp.
func scratch(dir string) error {
	if dir == "" {
		return errors.New("no scratch folder")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("scratch folder: %w", err)
	}
	return nil
}

// workerOpenerKeys bounds the data keys the worker function keeps across invocations.
const workerOpenerKeys = 256

func workerFunction(p Pieces) (any, error) {
	if err := scratch(p.WorkRoot); err != nil {
		return nil, err
	}
	q, err := p.queue(queues.Orders("lambda"))
	if err != nil {
		return nil, err
	}
	// The Worker, and so its Opener, lives as long as the container: a warm one opens the next
	// orders of a run without unwrapping its data key again.
	w := &consumers.Worker{Engine: p.Engine, Queue: eventSourceQueue{q}, Visibility: WorkerVisibility,
		WorkRoot: p.WorkRoot, BaseEnv: p.BaseEnv, Opener: sealing.NewOpener(workerOpenerKeys)}
	return Batch(p.Engine.Logger(), p.QueuePrefix, only(queues.Orders("lambda"), w.Handle)), nil
}

// launcherFunction serves the queue of each target that has a Starter.
func launcherFunction(p Pieces) (any, error) {
	routes := map[string]consumers.Handler{}
	for target, starter := range p.Starters {
		name := queues.Orders(string(target))
		q, err := p.queue(name)
		if err != nil {
			return nil, err
		}
		l := &consumers.Launcher{Engine: p.Engine, Queue: q, Starter: starter, RunKeyParameter: p.RunKeyParameter,
			DefaultDocument: p.SSMDocument}
		routes[name] = l.Handle
	}
	if len(routes) == 0 {
		return nil, errors.New("no starters: nothing to launch orders on")
	}
	return Batch(p.Engine.Logger(), p.QueuePrefix, func(queue string) (consumers.Handler, bool) {
		h, ok := routes[queue]
		return h, ok
	}), nil
}

func orchestratorFunction(p Pieces) (any, error) {
	q, err := p.queue(queues.Results)
	if err != nil {
		return nil, err
	}
	o := &consumers.Orchestrator{Engine: p.Engine, Queue: q}
	return Batch(p.Engine.Logger(), p.QueuePrefix, only(queues.Results, o.Handle)), nil
}

// deadLettersFunction serves every dead-letter queue that has a consumer: intake-dlq, whose
// messages end their runs as failed, and each orders-*-dlq, whose messages fail their orders.
// results-dlq has none: a result that could not be recorded is found again by the sweeper
// (which looks for the result of every order past its deadline), and the dead message stays
// for an operator to read.
func deadLettersFunction(p Pieces) (any, error) {
	if p.Intake == nil {
		return nil, errors.New("no intake (intake-dlq needs it)")
	}
	if err := scratch(p.Intake.WorkDir); err != nil {
		return nil, err
	}
	routes := map[string]consumers.Handler{
		queues.Intake + queues.DeadLetterSuffix: (&producers.IntakeDeadLetters{Intake: p.Intake}).Handle,
	}
	for _, spec := range queues.Topology() {
		for _, target := range domain.Targets {
			if spec.Name != queues.Orders(string(target)) {
				continue
			}
			q, err := p.queue(spec.DeadLetter)
			if err != nil {
				return nil, err
			}
			d := &consumers.DeadLetters{Engine: p.Engine, Queue: q, MaxReceives: spec.MaxReceives}
			routes[spec.DeadLetter] = d.Handle
		}
	}
	return Batch(p.Engine.Logger(), p.QueuePrefix, func(queue string) (consumers.Handler, bool) {
		h, ok := routes[queue]
		return h, ok
	}), nil
}

// only routes the records of one queue to h.
func only(queue string, h consumers.Handler) Route {
	return func(q string) (consumers.Handler, bool) { return h, q == queue }
}

// eventSourceQueue is the worker's queue in Lambda: the event source mapping received the
// message and deletes it when the function returns, and the queue's visibility timeout already
// outlasts the function (see WorkerVisibility), so extending it is needless; it is also
// impossible to do safely here, since a receipt handle can outlive the invocation that got it.
type eventSourceQueue struct{ queues.Queue }

func (eventSourceQueue) ChangeVisibility(context.Context, string, time.Duration) error { return nil }

// Sweep returns the sweeper function: one pass per scheduled event. EventBridge Scheduler sends
// the target's input as the event; its content does not matter.
func Sweep(s *consumers.Sweeper) func(context.Context, events.EventBridgeEvent) error {
	return func(ctx context.Context, _ events.EventBridgeEvent) error {
		if err := s.Sweep(ctx); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		return nil
	}
}
