package awsbackend

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/iac-ci/iac-ci/secrets/awssecrets"
)

// The variables that configure the AWS backend. Every name has a default derived from
// IAC_CI_PREFIX, so one variable moves a whole deployment (a second stack in one account, a
// test on a shared emulator).
const (
	EnvPrefix           = "IAC_CI_PREFIX"            // default "iac-ci"
	EnvQueuePrefix      = "IAC_CI_QUEUE_PREFIX"      // default "<prefix>-": queues are <queue prefix><role>
	EnvOrdersTable      = "IAC_CI_ORDERS_TABLE"      // default "<prefix>-orders"
	EnvEventsTable      = "IAC_CI_EVENTS_TABLE"      // default "<prefix>-events"
	EnvInternalBucket   = "IAC_CI_INTERNAL_BUCKET"   // default "<prefix>-internal"
	EnvDoneBucket       = "IAC_CI_DONE_BUCKET"       // default "<prefix>-done"
	EnvRunKeyPrefix     = "IAC_CI_RUN_KEY_PREFIX"    // default "/<prefix>/run-keys"
	EnvCodeBuildProject = "IAC_CI_CODEBUILD_PROJECT" // default "<prefix>-worker"
	EnvSSMDocument      = "IAC_CI_SSM_DOCUMENT"      // default "<prefix>-run-commands"
	// EnvOrderRoleARN is the role whose credentials orders' commands run with; unset, orders get
	// no AWS credentials. Never one of iac-ci's own roles, which read every run's bundle and key.
	EnvOrderRoleARN = "IAC_CI_ORDER_ROLE_ARN"
	// EnvS3PathStyle addresses buckets in the URL path rather than the host name; it defaults to
	// true when AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3 is set (emulators need it), else false.
	EnvS3PathStyle = "IAC_CI_S3_PATH_STYLE"

	// The SDK's own variables, read by its config loader; named here for messages.
	EnvRegion     = "AWS_REGION"
	EnvEndpoint   = "AWS_ENDPOINT_URL"
	EnvEndpointS3 = "AWS_ENDPOINT_URL_S3"
)

// DefaultPrefix is the prefix of every name when IAC_CI_PREFIX is unset.
const DefaultPrefix = "iac-ci"

// ErrConfig is wrapped by every configuration error; the message names the variable to fix.
var ErrConfig = errors.New("aws backend configuration")

// Config names every AWS resource iac-ci uses and how to reach them.
type Config struct {
	Prefix           string
	QueuePrefix      string
	OrdersTable      string
	EventsTable      string
	InternalBucket   string
	DoneBucket       string
	RunKeyPrefix     string
	CodeBuildProject string
	SSMDocument      string
	OrderRoleARN     string
	S3PathStyle      bool
	// Endpoint is AWS_ENDPOINT_URL as the SDK will read it, kept for messages ("" on AWS).
	Endpoint string
}

// ConfigError lists every problem with the configuration, each naming its variable.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "aws backend configuration: " + strings.Join(e.Problems, "; ")
}

// Is makes errors.Is(err, ErrConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// Name rules, from each service's API reference. Bucket names are the strictest, and the
// default bucket names derive from the prefix, so the prefix follows them.
var (
	prefixPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	queuePrefixPattern = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)
	tablePattern       = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
	bucketPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	projectPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{1,254}$`)
	documentPattern    = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,128}$`)
	roleARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`)
)

// maxQueueName is SQS's limit on a queue name.
const maxQueueName = 80

// FromEnv reads the configuration from IAC_CI_* variables through getenv, filling defaults
// from IAC_CI_PREFIX. Every problem is reported, each naming its variable.
func FromEnv(getenv func(string) string) (Config, error) {
	var problems []string
	bad := func(variable, value, want string) {
		problems = append(problems, fmt.Sprintf("%s=%q: %s", variable, value, want))
	}
	get := func(variable, def string) string {
		if v := strings.TrimSpace(getenv(variable)); v != "" {
			return v
		}
		return def
	}
	c := Config{Prefix: get(EnvPrefix, DefaultPrefix)}
	if !prefixPattern.MatchString(c.Prefix) {
		bad(EnvPrefix, c.Prefix, "want 1 to 40 lower-case letters, digits or '-', starting with a letter or digit (bucket names derive from it)")
	}
	c.QueuePrefix = get(EnvQueuePrefix, c.Prefix+"-")
	c.OrdersTable = get(EnvOrdersTable, c.Prefix+"-orders")
	c.EventsTable = get(EnvEventsTable, c.Prefix+"-events")
	c.InternalBucket = get(EnvInternalBucket, c.Prefix+"-internal")
	c.DoneBucket = get(EnvDoneBucket, c.Prefix+"-done")
	c.RunKeyPrefix = strings.TrimSuffix(get(EnvRunKeyPrefix, "/"+c.Prefix+"/run-keys"), "/")
	c.CodeBuildProject = get(EnvCodeBuildProject, c.Prefix+"-worker")
	c.SSMDocument = get(EnvSSMDocument, c.Prefix+"-run-commands")
	c.Endpoint = getenv(EnvEndpoint)
	c.OrderRoleARN = get(EnvOrderRoleARN, "")
	if c.OrderRoleARN != "" && !roleARNPattern.MatchString(c.OrderRoleARN) {
		bad(EnvOrderRoleARN, c.OrderRoleARN, "want a role ARN: arn:aws:iam::<account>:role/<name>")
	}

	longest := 0
	for _, s := range queueSpecs() {
		longest = max(longest, len(s.Name))
	}
	if !queuePrefixPattern.MatchString(c.QueuePrefix) || len(c.QueuePrefix)+longest > maxQueueName {
		bad(EnvQueuePrefix, c.QueuePrefix, fmt.Sprintf("want letters, digits, '-' or '_', at most %d characters", maxQueueName-longest))
	}
	for _, t := range []struct{ variable, value string }{{EnvOrdersTable, c.OrdersTable}, {EnvEventsTable, c.EventsTable}} {
		if !tablePattern.MatchString(t.value) {
			bad(t.variable, t.value, "want 3 to 255 letters, digits, '_', '-' or '.'")
		}
	}
	if c.OrdersTable == c.EventsTable {
		bad(EnvEventsTable, c.EventsTable, "must differ from "+EnvOrdersTable)
	}
	for _, b := range []struct{ variable, value string }{{EnvInternalBucket, c.InternalBucket}, {EnvDoneBucket, c.DoneBucket}} {
		if !bucketPattern.MatchString(b.value) || strings.Contains(b.value, "..") {
			bad(b.variable, b.value, "want a bucket name: 3 to 63 lower-case letters, digits, '.' or '-'")
		}
	}
	if c.InternalBucket == c.DoneBucket {
		// The done bucket is readable without access to order data; one bucket cannot be both.
		bad(EnvDoneBucket, c.DoneBucket, "must differ from "+EnvInternalBucket)
	}
	if _, err := awssecrets.NewKeys(nil, c.RunKeyPrefix); err != nil {
		bad(EnvRunKeyPrefix, c.RunKeyPrefix, "want a parameter path such as /iac-ci/run-keys")
	}
	if !projectPattern.MatchString(c.CodeBuildProject) {
		bad(EnvCodeBuildProject, c.CodeBuildProject, "want 2 to 255 letters, digits, '-' or '_', starting with a letter or digit")
	}
	if !documentPattern.MatchString(c.SSMDocument) {
		bad(EnvSSMDocument, c.SSMDocument, "want 3 to 128 letters, digits, '_', '-' or '.'")
	}
	c.S3PathStyle = c.Endpoint != "" || getenv(EnvEndpointS3) != ""
	if v := strings.TrimSpace(getenv(EnvS3PathStyle)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(EnvS3PathStyle, v, "want true or false")
		}
		c.S3PathStyle = b
	}
	if len(problems) > 0 {
		return Config{}, &ConfigError{Problems: problems}
	}
	return c, nil
}

// LoadAWS loads the SDK's configuration the SDK's own way (AWS_REGION, AWS_PROFILE, credentials,
// AWS_ENDPOINT_URL, ...) and refuses one without a region, naming AWS_REGION. Credentials are
// resolved lazily by the SDK; Check makes the first call, so missing ones fail at start too.
func LoadAWS(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration (AWS_PROFILE, AWS_CONFIG_FILE, AWS_* variables): %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, &ConfigError{Problems: []string{
			EnvRegion + " is not set and no profile names a region: set it to the region of the resources, e.g. AWS_REGION=us-east-1"}}
	}
	return cfg, nil
}
