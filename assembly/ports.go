package assembly

import (
	"context"
	"net/http"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/secrets"
	"github.com/iac-ci/iac-ci/store"
)

// Ports are what a backend opens for the assembly: the four ports of DESIGN §6 and the few facts
// about the backend that the engine's parts need. The embedded backend (package embedded) and
// the AWS backend (package awsbackend) each return one.
type Ports struct {
	Store    store.Store
	Queues   queues.Broker
	Internal blobs.Bucket // requests, bundles, results, logs
	Done     blobs.Bucket // one object per finished run
	Keys     secrets.Keys
	Secrets  secrets.Source

	// Embedded allows what only one machine can do: local_path code and env: secret locations.
	Embedded bool
	// Getenv answers env: secret locations; nil refuses them.
	Getenv func(string) string
	// GetObject reads an s3_location zip; nil refuses s3_location.
	GetObject func(ctx context.Context, bucket, key string) ([]byte, error)

	// Starters launch the orders of the targets that run elsewhere (CodeBuild builds, SSM
	// commands). A target without one runs its orders in a worker of the host's process.
	Starters map[domain.Target]consumers.Starter
	// RunKeyParameter names the parameter of a run's key, handed to launched workers.
	RunKeyParameter func(runID string) (string, error)
	// SSMDocument is the deployment's name of the iac-ci-run-commands document.
	SSMDocument string
	// OrderCredentials are the AWS credentials orders run with (an order role); nil gives them
	// none. Orders never get the process's own: the assembly strips them from their
	// environment.
	OrderCredentials consumers.OrderCredentials
	// LiveLogFlush, when positive, is how often a running attempt's output so far is stored for
	// other processes to read (on AWS, where the process that serves a log is seldom the one
	// running the order); embedded, the server runs the orders and reads their output itself.
	LiveLogFlush time.Duration
	// HTTPClient moves workers' results and logs to their presigned URLs; nil uses a default.
	HTTPClient *http.Client

	// Visibility, when set, is every queue's visibility timeout (embedded, where it is a
	// setting); otherwise each queue's is queues.Topology's.
	Visibility time.Duration
	// DeleteDelay is how long a handled message's receipt waits to share its delete with others
	// (consumers.Deleter); zero is consumers.DeleteDelay.
	DeleteDelay time.Duration
	// The engine's repair delays (engine.Engine); zero keeps the engine's defaults.
	RequeueAfter, WaitRecheck, Grace time.Duration

	// Routes are HTTP routes the backend serves itself, open to anyone who holds a URL (the
	// embedded blob server's presigned URLs carry their own signature); may be nil.
	Routes map[string]http.Handler
	// Health reports whether the backend can still keep what is accepted (the embedded data
	// folder's databases are still there); nil is always healthy.
	Health func(ctx context.Context) error
}

// visibility is queue's visibility timeout.
func (p Ports) visibility(queue string) time.Duration {
	if p.Visibility > 0 {
		return p.Visibility
	}
	for _, s := range queues.Topology() {
		if s.Name == queue {
			return s.Visibility
		}
	}
	return time.Minute
}
