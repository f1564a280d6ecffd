package tests

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"gopkg.in/yaml.v3"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/awstest"
)

// The AWS tests run iac-ci against this package's moto_server, started on first use by
// internal/awstest and killed with the test binary (it is started with a parent-death signal).
// Each test has a stack of its own: every resource named from a fresh IAC_CI_PREFIX.

// awsStack is one iac-ci deployment on the emulator, made by `iac-ci aws-setup`.
type awsStack struct {
	t         *testing.T
	prefix    string
	env       []string // for iac-ci processes
	cfg       aws.Config
	codeBuild *fakeCodeBuild
}

func newAWSStack(t *testing.T, extraEnv ...string) *awsStack {
	t.Helper()
	endpoint := awstest.Endpoint(t)
	st := &awsStack{t: t, prefix: "e2e" + domain.NewTraceID(), cfg: awstest.Config(t)}
	st.env = []string{
		"AWS_ENDPOINT_URL=" + endpoint, "AWS_REGION=" + awstest.Region,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_SESSION_TOKEN=",
		"AWS_PROFILE=", "AWS_EC2_METADATA_DISABLED=true", "IAC_CI_PREFIX=" + st.prefix,
	}
	st.env = append(st.env, extraEnv...)
	st.codeBuild = startFakeCodeBuild(t, st.prefix+"-worker", st.env)
	st.env = append(st.env, "AWS_ENDPOINT_URL_CODEBUILD="+st.codeBuild.url)
	r := iacci(t, st.env, "aws-setup")
	if r.code != 0 {
		t.Fatalf("iac-ci aws-setup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, st.prefix+"-results") || !strings.Contains(r.stdout, "every resource is ready") {
		t.Fatalf("iac-ci aws-setup did not report the results queue:\n%s", r.stdout)
	}
	return st
}

// serve starts `iac-ci serve --backend aws` on the stack, one AWS request at a time as moto
// needs.
func (st *awsStack) serve() *server {
	return startServer(st.t, st.t.TempDir(), st.env, "--backend", "aws", "--aws-serialize", "--webhook-secret", secret)
}

// waitAWSRun is waitRun at a pace that leaves the emulator to the engine: each status read is
// AWS calls, and the server makes them one at a time.
func waitAWSRun(t *testing.T, s *server, runID string, d time.Duration) runView {
	t.Helper()
	deadline := time.Now().Add(d)
	var last runView
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		resp, err := get(s.url + "/runs/" + runID)
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		last = parseView(t, string(data))
		if !last.Status.Terminal() {
			continue
		}
		done, err := get(s.url + "/done/" + runID)
		if err == nil {
			done.Body.Close()
			if done.StatusCode == http.StatusOK {
				return last
			}
		}
	}
	t.Fatalf("run %s did not end within %s; last seen %+v\n%s", runID, d, last, s.log())
	return last
}

// postJob posts a job and returns its run id.
func postJob(t *testing.T, s *server, body []byte) string {
	t.Helper()
	code, acc := s.post("/webhook", body, secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("POST /webhook: %d %v", code, acc)
	}
	id, _ := acc["run_id"].(string)
	if id == "" {
		t.Fatalf("POST /webhook answered no run_id: %v", acc)
	}
	return id
}

// fakeCodeBuild plays CodeBuild's StartBuild (AWS_ENDPOINT_URL_CODEBUILD points the server's
// client at it): it answers as CodeBuild does and runs the build the buildspec describes,
// `iac-ci worker` with the build's environment, as a local process. moto accepts StartBuild but
// runs nothing, and a CodeBuild container cannot run here.
type fakeCodeBuild struct {
	t       *testing.T
	project string
	env     []string
	url     string

	mu     sync.Mutex
	bodies [][]byte // every StartBuild request, as sent
	out    lockedBuffer
	builds sync.WaitGroup
}

func startFakeCodeBuild(t *testing.T, project string, env []string) *fakeCodeBuild {
	f := &fakeCodeBuild{t: t, project: project, env: env}
	srv := httptest.NewServer(f)
	f.url = srv.URL
	t.Cleanup(func() { srv.Close(); f.builds.Wait() })
	return f
}

func (f *fakeCodeBuild) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	fail := func(code int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Header.Get("X-Amz-Target") != "CodeBuild_20161006.StartBuild" {
		fail(http.StatusBadRequest, "InvalidInputException", "this fake plays StartBuild only")
		return
	}
	var in struct {
		ProjectName string `json:"projectName"`
		Env         []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"environmentVariablesOverride"`
		Buildspec string `json:"buildspecOverride"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fail(http.StatusBadRequest, "InvalidInputException", err.Error())
		return
	}
	if in.ProjectName != f.project {
		fail(http.StatusBadRequest, "ResourceNotFoundException", "Project cannot be found: "+in.ProjectName)
		return
	}
	if !strings.Contains(in.Buildspec, "iac-ci worker") {
		fail(http.StatusBadRequest, "InvalidInputException", "the buildspec does not run iac-ci worker")
		return
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.mu.Unlock()
	cmd := exec.Command(binary, "worker", "--log-format", "json")
	cmd.Env = append(os.Environ(), f.env...)
	for _, v := range in.Env {
		cmd.Env = append(cmd.Env, v.Name+"="+v.Value)
	}
	cmd.Stdout, cmd.Stderr = &f.out, &f.out
	if err := cmd.Start(); err != nil {
		fail(http.StatusInternalServerError, "InternalFailure", err.Error())
		return
	}
	f.builds.Go(func() { _ = cmd.Wait() })
	id := f.project + ":" + domain.NewTraceID()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"build": map[string]any{"id": id, "projectName": f.project, "buildStatus": "IN_PROGRESS"}})
}

func (f *fakeCodeBuild) started() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies)
}

// awsExample reads an example job and makes it runnable on AWS: local_path code (embedded only)
// moves to a zip in S3, as s3_location.
func (st *awsStack) awsExample(name string) []byte {
	t := st.t
	data, err := os.ReadFile(filepath.Join(repoRoot, "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	if err := yaml.Unmarshal(data, &job); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	orders, _ := job["orders"].([]any)
	for _, o := range orders {
		order := o.(map[string]any)
		dir, ok := order["local_path"].(string)
		if !ok {
			continue
		}
		delete(order, "local_path")
		order["s3_location"] = st.uploadZip(filepath.Join(repoRoot, "examples", dir))
	}
	out, err := yaml.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// uploadZip zips a folder's files into a code bucket of the stack and returns its s3:// location.
func (st *awsStack) uploadZip(dir string) string {
	t := st.t
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(st.cfg, func(o *s3.Options) { o.UsePathStyle = true })
	bucket, key := st.prefix+"-code", filepath.Base(dir)+".zip"
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		var owned interface{ ErrorCode() string }
		if !errors.As(err, &owned) || owned.ErrorCode() != "BucketAlreadyOwnedByYou" {
			t.Fatalf("create code bucket: %v", err)
		}
	}
	if _, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatalf("upload code: %v", err)
	}
	return "s3://" + bucket + "/" + key
}

// The examples end on AWS as they end embedded: every order in the same state, the run in the
// same state. Orders keep their targets: lambda orders run inside the server, codebuild orders
// are launched through StartBuild.
func TestAWSExamplesEndAsEmbedded(t *testing.T) {
	t.Parallel()
	st := newAWSStack(t)
	s := st.serve()
	examples := []string{"diamond.yaml", "blocked-failure.yaml", "tolerated-failure.yaml"}
	runs := map[string]string{}
	for _, ex := range examples {
		runs[ex] = postJob(t, s, st.awsExample(ex))
	}
	embedded := map[string]runView{}
	for _, ex := range examples {
		r := iacci(t, nil, "run", "--json", filepath.Join("examples", ex))
		embedded[ex] = parseView(t, r.stdout)
	}
	codebuildOrders := 0
	for _, ex := range examples {
		got := waitAWSRun(t, s, runs[ex], 3*time.Minute)
		want := embedded[ex]
		if got.Status != want.Status {
			t.Errorf("%s: run %s on AWS, %s embedded", ex, got.Status, want.Status)
		}
		gotOrders, wantOrders := orderStatuses(got), orderStatuses(want)
		if len(gotOrders) != len(wantOrders) || len(gotOrders) == 0 {
			t.Errorf("%s: orders %v on AWS, %v embedded", ex, gotOrders, wantOrders)
		}
		for name, w := range wantOrders {
			if gotOrders[name] != w {
				t.Errorf("%s: order %s %s on AWS, %s embedded", ex, name, gotOrders[name], w)
			}
		}
		for _, o := range got.Orders {
			if o.Target == domain.TargetCodeBuild && o.Status != domain.OrderSkipped {
				codebuildOrders++
			}
		}
	}
	if codebuildOrders == 0 || st.codeBuild.started() < codebuildOrders {
		t.Errorf("%d codebuild orders ran, CodeBuild was asked for %d builds", codebuildOrders, st.codeBuild.started())
	}
	// The diamond's plan ran on its code from S3.
	v := waitAWSRun(t, s, runs["diamond.yaml"], time.Second)
	for _, o := range v.Orders {
		if o.OrderName == "plan" && (o.Target != domain.TargetLambda || o.LogTail == "") {
			t.Errorf("plan: got %+v, want a lambda order with a log", o)
		}
	}
}

// A secret from Parameter Store and one from Secrets Manager reach the commands of a lambda and
// a codebuild order, are masked in their logs, and are found nowhere iac-ci keeps or sends data:
// not in any item of either table, any message left in any queue, any object of either bucket
// (zips opened), any StartBuild request, any log of the server or the workers. The run key
// parameter is gone once the run is finalized.
func TestAWSSecretsReachTheCommandsAndAreKeptNowhere(t *testing.T) {
	t.Parallel()
	st := newAWSStack(t)
	ctx := t.Context()
	dbPassword := "pw-" + domain.NewTraceID() + domain.NewTraceID()
	apiToken := "tok-" + domain.NewTraceID() + domain.NewTraceID()
	paramPath := "/" + st.prefix + "/db-password"
	secretName := st.prefix + "/api-token"
	ssmClient := ssm.NewFromConfig(st.cfg)
	if _, err := ssmClient.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(paramPath), Value: aws.String(dbPassword),
		Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatalf("put parameter: %v", err)
	}
	if _, err := secretsmanager.NewFromConfig(st.cfg).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(secretName), SecretString: aws.String(apiToken)}); err != nil {
		t.Fatalf("create secret: %v", err)
	}
	// The commands prove they saw the values by their hashes, so no value is in the job itself.
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	check := func(v, want, ok string) string {
		return fmt.Sprintf(`test "$(printf %%s "$%s" | sha256sum | cut -c1-64)" = %s && echo %s`, v, want, ok)
	}
	order := func(name, target string) map[string]any {
		return map[string]any{
			"order_name": name, "execution_target": target, "timeout": 60,
			"ssm_paths": []string{paramPath}, "secret_manager_paths": []string{secretName},
			"cmds": []string{
				"seq 1 2000", // a log longer than its tail, stored as an object of its own
				check("DB_PASSWORD", sum(dbPassword), "db-ok"),
				check("API_TOKEN", sum(apiToken), "token-ok"),
				`echo "db=$DB_PASSWORD token=$API_TOKEN"`,
			},
		}
	}
	job, _ := json.Marshal(map[string]any{"username": "secrets", "orders": []any{
		order("in-lambda", "lambda"), order("in-codebuild", "codebuild")}})

	s := st.serve()
	runID := postJob(t, s, job)
	v := waitAWSRun(t, s, runID, 3*time.Minute)
	if v.Status != domain.RunSucceeded {
		t.Fatalf("run %s: %+v\n%s", v.Status, v.Orders, s.log())
	}
	s3Client := s3.NewFromConfig(st.cfg, func(o *s3.Options) { o.UsePathStyle = true })
	internal := st.prefix + "-internal"
	for _, o := range v.Orders {
		if o.LogKey == "" {
			t.Fatalf("order %s has no log", o.OrderName)
		}
		log := getObject(t, s3Client, internal, o.LogKey)
		for _, want := range []string{"db-ok", "token-ok", "db=*** token=***"} {
			if !bytes.Contains(log, []byte(want)) {
				t.Errorf("log of %s lacks %q:\n%s", o.OrderName, want, log)
			}
		}
	}
	_, err := ssmClient.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/" + st.prefix + "/run-keys/" + runID)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ParameterNotFound" {
		t.Errorf("run key after finalization: got %v, want ParameterNotFound", err)
	}

	s.stop()
	places := st.everythingStored(t)
	places["server log"] = []byte(s.log())
	places["worker logs"] = []byte(st.codeBuild.out.String())
	st.codeBuild.mu.Lock()
	places["StartBuild requests"] = bytes.Join(st.codeBuild.bodies, []byte("\n"))
	st.codeBuild.mu.Unlock()
	if len(places["StartBuild requests"]) == 0 {
		t.Errorf("no StartBuild request was made: the codebuild order did not go through CodeBuild")
	}
	// The search must be able to find what is there: the secret's path is in the stored request.
	found := false
	for _, data := range places {
		found = found || bytes.Contains(data, []byte(paramPath))
	}
	if !found {
		t.Fatalf("the search found not even the parameter's path %s: it searches nothing", paramPath)
	}
	for where, data := range places {
		for _, secretValue := range []string{dbPassword, apiToken} {
			if bytes.Contains(data, []byte(secretValue)) {
				t.Errorf("a secret value is in %s", where)
			}
		}
	}
}

// An order's commands never hold iac-ci's own AWS credentials, in the worker Lambda function
// (whose route serve --backend aws runs in process) or in CodeBuild (iac-ci worker): they get the
// order role's, assumed through STS, or none at all.
func TestAWSOrdersNeverHoldIaCCIsCredentials(t *testing.T) {
	t.Parallel()
	const roleARN = "arn:aws:iam::123456789012:role/iac-ci-order"
	show := []string{`env | grep -E '^AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|CONTAINER_CREDENTIALS_[A-Z_]*)=' | sort | sed 's/^/env: /'`}
	job, _ := json.Marshal(map[string]any{"username": "creds", "orders": []any{
		map[string]any{"order_name": "in-lambda", "execution_target": "lambda", "timeout": 60, "cmds": show},
		map[string]any{"order_name": "in-codebuild", "execution_target": "codebuild", "timeout": 60, "cmds": show},
	}})
	for _, withRole := range []bool{true, false} {
		var extra []string
		if withRole {
			extra = []string{"IAC_CI_ORDER_ROLE_ARN=" + roleARN}
		}
		// The worker's own credentials, as Lambda and CodeBuild hand them over: in the
		// environment, or as the container credentials endpoint.
		extra = append(extra, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/worker-own")
		st := newAWSStack(t, extra...)
		s := st.serve()
		runID := postJob(t, s, job)
		v := waitAWSRun(t, s, runID, 3*time.Minute)
		if v.Status != domain.RunSucceeded {
			t.Fatalf("role %v: run %s: %+v\n%s", withRole, v.Status, v.Orders, s.log())
		}
		for _, o := range v.Orders {
			tail := o.LogTail
			for _, own := range []string{"AWS_SECRET_ACCESS_KEY=testing", "AWS_ACCESS_KEY_ID=testing", "worker-own"} {
				if strings.Contains(tail, own) {
					t.Errorf("role %v: %s: the commands saw the worker's own %q:\n%s", withRole, o.OrderName, own, tail)
				}
			}
			got := strings.Contains(tail, "env: AWS_ACCESS_KEY_ID=") && strings.Contains(tail, "env: AWS_SESSION_TOKEN=")
			if got != withRole {
				t.Errorf("role %v: %s: order credentials present %v, want %v:\n%s", withRole, o.OrderName, got, withRole, tail)
			}
		}
		// The codebuild order's history says which build ran it and where that keeps its log.
		launched := false
		for _, e := range s.history(runID) {
			launched = launched || (e.Type == domain.EventOrderLaunched && e.OrderName == "in-codebuild" &&
				strings.Contains(e.Details, "CloudWatch Logs group /aws/codebuild/"+st.prefix+"-worker"))
		}
		if !launched {
			t.Errorf("role %v: no launch of the codebuild order in its run's history: %+v", withRole, s.history(runID))
		}
		s.stop()
	}
}

func getObject(t *testing.T, client *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// everythingStored returns the stack's data by where it was found: every item of both tables,
// every message left in every queue (receiving them), and every object of both buckets, with the
// files inside each zip decompressed.
func (st *awsStack) everythingStored(t *testing.T) map[string][]byte {
	ctx := t.Context()
	places := map[string][]byte{}
	db := dynamodb.NewFromConfig(st.cfg)
	for _, table := range []string{st.prefix + "-orders", st.prefix + "-events"} {
		var buf bytes.Buffer
		pages := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
		items := 0
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				t.Fatalf("scan %s: %v", table, err)
			}
			for _, it := range page.Items {
				items++
				for k, v := range it {
					buf.WriteString(k + "=")
					writeAttribute(&buf, v)
					buf.WriteByte('\n')
				}
			}
		}
		if items == 0 {
			t.Fatalf("table %s is empty: the search would prove nothing", table)
		}
		places["table "+table] = buf.Bytes()
	}

	sq := sqs.NewFromConfig(st.cfg)
	list, err := sq.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(st.prefix + "-")})
	if err != nil || len(list.QueueUrls) < 10 {
		t.Fatalf("list queues: %v (%d queues)", err, len(list.QueueUrls))
	}
	for _, u := range list.QueueUrls {
		var buf bytes.Buffer
		for {
			out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(u), MaxNumberOfMessages: 10,
				VisibilityTimeout: 300})
			if err != nil {
				t.Fatalf("receive from %s: %v", u, err)
			}
			if len(out.Messages) == 0 {
				break
			}
			for _, m := range out.Messages {
				buf.WriteString(aws.ToString(m.Body) + "\n")
			}
		}
		places["queue "+u] = buf.Bytes()
	}

	s3c := s3.NewFromConfig(st.cfg, func(o *s3.Options) { o.UsePathStyle = true })
	for _, bucket := range []string{st.prefix + "-internal", st.prefix + "-done"} {
		list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		for _, obj := range list.Contents {
			key := aws.ToString(obj.Key)
			data := getObject(t, s3c, bucket, key)
			places["s3://"+bucket+"/"+key] = data
			if !strings.HasSuffix(key, ".zip") {
				continue
			}
			zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatalf("s3://%s/%s: %v", bucket, key, err)
			}
			for _, f := range zr.File {
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				content, _ := io.ReadAll(rc)
				rc.Close()
				places["s3://"+bucket+"/"+key+"!"+f.Name] = content
			}
		}
	}
	for _, want := range []string{"exec.zip", "stripped.zip", ".log", "result.json", "/done", "requests/"} {
		seen := false
		for where := range places {
			seen = seen || strings.Contains(where, want)
		}
		if !seen {
			t.Errorf("no stored object like %q to search", want)
		}
	}
	return places
}

// writeAttribute writes every string, number and binary inside a DynamoDB value.
func writeAttribute(buf *bytes.Buffer, v dbtypes.AttributeValue) {
	switch a := v.(type) {
	case *dbtypes.AttributeValueMemberS:
		buf.WriteString(a.Value)
	case *dbtypes.AttributeValueMemberN:
		buf.WriteString(a.Value)
	case *dbtypes.AttributeValueMemberB:
		buf.Write(a.Value)
	case *dbtypes.AttributeValueMemberSS:
		buf.WriteString(strings.Join(a.Value, ","))
	case *dbtypes.AttributeValueMemberNS:
		buf.WriteString(strings.Join(a.Value, ","))
	case *dbtypes.AttributeValueMemberBS:
		buf.Write(bytes.Join(a.Value, []byte(",")))
	case *dbtypes.AttributeValueMemberL:
		for _, e := range a.Value {
			writeAttribute(buf, e)
			buf.WriteByte(',')
		}
	case *dbtypes.AttributeValueMemberM:
		for k, e := range a.Value {
			buf.WriteString(k + ":")
			writeAttribute(buf, e)
			buf.WriteByte(',')
		}
	}
}

// Wrong configuration stops serve at its start with a message naming what to fix.
func TestAWSServeRefusesAMissingResourceOrRegion(t *testing.T) {
	t.Parallel()
	endpoint := awstest.Endpoint(t)
	base := []string{"AWS_ENDPOINT_URL=" + endpoint, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null", "AWS_DEFAULT_REGION="}
	cases := []struct {
		env  []string
		want string
	}{
		{[]string{"AWS_REGION=", "IAC_CI_PREFIX=nowhere"}, "AWS_REGION"},
		{[]string{"AWS_REGION=us-east-1", "IAC_CI_PREFIX=never-set-up-" + domain.NewTraceID()}, "IAC_CI_QUEUE_PREFIX"},
		{[]string{"AWS_REGION=us-east-1", "IAC_CI_INTERNAL_BUCKET=Not_A_Bucket"}, "IAC_CI_INTERNAL_BUCKET"},
	}
	for _, tc := range cases {
		r := iacci(t, append(base, tc.env...), "serve", "--backend", "aws", "--insecure-skip-signature",
			"--addr", "127.0.0.1:0", "--data", t.TempDir())
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want a failure naming %s", tc.env, r.code, r.stderr, tc.want)
		}
	}
}

// `aws-setup --print` describes every resource without an account.
func TestAWSSetupPrintDescribesEveryResource(t *testing.T) {
	t.Parallel()
	r := iacci(t, []string{"IAC_CI_PREFIX=acme", "AWS_REGION=", "AWS_ENDPOINT_URL=http://127.0.0.1:1"}, "aws-setup", "--print")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got struct {
		Queues []struct {
			Name string `json:"name"`
		} `json:"queues"`
		Tables []struct {
			Name string `json:"name"`
		} `json:"tables"`
		Buckets []struct {
			Name string `json:"name"`
		} `json:"buckets"`
		RunKeys struct {
			Path string `json:"path"`
		} `json:"run_key_parameter_prefix"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if len(got.Queues) != 10 || got.Queues[0].Name != "acme-intake" || len(got.Tables) != 2 || got.Tables[0].Name != "acme-orders" ||
		len(got.Buckets) != 2 || got.Buckets[1].Name != "acme-done" || got.RunKeys.Path != "/acme/run-keys" {
		t.Errorf("aws-setup --print: got %+v", got)
	}
}
