package consumers

import (
	"archive/zip"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/queues"
)

// Launch is one attempt of an order, handed to a target that runs it outside this process (a
// CodeBuild build, an SSM command on instances). It holds no secret value and no environment:
// the target gets URLs and names, and the worker there fetches the rest.
//
// The three URLs are presigned: each is a bearer credential for one object and one method, valid
// until the order's timeout (plus a margin) has passed. Whoever can read a Launch can fetch the
// order's bundle (code and sealed environment, which only the run key opens) or write its result,
// so a Launch goes only into the target's own request, never into a log or a stored record.
type Launch struct {
	RunID, TraceID, OrderName string
	OrderNum, Attempt         int
	// Timeout is the order's timeout in seconds; targets add LaunchMargin to their own limits.
	Timeout int
	// BundleURL answers GET with the order's exec.zip.
	BundleURL string
	// CallbackURL accepts one PUT of this attempt's result.json.
	CallbackURL string
	// LogURL accepts a PUT of this attempt's log.
	LogURL string
	// RunKeyParameter names the Parameter Store parameter that holds the run's key (the name,
	// never the key); empty when the run keys are not in Parameter Store.
	RunKeyParameter string
	// Delivery is how long the target may take to start the attempt: a later start would run past
	// the order's deadline, when its result no longer counts.
	Delivery time.Duration
	// SSMDocument and SSMTargets are set for ssm orders only.
	SSMDocument string
	SSMTargets  *domain.SSMTargets
}

// The environment `iac-ci worker` reads its inputs from: a CodeBuild build gets them as
// environment variable overrides, and the SSM document's script sets them from its parameters.
// LocalEnv leaves every IAC_CI_ variable out of the commands' environment, so the commands see
// none of these URLs (except the callback URL, as CALLBACK_URL, which they may use).
const (
	EnvBundleURL       = "IAC_CI_BUNDLE_URL"        // presigned GET of exec.zip
	EnvCallbackURL     = "IAC_CI_CALLBACK_URL"      // presigned PUT of result.json
	EnvLogURL          = "IAC_CI_LOG_URL"           // presigned PUT of the log
	EnvRunID           = "IAC_CI_RUN_ID"            // optional: read from the callback URL otherwise
	EnvOrderNum        = "IAC_CI_ORDER_NUM"         // optional, likewise
	EnvAttempt         = "IAC_CI_ATTEMPT"           // optional, likewise
	EnvRunKeyParameter = "IAC_CI_RUN_KEY_PARAMETER" // Parameter Store name of the run key
	EnvKeyFile         = "IAC_CI_KEY_FILE"          // or a file holding the run key
)

// LaunchMargin is what targets add to an order's timeout for their own limits (a build's
// timeout, a command's execution timeout): the worker needs time before the commands (fetching
// and unpacking the bundle) and after them (stopping them at the timeout, delivering the log
// and result). Without it the target would kill the worker exactly when the worker stops the
// commands, and the attempt's log and result would be lost.
const LaunchMargin = 60 // seconds

// Starter starts one attempt on its target and returns the target's id for it (a build id, a
// command id), for the log. A refusal that retrying cannot mend (no such project or document,
// parameters the target rejects, access denied) wraps ErrLaunchRefused, with a message fit for
// the order's reason; any other error is taken as passing (throttling, a 5xx, the network) and
// the launch is retried. No error may quote the Launch's URLs.
type Starter interface {
	Start(ctx context.Context, l Launch) (id string, err error)
}

// ErrLaunchRefused: the target refused the launch, and retrying would not change that.
var ErrLaunchRefused = errors.New("launch refused")

// ErrAtCapacity: the target turned the launch away for capacity (throttling, an account's limit
// of running builds) and takes it later, once running work ends. A Starter wraps it in such an
// error; the Launcher then puts the order back on its queue with a backoff, and the refusal does
// not count towards dead-lettering the order's message (see Launcher).
var ErrAtCapacity = errors.New("target at capacity")

// Backoff after a launch turned away for capacity: the first wait, and the longest.
const (
	CapacityBackoffFirst = 5 * time.Second
	CapacityBackoffMax   = 5 * time.Minute
)

// LogLinker is a Starter whose launches keep a log of their own (CodeBuild's in CloudWatch
// Logs): LogLink says where, for a launch id Start returned.
type LogLinker interface {
	LogLink(launchID string) string
}

// Launcher takes order messages off one target's queue and starts each order on that target
// through a Starter: the codebuild queue starts CodeBuild builds, the ssm queue sends SSM
// commands. It claims an order exactly as Worker does, so an attempt number names one launch;
// the worker at the target delivers the result to the attempt's presigned URL and the
// orchestrator records it. A message whose launch fails passingly stays in the queue and comes
// back (a new attempt, with new URLs); a refused launch ends the order failed, with the reason.
//
// A launch turned away for capacity (ErrAtCapacity) is neither: a 500-order run against an
// account that runs 60 builds at a time would otherwise spend its messages' receives and
// dead-letter most of its orders. The order is put back to queued with a new message, delayed
// by an exponential backoff with jitter (the attempt number counts the tries), and the message
// that brought it is deleted, so its receive count never grows. It waits so until its target
// takes it or the job's deadline ends it.
type Launcher struct {
	Engine  *engine.Engine
	Starter Starter
	// RunKeyParameter names the parameter of a run's key (awssecrets.Keys.ParameterName); nil
	// when workers get the key some other way.
	RunKeyParameter func(runID string) (string, error)
	// DefaultDocument is the deployment's name for the iac-ci-run-commands document: ssm orders
	// that name no document of their own (or name domain.DefaultSSMDocumentName, which jobs get
	// by default) run it. Empty keeps domain.DefaultSSMDocumentName.
	DefaultDocument string
	// CapacityBackoff is the first wait after a launch turned away for capacity; each further
	// try doubles it, up to CapacityBackoffMax. Zero is CapacityBackoffFirst.
	CapacityBackoff time.Duration
}

// Handle launches the order a message names, if it is still to be run.
func (l *Launcher) Handle(ctx context.Context, m queues.Message) error {
	e := l.Engine
	var msg domain.OrderMessage
	if err := json.Unmarshal(m.Body, &msg); err != nil {
		e.Logger().WarnContext(ctx, "dropping malformed order message", "err", err)
		return nil
	}
	o, ok, err := e.Claim(ctx, msg, m.ReceiveCount)
	if err != nil || !ok {
		return err
	}
	log := e.Logger().With("run_id", o.RunID, "trace_id", o.TraceID, "order", o.OrderName, "attempt", o.Attempt)
	launch, reason, err := l.prepare(ctx, o)
	if err != nil {
		return err
	}
	if reason == "" {
		id, err := l.Starter.Start(ctx, launch)
		switch {
		case err == nil:
			log.InfoContext(ctx, "order launched", "target", o.Target, "launch_id", id)
			if linker, ok := l.Starter.(LogLinker); ok {
				// Where the launch's own log is: a build that dies before iac-ci's worker runs
				// leaves its reason only there. Best effort: the launch stands without it.
				if err := e.NoteLaunch(ctx, o, linker.LogLink(id)); err != nil {
					log.WarnContext(ctx, "note the launch", "err", err)
				}
			}
			return nil
		case errors.Is(err, ErrLaunchRefused):
			reason = err.Error()
		case errors.Is(err, ErrAtCapacity):
			wait := capacityWait(cmp.Or(l.CapacityBackoff, CapacityBackoffFirst), o.Attempt)
			log.InfoContext(ctx, "order put back: its target is at capacity", "target", o.Target, "wait", wait, "err", err)
			if err := e.PutBack(ctx, o, wait, err.Error()); err != nil {
				return err
			}
			return nil
		default:
			return fmt.Errorf("launch order %s attempt %d: %w", o.OrderName, o.Attempt, err)
		}
	}
	log.WarnContext(ctx, "order not launched", "target", o.Target, "reason", reason)
	_, err = e.Finish(ctx, o, []domain.OrderStatus{domain.OrderRunning}, o.Attempt,
		engine.Outcome{Status: domain.OrderFailed, Reason: reason})
	return err
}

// prepare gathers what a claimed order's launch needs. A problem of the order itself (its
// bundle is gone or unreadable, an ssm order without targets) is returned as a reason that
// fails it; an error is a passing problem of the ports.
func (l *Launcher) prepare(ctx context.Context, o domain.OrderRecord) (Launch, string, error) {
	e := l.Engine
	expiry := AttemptExpiry(o)
	var err error
	launch := Launch{
		RunID: o.RunID, TraceID: o.TraceID, OrderName: o.OrderName, OrderNum: o.OrderNum, Attempt: o.Attempt,
		Timeout: o.Timeout, Delivery: e.GracePeriod(),
	}
	if launch.BundleURL, err = e.Blobs.PresignGet(ctx, blobs.ExecKey(o.RunID, o.OrderNum), expiry); err != nil {
		return Launch{}, "", fmt.Errorf("presign bundle: %w", err)
	}
	if launch.CallbackURL, err = e.Blobs.PresignPut(ctx, blobs.ResultKey(o.RunID, o.OrderNum, o.Attempt), expiry); err != nil {
		return Launch{}, "", fmt.Errorf("presign result: %w", err)
	}
	if launch.LogURL, err = e.Blobs.PresignPut(ctx, blobs.LogKey(o.RunID, o.OrderNum, o.Attempt), expiry); err != nil {
		return Launch{}, "", fmt.Errorf("presign log: %w", err)
	}
	if l.RunKeyParameter != nil {
		if launch.RunKeyParameter, err = l.RunKeyParameter(o.RunID); err != nil {
			return Launch{}, "", fmt.Errorf("name the run key: %w", err)
		}
	}
	if o.Target != domain.TargetSSM {
		return launch, "", nil
	}
	// Where an ssm order runs is in its bundle's manifest, not in the order's record.
	data, err := e.Blobs.Get(ctx, blobs.ExecKey(o.RunID, o.OrderNum))
	if errors.Is(err, blobs.ErrNotFound) {
		return Launch{}, "the order's bundle is gone, so its ssm_targets are unknown", nil
	}
	if err != nil {
		return Launch{}, "", fmt.Errorf("read bundle: %w", err)
	}
	m, err := readManifest(data)
	if err != nil {
		return Launch{}, "the order's bundle could not be read: " + err.Error(), nil
	}
	if m.SSMTargets == nil || len(m.SSMTargets.InstanceIDs) == 0 && len(m.SSMTargets.Tags) == 0 {
		return Launch{}, "the order's bundle names no ssm_targets, so there is nowhere to run it", nil
	}
	launch.SSMTargets = m.SSMTargets
	launch.SSMDocument = m.SSMDocumentName
	if launch.SSMDocument == "" || launch.SSMDocument == domain.DefaultSSMDocumentName {
		launch.SSMDocument = cmp.Or(l.DefaultDocument, domain.DefaultSSMDocumentName)
	}
	return launch, "", nil
}

// capacityWait is the backoff before the next try of an order turned away for capacity at its
// attempt-th try: first doubled attempt-1 times, at most CapacityBackoffMax, with "equal
// jitter" (half fixed, half random) so that orders turned away together do not return together.
func capacityWait(first time.Duration, attempt int) time.Duration {
	d := first
	for i := 1; i < attempt && d < CapacityBackoffMax; i++ {
		d *= 2
	}
	d = min(d, CapacityBackoffMax)
	return d/2 + rand.N(d/2+1)
}

// AttemptExpiry is how long an attempt's presigned URLs live: the order's timeout plus
// domain.PresignMargin, or the job's presign_expiry when the caller asked for longer.
func AttemptExpiry(o domain.OrderRecord) time.Duration {
	expiry := time.Duration(o.Timeout)*time.Second + domain.PresignMargin*time.Second
	if p := time.Duration(o.PresignExpiry) * time.Second; p > expiry {
		expiry = p
	}
	return expiry
}

// maxManifestBytes bounds the manifest read from a bundle; bundle.Unpack has the same bound.
const maxManifestBytes = 4 << 20

// readManifest reads the manifest of a bundle without unpacking its code.
func readManifest(zipData []byte) (bundle.Manifest, error) {
	var m bundle.Manifest
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		return m, fmt.Errorf("not a zip: %w", err)
	}
	for _, f := range zr.File {
		if f.Name != bundle.ManifestName {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return m, fmt.Errorf("%s: %w", bundle.ManifestName, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
		rc.Close()
		switch {
		case err != nil:
			return m, fmt.Errorf("%s: %w", bundle.ManifestName, err)
		case len(data) > maxManifestBytes:
			return m, fmt.Errorf("%s is larger than %d bytes", bundle.ManifestName, maxManifestBytes)
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return m, fmt.Errorf("%s: %w", bundle.ManifestName, err)
		}
		return m, m.Validate()
	}
	return m, fmt.Errorf("%s is missing", bundle.ManifestName)
}
