package awsbackend

import (
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/codebuild"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/iac-ci/iac-ci/internal/awscalls"
)

// Clients are the SDK clients of every service iac-ci calls, built from one aws.Config.
type Clients struct {
	SQS            *sqs.Client
	DynamoDB       *dynamodb.Client
	S3             *s3.Client
	SSM            *ssm.Client
	SecretsManager *secretsmanager.Client
	CodeBuild      *codebuild.Client
	STS            *sts.Client
	// HTTP reaches presigned URLs (a worker delivering its result.json), serialized and counted
	// like the SDK clients' own requests.
	HTTP *http.Client
	// Config is the aws.Config the clients were built from, with the options applied.
	Config aws.Config
}

// ClientOptions shape the clients.
type ClientOptions struct {
	// Serialize lets only one HTTP request to AWS be in flight at a time, for emulators that are
	// not safe under concurrent requests, such as moto_server (whose DynamoDB restores a copy
	// of a whole table when a transaction fails, undoing writes made meanwhile). It also turns
	// the consumers' long polls into short polls (see Open), since a long poll would hold the
	// one slot for its whole wait. Never needed against AWS.
	Serialize bool
	// Calls, when set, counts every call.
	Calls *Calls
}

// NewClients builds the clients of c from cfg.
func NewClients(cfg aws.Config, c Config, o ClientOptions) *Clients {
	cfg = cfg.Copy()
	var lock *sync.Mutex
	if o.Serialize {
		lock = &sync.Mutex{}
		var next aws.HTTPClient = cfg.HTTPClient
		if next == nil {
			next = awshttp.NewBuildableClient()
		}
		cfg.HTTPClient = &serialClient{next: next, lock: lock}
	}
	if o.Calls != nil {
		cfg.APIOptions = append(cfg.APIOptions, o.Calls.middleware, o.Calls.estimateUnits)
	}
	var transport http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	transport = &presignedTransport{next: transport, lock: lock, calls: o.Calls}
	return &Clients{
		SQS:      sqs.NewFromConfig(cfg),
		DynamoDB: dynamodb.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(so *s3.Options) {
			so.UsePathStyle = c.S3PathStyle
			// Emulators send no response checksums; the SDK would log each skipped validation.
			so.DisableLogOutputChecksumValidationSkipped = true
		}),
		SSM:            ssm.NewFromConfig(cfg),
		SecretsManager: secretsmanager.NewFromConfig(cfg),
		CodeBuild:      codebuild.NewFromConfig(cfg),
		STS:            sts.NewFromConfig(cfg),
		HTTP:           &http.Client{Transport: transport, Timeout: 30 * time.Second},
		Config:         cfg,
	}
}

// serialClient lets one request through at a time. The lock is held until the response's
// headers arrive: the emulator has done the request's work by then.
type serialClient struct {
	next aws.HTTPClient
	lock *sync.Mutex
}

func (s *serialClient) Do(req *http.Request) (*http.Response, error) {
	s.lock.Lock()
	defer s.lock.Unlock()
	return s.next.Do(req)
}

// presignedTransport carries requests to presigned URLs, which bypass the SDK and so its
// middleware: it takes the same lock and counts them.
type presignedTransport struct {
	next  http.RoundTripper
	lock  *sync.Mutex
	calls *Calls
}

func (p *presignedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.calls != nil {
		p.calls.presigned(req.Method)
	}
	if p.lock != nil {
		p.lock.Lock()
		defer p.lock.Unlock()
	}
	return p.next.RoundTrip(req)
}

// Calls counts the AWS calls of one process: the SDK clients' calls by service and operation
// (internal/awscalls, counted once per call whatever the retries), requests to presigned URLs,
// and receives that returned no message. Its zero value is ready to use.
type Calls struct {
	SDK awscalls.Counter

	presignedPut, presignedGet, emptyReceives atomic.Int64

	mu                    sync.Mutex
	writeUnits, readUnits float64 // DynamoDB request units, estimated (see units.go)
	kmsRequests           int64   // made on iac-ci's behalf by SSM and Secrets Manager, estimated
}

// Names of the counts that are not SDK operations.
const (
	CallPresignedPut = "s3.PutObject(presigned)"
	CallPresignedGet = "s3.GetObject(presigned)"
)

// presignStep is the middleware the SDK puts on the stack of an operation it presigns rather
// than sends (s3.PresignClient).
const presignStep = "AsIsPresigningMiddleware"

// middleware counts the operation on stack unless it is only presigned: presigning makes no
// request; the request made later with the URL is counted by the presigned-URL client.
func (c *Calls) middleware(stack *middleware.Stack) error {
	if _, presign := stack.Initialize.Get(presignStep); presign {
		return nil
	}
	return c.SDK.Middleware(stack)
}

func (c *Calls) presigned(method string) {
	if method == http.MethodGet {
		c.presignedGet.Add(1)
	} else {
		c.presignedPut.Add(1)
	}
}

// emptyReceive counts a receive that returned no message; a nil Calls counts nothing.
func (c *Calls) emptyReceive() {
	if c != nil {
		c.emptyReceives.Add(1)
	}
}

// CallReport is a snapshot of Calls, as GET /debug/aws-calls answers it.
type CallReport struct {
	// Calls counts every request by "service.Operation", presigned requests included.
	Calls map[string]int64 `json:"calls"`
	Total int64            `json:"total"`
	// EmptyReceives counts the sqs.ReceiveMessage calls that returned no message (idle polls);
	// they are part of Calls and Total.
	EmptyReceives int64 `json:"empty_receives"`
	// Estimated units of what DynamoDB and KMS bill by unit rather than by call.
	DynamoDBWriteUnits float64 `json:"dynamodb_write_units"`
	DynamoDBReadUnits  float64 `json:"dynamodb_read_units"`
	KMSRequests        int64   `json:"kms_requests"`
}

// Report returns the counts so far.
func (c *Calls) Report() CallReport {
	r := CallReport{Calls: map[string]int64{}}
	for k, n := range c.SDK.Snapshot() {
		r.Calls[k] = n
	}
	if n := c.presignedPut.Load(); n > 0 {
		r.Calls[CallPresignedPut] = n
	}
	if n := c.presignedGet.Load(); n > 0 {
		r.Calls[CallPresignedGet] = n
	}
	for _, n := range r.Calls {
		r.Total += n
	}
	r.EmptyReceives = c.emptyReceives.Load()
	c.mu.Lock()
	r.DynamoDBWriteUnits, r.DynamoDBReadUnits, r.KMSRequests = c.writeUnits, c.readUnits, c.kmsRequests
	c.mu.Unlock()
	return r
}

// Operations returns the report's keys, sorted.
func (r CallReport) Operations() []string {
	ops := make([]string, 0, len(r.Calls))
	for k := range r.Calls {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	return ops
}
