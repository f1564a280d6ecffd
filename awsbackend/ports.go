package awsbackend

import (
	"time"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/secrets"
)

// LaunchGrace is how long past an order's timeout the sweeper waits for its result on AWS: a
// CodeBuild build or an SSM command starts some time after its order is claimed (provisioning,
// queueing), so the sweeper waits longer than embedded.
const LaunchGrace = 5 * time.Minute

// DeleteDelay bounds how long a handled message waits for others to share its delete. SQS bills
// a DeleteMessageBatch of ten receipts as one request, as it does a delete of one. It is far
// below every queue's visibility timeout (a minute at least), so waiting never lets a handled
// message come back; and a message whose delete a crash lost comes back to a no-op (every move
// is conditional). Long enough for a queue handling one message a second to delete ten a call.
const DeleteDelay = 5 * time.Second

// LiveLogFlush is how often a running lambda order's output so far is stored (one S3 PUT each,
// for orders that run longer than that).
const LiveLogFlush = 10 * time.Second

// OrderRoleSession is the longest session the order role allows (infra/ sets the role's
// max_session_duration to it): the longest lambda order is 15 minutes.
const OrderRoleSession = time.Hour

// Ports returns the backend's ports for the assembly: lambda orders run in the host's process
// (the worker function, or serve --backend aws), codebuild and ssm orders are launched as
// CodeBuild builds and SSM commands, orders run with the order role's credentials (never the
// worker's own), and run keys are read once per process and run
// (secrets.KeyCache).
func (b *Backend) Ports() assembly.Ports {
	var creds consumers.OrderCredentials
	if b.Config.OrderRoleARN != "" {
		creds = &awslaunch.OrderRole{Client: b.Clients.STS, RoleARN: b.Config.OrderRoleARN, MaxSession: OrderRoleSession}
	}
	return assembly.Ports{
		OrderCredentials: creds,
		Store:            b.Store, Queues: b.Queues, Internal: b.Internal, Done: b.Done,
		Keys: secrets.NewKeyCache(b.Keys), Secrets: b.Secrets, GetObject: b.GetObject,
		Starters: map[domain.Target]consumers.Starter{
			domain.TargetCodeBuild: &awslaunch.CodeBuild{Client: b.Clients.CodeBuild, Project: b.Config.CodeBuildProject,
				Region: b.Clients.Config.Region},
			domain.TargetSSM: &awslaunch.SSM{Client: b.Clients.SSM},
		},
		RunKeyParameter: b.Keys.ParameterName, SSMDocument: b.Config.SSMDocument, HTTPClient: b.Clients.HTTP,
		DeleteDelay: DeleteDelay, Grace: LaunchGrace, LiveLogFlush: LiveLogFlush,
	}
}
