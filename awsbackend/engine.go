package awsbackend

import (
	"time"

	"log/slog"
	"path/filepath"

	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/producers"
)

// Engine returns an engine on the backend's ports, with the engine's default repair delays
// (the sweeper runs every minute on AWS). doneURL tells where a run's done object can be read;
// it may be nil. To save calls, run keys are read once per process and run (RunKeyCache);
// events need no grouping, since they are written with the moves they record.
func (b *Backend) Engine(log *slog.Logger, doneURL func(runID string) string) *engine.Engine {
	return &engine.Engine{
		Store: b.Store, Queues: b.Queues, Blobs: b.Internal, Done: b.Done,
		Keys: NewRunKeyCache(b.Keys), Log: log, DoneURL: doneURL,
		// A CodeBuild build or an SSM command starts some time after its order is claimed
		// (provisioning, queueing), so the sweeper waits longer past the timeout than embedded.
		Grace: LaunchGrace,
	}
}

// LaunchGrace is how long past an order's timeout the sweeper waits for its result on AWS.
const LaunchGrace = 5 * time.Minute

// Accepter returns the producers' accepter on the backend: requests go to the internal bucket
// and the intake queue, and jobs are held to what AWS can run (no local_path, no env: secrets).
func (b *Backend) Accepter(doneURL func(runID string) string) *producers.Accepter {
	return &producers.Accepter{Blobs: b.Internal, Queues: b.Queues, DoneURL: doneURL}
}

// Intake returns intake on the backend: secret values from Parameter Store and Secrets Manager,
// s3_location code from S3, scratch space under workDir.
func (b *Backend) Intake(e *engine.Engine, gitBaseURL, workDir string) *producers.Intake {
	return &producers.Intake{Engine: e, Secrets: b.Secrets, GitBaseURL: gitBaseURL, GetObject: b.GetObject,
		WorkDir: filepath.Clean(workDir)}
}
