// Package awslaunch starts orders on their AWS targets for consumers.Launcher: a codebuild order
// becomes a CodeBuild build whose buildspec runs `iac-ci worker`, an ssm order becomes an SSM Run
// Command command of the iac-ci-run-commands document (infra/ssm), whose script runs the same
// worker on each instance.
//
// What it sends is only what consumers.Launch holds: three presigned URLs, the name of the run
// key's parameter, ids and a timeout. No environment of the order and no secret value goes into a
// StartBuild or SendCommand request. The presigned URLs are bearer credentials for one object
// each (anyone who can read the build's environment or the command's parameters can use them
// until they expire, which is the order's timeout plus a margin), so no error of this package
// quotes a request: errors keep the service's error code and, for a few codes whose messages are
// known to name only the resource, its message.
package awslaunch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codebuild"
	cbtypes "github.com/aws/aws-sdk-go-v2/service/codebuild/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
)

// CodeBuildAPI is what CodeBuild asks of a client; *codebuild.Client has it.
type CodeBuildAPI interface {
	StartBuild(ctx context.Context, in *codebuild.StartBuildInput, optFns ...func(*codebuild.Options)) (*codebuild.StartBuildOutput, error)
}

// SSMAPI is what SSM asks of a client; *ssm.Client has it.
type SSMAPI interface {
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
}

// Buildspec is the buildspec every build runs: the project's image is iac-ci's own, so the
// binary is on PATH, and it reads its inputs from the environment the build is started with.
const Buildspec = `version: 0.2
phases:
  build:
    commands:
      - iac-ci worker
`

// CodeBuild bounds, in minutes (StartBuild's API reference).
const (
	minBuildMinutes  = 5
	maxBuildMinutes  = 2160
	maxQueuedMinutes = 480
)

// CodeBuild starts codebuild orders as builds of one project.
type CodeBuild struct {
	Client  CodeBuildAPI
	Project string
	// Region is the project's, for the console link of a build's log; empty leaves it out.
	Region string
}

var _ consumers.Starter = (*CodeBuild)(nil)

// Start starts one build of the project for the attempt and returns the build's id.
func (c *CodeBuild) Start(ctx context.Context, l consumers.Launch) (string, error) {
	if l.RunKeyParameter == "" {
		return "", fmt.Errorf("codebuild: no run key parameter to hand the build (run keys must be in Parameter Store): %w", consumers.ErrLaunchRefused)
	}
	// PLAINTEXT: these are names and presigned URLs, no secret values; the run key stays in
	// Parameter Store and the worker fetches it with the build's role.
	vars := []struct{ name, value string }{
		{consumers.EnvBundleURL, l.BundleURL},
		{consumers.EnvCallbackURL, l.CallbackURL},
		{consumers.EnvLogURL, l.LogURL},
		{consumers.EnvRunID, l.RunID},
		{consumers.EnvOrderNum, strconv.Itoa(l.OrderNum)},
		{consumers.EnvAttempt, strconv.Itoa(l.Attempt)},
		{consumers.EnvRunKeyParameter, l.RunKeyParameter},
	}
	env := make([]cbtypes.EnvironmentVariable, 0, len(vars))
	for _, v := range vars {
		env = append(env, cbtypes.EnvironmentVariable{Name: aws.String(v.name), Value: aws.String(v.value),
			Type: cbtypes.EnvironmentVariableTypePlaintext})
	}
	in := &codebuild.StartBuildInput{
		ProjectName:                  aws.String(c.Project),
		SourceTypeOverride:           cbtypes.SourceTypeNoSource, // everything comes in the bundle
		BuildspecOverride:            aws.String(Buildspec),
		EnvironmentVariablesOverride: env,
		TimeoutInMinutesOverride:     aws.Int32(BuildMinutes(l.Timeout)),
		// A build that waits longer to start would run past its order's deadline, when its
		// result no longer counts; CodeBuild allows no less than 5 minutes.
		QueuedTimeoutInMinutesOverride: aws.Int32(clamp(ceilMinutes(l.Delivery), minBuildMinutes, maxQueuedMinutes)),
		// The SDK retries a request whose answer it did not get; with the same token CodeBuild
		// starts no second build for it.
		IdempotencyToken: aws.String(fmt.Sprintf("%s-%s-%d", l.RunID, domain.OrderNumString(l.OrderNum), l.Attempt)),
	}
	out, err := c.Client.StartBuild(ctx, in)
	if err != nil {
		return "", launchError("codebuild StartBuild (project "+c.Project+")", err)
	}
	if out.Build == nil || out.Build.Id == nil {
		return "", errors.New("codebuild StartBuild: the answer names no build")
	}
	return *out.Build.Id, nil
}

// LogLink says where a build keeps its own log: the project's log group in CloudWatch Logs
// (/aws/codebuild/<project>, as infra/ makes it), the build's stream, and the build's page in
// the console.
func (c *CodeBuild) LogLink(buildID string) string {
	stream := buildID
	if i := strings.LastIndexByte(buildID, ':'); i >= 0 {
		stream = buildID[i+1:]
	}
	link := fmt.Sprintf("CodeBuild build %s, its log in CloudWatch Logs group /aws/codebuild/%s, stream %s", buildID, c.Project, stream)
	if c.Region != "" {
		link += fmt.Sprintf(": https://%s.console.aws.amazon.com/codesuite/codebuild/projects/%s/build/%s/log?region=%s",
			c.Region, url.PathEscape(c.Project), url.PathEscape(buildID), c.Region)
	}
	return link
}

// BuildMinutes is a build's timeout for an order's: its timeout plus consumers.LaunchMargin,
// rounded up to whole minutes, within CodeBuild's 5 to 2160.
func BuildMinutes(timeout int) int32 {
	return clamp(ceilMinutes(time.Duration(timeout+consumers.LaunchMargin)*time.Second), minBuildMinutes, maxBuildMinutes)
}

// The parameters of the iac-ci-run-commands document (infra/ssm/iac-ci-run-commands.yaml).
const (
	ParamBundleURL        = "bundleUrl"
	ParamCallbackURL      = "callbackUrl"
	ParamLogURL           = "logUrl"
	ParamRunKeyParameter  = "runKeyParameter"
	ParamExecutionTimeout = "executionTimeout"
)

// SSM bounds, in seconds (SendCommand's API reference and aws:runShellScript).
const (
	minDeliverySeconds  = 30
	maxExecutionSeconds = 172800
)

// SSM starts ssm orders as Run Command commands on the order's instances.
type SSM struct {
	Client SSMAPI
}

var _ consumers.Starter = (*SSM)(nil)

// Start sends the attempt's command and returns the command's id.
func (s *SSM) Start(ctx context.Context, l consumers.Launch) (string, error) {
	if l.RunKeyParameter == "" {
		return "", fmt.Errorf("ssm: no run key parameter to hand the instances (run keys must be in Parameter Store): %w", consumers.ErrLaunchRefused)
	}
	if l.SSMTargets == nil || len(l.SSMTargets.InstanceIDs) == 0 && len(l.SSMTargets.Tags) == 0 {
		return "", fmt.Errorf("ssm: the order names no instances: %w", consumers.ErrLaunchRefused)
	}
	in := &ssm.SendCommandInput{
		DocumentName: aws.String(l.SSMDocument),
		Parameters: map[string][]string{
			ParamBundleURL:        {l.BundleURL},
			ParamCallbackURL:      {l.CallbackURL},
			ParamLogURL:           {l.LogURL},
			ParamRunKeyParameter:  {l.RunKeyParameter},
			ParamExecutionTimeout: {strconv.Itoa(ExecutionSeconds(l.Timeout))},
		},
		// How long the command may wait to be delivered: started later, it would run past its
		// order's deadline.
		TimeoutSeconds: aws.Int32(max(minDeliverySeconds, int32(math.Ceil(l.Delivery.Seconds())))),
		Comment:        aws.String(comment(l)),
	}
	if len(l.SSMTargets.InstanceIDs) > 0 {
		in.InstanceIds = slices.Clone(l.SSMTargets.InstanceIDs)
	} else {
		for _, k := range slices.Sorted(maps.Keys(l.SSMTargets.Tags)) {
			in.Targets = append(in.Targets, ssmtypes.Target{Key: aws.String("tag:" + k), Values: []string{l.SSMTargets.Tags[k]}})
		}
	}
	out, err := s.Client.SendCommand(ctx, in)
	if err != nil {
		return "", launchError("ssm SendCommand (document "+l.SSMDocument+")", err)
	}
	if out.Command == nil || out.Command.CommandId == nil {
		return "", errors.New("ssm SendCommand: the answer names no command")
	}
	return *out.Command.CommandId, nil
}

// ExecutionSeconds is a command's execution timeout for an order's: its timeout plus
// consumers.LaunchMargin, at most aws:runShellScript's 172800.
func ExecutionSeconds(timeout int) int {
	return min(timeout+consumers.LaunchMargin, maxExecutionSeconds)
}

// comment says whose command it is, in at most the 100 characters SendCommand takes.
func comment(l consumers.Launch) string {
	c := fmt.Sprintf("iac-ci %s order %s attempt %d", l.RunID, domain.OrderNumString(l.OrderNum), l.Attempt)
	if len(c) > 100 {
		c = c[:100]
	}
	return c
}

func ceilMinutes(d time.Duration) int32 {
	return int32(math.Ceil(d.Minutes()))
}

func clamp(v, lo, hi int32) int32 { return min(max(v, lo), hi) }

// failure is what an error code means for a launch.
type failure struct {
	// passing: retrying later may succeed (the message is left in the queue).
	passing bool
	// capacity: the service is turning work away until some ends (consumers.ErrAtCapacity); the
	// order is put back with a backoff rather than spending its message's receives.
	capacity bool
	// explain is said in the order's reason after the code.
	explain string
	// keepMessage: the service's message names only the resource, never the request's input.
	keepMessage bool
}

// errorCodes is the one table of what CodeBuild and SSM error codes mean here. A code not in it
// is passing when the service calls it a server fault, and a refusal otherwise.
var errorCodes = map[string]failure{
	"ThrottlingException":      {capacity: true},
	"Throttling":               {capacity: true},
	"TooManyRequestsException": {capacity: true},
	"RequestLimitExceeded":     {capacity: true},
	"ServiceUnavailable":       {passing: true},
	"InternalServerError":      {passing: true},
	"InternalServerException":  {passing: true},
	// CodeBuild: over the account's build limits; builds already running will end.
	"AccountLimitExceededException": {capacity: true},

	"AccessDeniedException": {explain: "iac-ci's role may not make this call"},
	"AccessDenied":          {explain: "iac-ci's role may not make this call"},
	// CodeBuild
	"ResourceNotFoundException": {explain: "the CodeBuild project does not exist in this account and region", keepMessage: true},
	"InvalidInputException":     {explain: "CodeBuild refused the build's settings"},
	// SSM
	"InvalidDocument":         {explain: "the SSM document does not exist in this account and region, or is not a Command document", keepMessage: true},
	"InvalidDocumentVersion":  {explain: "the SSM document has no such version"},
	"InvalidParameters":       {explain: "the SSM document refused the parameters (it is not the iac-ci-run-commands document, or an older version of it)"},
	"InvalidInstanceId":       {explain: "an instance of ssm_targets is not managed by SSM, not running, or not in this region", keepMessage: true},
	"DuplicateInstanceId":     {explain: "ssm_targets names an instance twice"},
	"InvalidRole":             {explain: "the command's service role is not valid"},
	"UnsupportedPlatformType": {explain: "an instance of ssm_targets runs a platform the document does not support"},
	"MaxDocumentSizeExceeded": {explain: "the command is larger than SSM accepts"},
}

// launchError is the one place a launch's AWS error becomes the launcher's: a refusal wraps
// consumers.ErrLaunchRefused. No returned text quotes the request.
func launchError(call string, err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		// Transport errors (no answer, a cancelled context) carry the endpoint, not the request's
		// body; they pass, or end with the context.
		return fmt.Errorf("%s: %w", call, err)
	}
	code := apiErr.ErrorCode()
	f, known := errorCodes[code]
	if !known {
		f.passing = apiErr.ErrorFault() == smithy.FaultServer || httpStatus(err) >= 500
	}
	text := code
	if f.explain != "" {
		text += ": " + f.explain
	}
	if f.keepMessage && apiErr.ErrorMessage() != "" {
		text += " (" + apiErr.ErrorMessage() + ")"
	}
	switch {
	case f.capacity:
		return fmt.Errorf("%s: %s: %w", call, text, consumers.ErrAtCapacity)
	case f.passing:
		return fmt.Errorf("%s: %s", call, text)
	}
	return fmt.Errorf("%s refused: %s: %w", call, text, consumers.ErrLaunchRefused)
}

// httpStatus is the HTTP status of an error's answer, or 0.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}
