package awslaunch_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/codebuild"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/domain"
)

// refusingClients answer every call with one error: the answers the emulator cannot be made to
// give (throttling, a 5xx, a validation message that quotes the request).
type refusingClients struct{ err error }

func (c refusingClients) StartBuild(context.Context, *codebuild.StartBuildInput, ...func(*codebuild.Options)) (*codebuild.StartBuildOutput, error) {
	return nil, c.err
}

func (c refusingClients) SendCommand(context.Context, *ssm.SendCommandInput, ...func(*ssm.Options)) (*ssm.SendCommandOutput, error) {
	return nil, c.err
}

func TestLaunchErrorsArePassingAtCapacityOrRefused(t *testing.T) {
	t.Parallel()
	const leaked = "https://bucket.s3.amazonaws.com/callbacks/x?X-Amz-Signature=abc"
	status503 := &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 503}},
		Err: &smithy.GenericAPIError{Code: "SomethingNew", Message: "try later"}}
	cases := []struct {
		name     string
		err      error
		refused  bool
		want     string // in the error
		capacity bool   // the target turns work away until some ends
	}{
		{"throttled", &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}, false, "ThrottlingException", true},
		{"build limit", &smithy.GenericAPIError{Code: "AccountLimitExceededException", Message: "Cannot have more than 60 builds in queue for the account"},
			false, "AccountLimitExceededException", true},
		{"too many requests", &smithy.GenericAPIError{Code: "TooManyRequestsException"}, false, "TooManyRequestsException", true},
		{"unknown server fault", &smithy.GenericAPIError{Code: "Oops", Fault: smithy.FaultServer}, false, "Oops", false},
		{"unknown code with a 503", status503, false, "SomethingNew", false},
		{"no answer", errors.New("dial tcp: connection refused"), false, "connection refused", false},
		{"no project", &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "Project cannot be found: arn:aws:codebuild:x"},
			true, "the CodeBuild project does not exist in this account and region (Project cannot be found: arn:aws:codebuild:x)", false},
		{"no document", &smithy.GenericAPIError{Code: "InvalidDocument"}, true, "the SSM document does not exist", false},
		{"validation quoting the request", &smithy.GenericAPIError{Code: "InvalidInputException", Message: "Value '" + leaked + "' is too long"},
			true, "InvalidInputException: CodeBuild refused the build's settings", false},
		{"parameters refused", &smithy.GenericAPIError{Code: "InvalidParameters", Message: "Parameter " + leaked + " fails pattern"},
			true, "the SSM document refused the parameters", false},
		{"unknown client fault", &smithy.GenericAPIError{Code: "NewClientError", Message: leaked, Fault: smithy.FaultClient}, true, "NewClientError", false},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDeniedException", Message: leaked}, true, "iac-ci's role may not make this call", false},
	}
	launch := consumers.Launch{RunID: "r1", OrderNum: 1, Attempt: 1, Timeout: 60, BundleURL: leaked, CallbackURL: leaked, LogURL: leaked,
		RunKeyParameter: "/iac-ci/run-keys/r1", SSMDocument: "iac-ci-run-commands",
		SSMTargets: &domain.SSMTargets{InstanceIDs: []string{"i-0aaaaaaaaaaaaaaa1"}}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			starters := map[string]consumers.Starter{
				"codebuild": &awslaunch.CodeBuild{Client: refusingClients{c.err}, Project: "iac-ci-worker"},
				"ssm":       &awslaunch.SSM{Client: refusingClients{c.err}},
			}
			for name, s := range starters {
				_, err := s.Start(t.Context(), launch)
				if err == nil {
					t.Fatalf("%s: got no error", name)
				}
				if errors.Is(err, consumers.ErrLaunchRefused) != c.refused {
					t.Fatalf("%s: %v: refused %v, want %v", name, err, !c.refused, c.refused)
				}
				if errors.Is(err, consumers.ErrAtCapacity) != c.capacity {
					t.Fatalf("%s: %v: at capacity %v, want %v", name, err, !c.capacity, c.capacity)
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Fatalf("%s: got %q, want it to say %q", name, err, c.want)
				}
				if strings.Contains(err.Error(), "X-Amz-Signature") {
					t.Fatalf("%s: the error quotes a presigned URL: %v", name, err)
				}
			}
		})
	}
}

func TestStartRefusesLaunchWithoutRunKeyOrTargets(t *testing.T) {
	t.Parallel()
	ok := refusingClients{errors.New("not called")}
	full := consumers.Launch{RunID: "r1", OrderNum: 1, Attempt: 1, Timeout: 60, RunKeyParameter: "/k/r1",
		SSMDocument: "iac-ci-run-commands", SSMTargets: &domain.SSMTargets{Tags: map[string]string{"role": "web"}}}
	noKey, noTargets := full, full
	noKey.RunKeyParameter = ""
	noTargets.SSMTargets = &domain.SSMTargets{}
	for name, c := range map[string]struct {
		s consumers.Starter
		l consumers.Launch
	}{
		"codebuild without run key": {&awslaunch.CodeBuild{Client: ok, Project: "p"}, noKey},
		"ssm without run key":       {&awslaunch.SSM{Client: ok}, noKey},
		"ssm without targets":       {&awslaunch.SSM{Client: ok}, noTargets},
	} {
		if _, err := c.s.Start(t.Context(), c.l); !errors.Is(err, consumers.ErrLaunchRefused) {
			t.Fatalf("%s: got %v, want a refusal", name, err)
		}
	}
}

func TestTimeoutsFollowTheOrder(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		timeout int
		minutes int32
		seconds int
	}{
		{1, 5, 61},          // CodeBuild's least build timeout is 5 minutes
		{240, 5, 300},       // 300 s is exactly 5 minutes
		{241, 6, 301},       // rounded up
		{28800, 481, 28860}, // codebuild's limit for an order, plus the margin
		{172800, 2160, 172800},
	} {
		if got := awslaunch.BuildMinutes(c.timeout); got != c.minutes {
			t.Fatalf("BuildMinutes(%d): got %d, want %d", c.timeout, got, c.minutes)
		}
		if got := awslaunch.ExecutionSeconds(c.timeout); got != c.seconds {
			t.Fatalf("ExecutionSeconds(%d): got %d, want %d", c.timeout, got, c.seconds)
		}
	}
}
