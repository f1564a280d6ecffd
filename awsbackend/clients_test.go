package awsbackend

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// inFlight records the most requests it ever saw at once.
type inFlight struct {
	now, most atomic.Int64
}

func (f *inFlight) enter() {
	n := f.now.Add(1)
	for {
		m := f.most.Load()
		if n <= m || f.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	f.now.Add(-1)
}

// fakeAWS answers every SDK request with an empty JSON document, after a pause.
type fakeAWS struct{ f *inFlight }

func (a fakeAWS) Do(req *http.Request) (*http.Response, error) {
	a.f.enter()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

// With Serialize, the SDK clients and the presigned-URL client share one slot: one request at
// a time. Without it they run at once. Every request is counted either way.
func TestSerializeLetsOneRequestThroughAtATime(t *testing.T) {
	t.Parallel()
	for _, serialize := range []bool{true, false} {
		f := &inFlight{}
		presigned := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.enter() }))
		defer presigned.Close()
		cfg := aws.Config{Region: "us-east-1", HTTPClient: fakeAWS{f}, BaseEndpoint: aws.String("http://aws.invalid"),
			Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
		calls := &Calls{}
		clients := NewClients(cfg, Config{}, ClientOptions{Serialize: serialize, Calls: calls})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if i%2 == 0 {
					if _, err := clients.SQS.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String("q")}); err != nil {
						t.Errorf("GetQueueUrl: %v", err)
					}
					return
				}
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, presigned.URL+"/result.json", strings.NewReader("{}"))
				resp, err := clients.HTTP.Do(req)
				if err != nil {
					t.Errorf("PUT to the presigned URL: %v", err)
					return
				}
				resp.Body.Close()
			})
		}
		wg.Wait()
		if most := f.most.Load(); (most == 1) != serialize {
			t.Errorf("serialize %v: at most %d requests were in flight at once", serialize, most)
		}
		r := calls.Report()
		if r.Calls["sqs.GetQueueUrl"] != 4 || r.Calls[CallPresignedPut] != 4 || r.Total != 8 {
			t.Errorf("serialize %v: counted %v (total %d), want 4 GetQueueUrl and 4 presigned PUTs", serialize, r.Calls, r.Total)
		}
	}
}

// emptyQueue has no messages until ready is closed, and counts receives.

// Presigning makes no request, so it costs nothing; the request made with the URL is counted.
func TestPresigningIsNotACall(t *testing.T) {
	t.Parallel()
	calls := &Calls{}
	cfg := aws.Config{Region: "us-east-1", HTTPClient: fakeAWS{&inFlight{}}, BaseEndpoint: aws.String("http://aws.invalid"),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
	clients := NewClients(cfg, Config{S3PathStyle: true}, ClientOptions{Calls: calls})
	if _, err := s3.NewPresignClient(clients.S3).PresignPutObject(t.Context(),
		&s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}); err != nil {
		t.Fatalf("presign: %v", err)
	}
	if r := calls.Report(); r.Total != 0 {
		t.Errorf("presigning counted %v", r.Calls)
	}
	if _, err := clients.SQS.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String("q")}); err != nil {
		t.Fatalf("GetQueueUrl: %v", err)
	}
	if r := calls.Report(); r.Total != 1 {
		t.Errorf("one call counted as %v", r.Calls)
	}
}

func TestUnitsFollowWhatDynamoDBAndKMSBill(t *testing.T) {
	t.Parallel()
	strong := aws.Bool(true)
	cases := []struct {
		name        string
		in, out     any
		write, read float64
		kms         int64
	}{
		{"update", &dynamodb.UpdateItemInput{}, nil, 1, 0, 0},
		{"transaction of two", &dynamodb.TransactWriteItemsInput{TransactItems: make([]dbtypes.TransactWriteItem, 2)}, nil, 4, 0, 0},
		{"batch write of 25", &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dbtypes.WriteRequest{"t": make([]dbtypes.WriteRequest, 25)}}, nil, 25, 0, 0},
		{"strong get", &dynamodb.GetItemInput{ConsistentRead: strong}, nil, 0, 1, 0},
		{"eventual get", &dynamodb.GetItemInput{}, nil, 0, 0.5, 0},
		{"batch get of 3", &dynamodb.BatchGetItemInput{RequestItems: map[string]dbtypes.KeysAndAttributes{"t": {Keys: make([]map[string]dbtypes.AttributeValue, 3), ConsistentRead: strong}}}, nil, 0, 3, 0},
		{"query of 9 items", &dynamodb.QueryInput{ConsistentRead: strong}, &dynamodb.QueryOutput{ScannedCount: 9}, 0, 3, 0},
		{"empty index query", &dynamodb.QueryInput{}, &dynamodb.QueryOutput{}, 0, 0.5, 0},
		{"run key put", &ssm.PutParameterInput{Type: ssmtypes.ParameterTypeSecureString}, nil, 0, 0, 1},
		{"run key get", &ssm.GetParameterInput{WithDecryption: strong}, nil, 0, 0, 1},
		{"secret", &secretsmanager.GetSecretValueInput{}, nil, 0, 0, 1},
		{"queue", &sqs.SendMessageBatchInput{}, nil, 0, 0, 0},
	}
	for _, tc := range cases {
		w, r, k := units(tc.in, tc.out)
		if w != tc.write || r != tc.read || k != tc.kms {
			t.Errorf("%s: got %v write, %v read, %d kms; want %v, %v, %d", tc.name, w, r, k, tc.write, tc.read, tc.kms)
		}
	}
}
