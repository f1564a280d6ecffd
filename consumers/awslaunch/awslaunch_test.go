package awslaunch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/codebuild"
	cbtypes "github.com/aws/aws-sdk-go-v2/service/codebuild/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
	"github.com/iac-ci/iac-ci/secrets/awssecrets"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// The tests keep runs, queues and blobs on the embedded adapters, with the blob server on a test
// HTTP server so that presigned URLs are real, and use the emulator only for what the launchers
// and the worker call on AWS: CodeBuild, SSM Run Command and Parameter Store. The stores' own AWS
// adapters have their conformance suites; here they would add only the emulator's lack of
// atomicity to work around.

const (
	secretValue = "aws-launch-s3cr3t-9182"
	plainValue  = "aws-launch-plain-6604"
	grace       = 90 * time.Second
	// accountRole is a role ARN in the emulator's default account, which CreateProject checks.
	accountRole = "arn:aws:iam::123456789012:role/iac-ci-codebuild"
)

// repoRoot is the repository's top folder (this package is consumers/awslaunch).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// iacciBinary builds the real iac-ci once per test binary: the tests play CodeBuild and the
// instance by running it as they would.
func iacciBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "iac-ci-awslaunch-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "iac-ci")
		cmd := exec.Command("go", "build", "-o", binaryPath, "./cmd/iac-ci")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = err
			binaryPath = string(out)
		}
	})
	if binaryErr != nil {
		t.Fatalf("build iac-ci: %v\n%s", binaryErr, binaryPath)
	}
	return binaryPath
}

// wire records the body of every request a client sends: the emulator keeps no record of a
// build's overrides, so the test reads StartBuild's overrides off the wire, as CodeBuild gets
// them. It also mends the emulator's CodeBuild answers (see epochTimes).
type wire struct {
	next aws.HTTPClient

	mu     sync.Mutex
	bodies map[string][][]byte // by operation (the X-Amz-Target's last part)
}

func (w *wire) Do(req *http.Request) (*http.Response, error) {
	op := req.Header.Get("X-Amz-Target")
	op = op[strings.LastIndex(op, ".")+1:]
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
		w.mu.Lock()
		w.bodies[op] = append(w.bodies[op], body)
		w.mu.Unlock()
	}
	resp, err := w.next.Do(req)
	if err != nil || !strings.HasPrefix(req.Header.Get("X-Amz-Target"), "CodeBuild_") {
		return resp, err
	}
	return epochTimes(resp)
}

// epochTimes rewrites the times of a CodeBuild answer from the emulator, which writes them as
// ISO 8601 strings, into the epoch seconds CodeBuild answers with (and the SDK insists on).
func epochTimes(resp *http.Response) (*http.Response, error) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var doc any
	if json.Unmarshal(body, &doc) == nil {
		var walk func(v any) any
		walk = func(v any) any {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					v[k] = walk(x)
				}
			case []any:
				for i, x := range v {
					v[i] = walk(x)
				}
			case string:
				if t, err := time.Parse("2006-01-02T15:04:05.999999999Z07:00", v); err == nil {
					return float64(t.UnixMilli()) / 1000
				}
			}
			return v
		}
		if fixed, err := json.Marshal(walk(doc)); err == nil {
			body = fixed
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

func (w *wire) sent(op string) [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.bodies[op])
}

type fixture struct {
	engine    *engine.Engine
	intake    *producers.Intake
	broker    *sqlitequeue.Broker
	codebuild *codebuild.Client
	ssm       *ssm.Client
	wire      *wire
	keys      *awssecrets.Keys
	// prefix keeps this test's parameters, projects and documents apart from other tests'.
	prefix     string
	secretPath string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	cfg := awstest.Config(t)
	w := &wire{next: awshttp.NewBuildableClient(), bodies: map[string][][]byte{}}
	cfg.HTTPClient = w
	f := &fixture{codebuild: codebuild.NewFromConfig(cfg), ssm: ssm.NewFromConfig(cfg), wire: w,
		prefix: "iac-ci-test-" + domain.NewTraceID()}
	ctx := t.Context()
	var err error
	if f.keys, err = awssecrets.NewKeys(f.ssm, "/"+f.prefix+"/run-keys"); err != nil {
		t.Fatal(err)
	}
	f.secretPath = "/" + f.prefix + "/db-password"
	if _, err := f.ssm.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(f.secretPath), Value: aws.String(secretValue),
		Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatalf("put secret: %v", err)
	}

	dir := t.TempDir()
	db := sqlitedbtest.Open(t, dir)
	var st *sqlitestore.Store
	f.broker, st = sqlitedbtest.Ports(t, db)
	results := f.queue(t, queues.Results)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	baseURL := func() string { return srv.URL }
	internal, err := folderblobs.New(filepath.Join(dir, "blobs"), "internal", folderblobs.Options{BaseURL: baseURL,
		Notify: func(ctx context.Context, body []byte) error { return results.Send(ctx, queues.Outgoing{Body: body}) }})
	if err != nil {
		t.Fatal(err)
	}
	done, err := folderblobs.New(filepath.Join(dir, "blobs"), "done", folderblobs.Options{BaseURL: baseURL})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/blobs/", folderblobs.Handler(internal, done))
	f.engine = &engine.Engine{Store: st, Queues: f.broker, Blobs: internal, Done: done, Keys: f.keys,
		Log: slog.New(slog.NewTextHandler(testLog{t}, nil)), Grace: grace}
	f.intake = &producers.Intake{Engine: f.engine, Secrets: awssecrets.NewSource(f.ssm, nil), WorkDir: t.TempDir()}
	return f
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (f *fixture) queue(t *testing.T, name string) queues.Queue {
	t.Helper()
	q, err := f.broker.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// start runs the launcher of target and the orchestrator until the test ends.
func (f *fixture) start(t *testing.T, target domain.Target, starter consumers.Starter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	l := &consumers.Launcher{Engine: f.engine, Starter: starter, RunKeyParameter: f.keys.ParameterName}
	o := &consumers.Orchestrator{Engine: f.engine}
	loops := []*consumers.Loop{
		{Queue: f.queue(t, queues.Orders(string(target))), Batch: queues.MaxBatch, Handler: l.Handle, Log: f.engine.Logger()},
		{Queue: f.queue(t, queues.Results), Batch: queues.MaxBatch, Handler: o.Handle, Log: f.engine.Logger()},
	}
	for _, loop := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); loop.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func (f *fixture) submit(t *testing.T, orders ...domain.Order) string {
	t.Helper()
	job := domain.Job{Username: "tester", Orders: orders}
	job.Normalize(false)
	if err := domain.Validate(job); err != nil {
		t.Fatalf("job: %v", err)
	}
	now := time.Now().UTC()
	req := domain.Request{RunID: domain.NewRunID(now), TraceID: domain.NewTraceID(), Source: "test", ReceivedAt: now, Job: job}
	req.FlowID = domain.FlowID(job.Username, req.TraceID, job.FlowLabel)
	if err := f.intake.Process(t.Context(), req); err != nil {
		t.Fatalf("intake: %v", err)
	}
	return req.RunID
}

// waitFor polls cond every 100ms for up to 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *fixture) waitRunEnded(t *testing.T, runID string) domain.Run {
	t.Helper()
	var run domain.Run
	waitFor(t, "run "+runID+" to end", func() bool {
		var err error
		run, err = f.engine.Store.GetRun(t.Context(), runID)
		return err == nil && run.Status.Terminal() && run.Reported
	})
	return run
}

// awsEnv is what a CodeBuild container or an instance has for reaching AWS: here, the emulator.
func awsEnv(t *testing.T) []string {
	return []string{
		"AWS_ENDPOINT_URL=" + awstest.Endpoint(t),
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		"HOME=" + t.TempDir(),
	}
}

// checkNoneOf fails when any of values appears in what.
func checkNoneOf(t *testing.T, where string, what []byte, values ...string) {
	t.Helper()
	for _, v := range values {
		if bytes.Contains(what, []byte(v)) {
			t.Fatalf("%s holds %q:\n%s", where, v, what)
		}
	}
}

func TestCodeBuildLaunchRunsWorkerAndResultArrives(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	project := f.prefix + "-worker"
	_, err := f.codebuild.CreateProject(ctx, &codebuild.CreateProjectInput{
		Name:        aws.String(project),
		Source:      &cbtypes.ProjectSource{Type: cbtypes.SourceTypeNoSource, Location: aws.String("none"), Buildspec: aws.String(awslaunch.Buildspec)},
		Artifacts:   &cbtypes.ProjectArtifacts{Type: cbtypes.ArtifactsTypeNoArtifacts},
		Environment: &cbtypes.ProjectEnvironment{Type: cbtypes.EnvironmentTypeLinuxContainer, ComputeType: cbtypes.ComputeTypeBuildGeneral1Small, Image: aws.String("iac-ci:test")},
		ServiceRole: aws.String(accountRole),
	})
	if err != nil {
		t.Fatalf("create project: %v", err)
	}
	f.start(t, domain.TargetCodeBuild, &awslaunch.CodeBuild{Client: f.codebuild, Project: project})
	runID := f.submit(t, domain.Order{OrderName: "plan", Timeout: 400, ExecutionTarget: domain.TargetCodeBuild,
		Cmds:     []string{`echo "secret=$DB_PASSWORD plain=$PLAIN"`, `echo "inputs=${IAC_CI_BUNDLE_URL:-none}"`},
		SSMPaths: []string{f.secretPath}, EnvVars: map[string]string{"PLAIN": plainValue}})

	// What CodeBuild got: the build exists, and its overrides are names and URLs only.
	var ids []string
	waitFor(t, "a build of "+project, func() bool {
		out, err := f.codebuild.ListBuildsForProject(ctx, &codebuild.ListBuildsForProjectInput{ProjectName: aws.String(project)})
		if err == nil {
			ids = out.Ids
		}
		return len(ids) > 0
	})
	builds, err := f.codebuild.BatchGetBuilds(ctx, &codebuild.BatchGetBuildsInput{Ids: ids})
	if err != nil {
		t.Fatalf("get builds: %v", err)
	}
	if len(builds.Builds) != 1 || aws.ToString(builds.Builds[0].ProjectName) != project {
		t.Fatalf("builds of %s: got %d, want 1", project, len(builds.Builds))
	}
	starts := f.wire.sent("StartBuild")
	if len(starts) != 1 {
		t.Fatalf("StartBuild requests: got %d, want 1", len(starts))
	}
	var sent struct {
		ProjectName                    string
		BuildspecOverride              string
		SourceTypeOverride             string
		TimeoutInMinutesOverride       int
		QueuedTimeoutInMinutesOverride int
		EnvironmentVariablesOverride   []struct{ Name, Value, Type string }
	}
	if err := json.Unmarshal(starts[0], &sent); err != nil {
		t.Fatalf("StartBuild body: %v", err)
	}
	if sent.ProjectName != project || !strings.Contains(sent.BuildspecOverride, "iac-ci worker") || sent.SourceTypeOverride != "NO_SOURCE" {
		t.Fatalf("StartBuild: project %q buildspec %q source %q, want %s, one running iac-ci worker, NO_SOURCE",
			sent.ProjectName, sent.BuildspecOverride, sent.SourceTypeOverride, project)
	}
	// 400 s plus the launch margin is 7.7 minutes; the queue wait is CodeBuild's least, 5.
	if sent.TimeoutInMinutesOverride != 8 || sent.QueuedTimeoutInMinutesOverride != 5 {
		t.Fatalf("StartBuild timeouts: got %d and %d minutes, want 8 and 5", sent.TimeoutInMinutesOverride, sent.QueuedTimeoutInMinutesOverride)
	}
	keyName, err := f.keys.ParameterName(runID)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, v := range sent.EnvironmentVariablesOverride {
		if v.Type != "PLAINTEXT" {
			t.Fatalf("variable %s has type %s, want PLAINTEXT", v.Name, v.Type)
		}
		env[v.Name] = v.Value
	}
	want := map[string]string{consumers.EnvRunID: runID, consumers.EnvOrderNum: "1", consumers.EnvAttempt: "1", consumers.EnvRunKeyParameter: keyName}
	for _, name := range []string{consumers.EnvBundleURL, consumers.EnvCallbackURL, consumers.EnvLogURL} {
		if u, err := url.Parse(env[name]); err != nil || u.Scheme != "http" || u.Query().Get("X-Signature") == "" {
			t.Fatalf("%s: got %q, want a presigned URL", name, env[name])
		}
		want[name] = env[name]
	}
	if len(env) != len(want) {
		t.Fatalf("build environment: got %v, want exactly %v", slices.Sorted(maps.Keys(env)), want)
	}
	for k, v := range want {
		if env[k] != v {
			t.Fatalf("build environment %s: got %q, want %q", k, env[k], v)
		}
	}
	buildJSON, _ := json.Marshal(builds.Builds)
	checkNoneOf(t, "the StartBuild request", starts[0], secretValue, plainValue, "AGE-SECRET-KEY")
	checkNoneOf(t, "the build CodeBuild recorded", buildJSON, secretValue, plainValue, "AGE-SECRET-KEY")

	// Play CodeBuild: run the buildspec's command with the build's environment.
	cmd := exec.CommandContext(ctx, iacciBinary(t), "worker")
	cmd.Env = append(awsEnv(t), "PATH="+os.Getenv("PATH"), "AWS_REGION="+awstest.Region)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	t.Logf("iac-ci worker:\n%s", out)
	if err != nil {
		t.Fatalf("iac-ci worker: %v", err)
	}
	checkNoneOf(t, "the worker's output", out, secretValue, env[consumers.EnvCallbackURL], env[consumers.EnvBundleURL])

	run := f.waitRunEnded(t, runID)
	o, err := f.engine.Store.GetOrder(ctx, runID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != domain.RunSucceeded || o.Status != domain.OrderSucceeded || o.Attempt != 1 {
		t.Fatalf("run %s, order %s attempt %d (%s), want succeeded, succeeded attempt 1", run.Status, o.Status, o.Attempt, o.Reason)
	}
	if !strings.Contains(o.LogTail, "secret=*** plain="+plainValue) || !strings.Contains(o.LogTail, "inputs=none") {
		t.Fatalf("log tail: got %q, want the masked secret, the plain value, and no worker inputs", o.LogTail)
	}
	// Finalization deleted the run key from Parameter Store.
	if _, err := f.keys.GetRunKey(ctx, runID); err == nil {
		t.Fatal("the run key is still in Parameter Store after the run ended")
	}
}

func TestCodeBuildMissingProjectFailsOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t, domain.TargetCodeBuild, &awslaunch.CodeBuild{Client: f.codebuild, Project: f.prefix + "-absent"})
	runID := f.submit(t, domain.Order{OrderName: "plan", Timeout: 60, ExecutionTarget: domain.TargetCodeBuild, Cmds: []string{"true"}})
	run := f.waitRunEnded(t, runID)
	o, err := f.engine.Store.GetOrder(t.Context(), runID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != domain.RunFailed || o.Status != domain.OrderFailed ||
		!strings.Contains(o.Reason, "ResourceNotFoundException") || !strings.Contains(o.Reason, f.prefix+"-absent") {
		t.Fatalf("run %s, order %s (%q), want failed and failed naming the error and the project", run.Status, o.Status, o.Reason)
	}
}
