package lambdafn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/cli"
	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
)

// asIACCI makes this test binary run as iac-ci itself, so that `iac-ci lambda` can be started
// as a process, the way Lambda starts the image's entry point.
const asIACCI = "IAC_CI_LAMBDAFN_TEST_AS_IACCI"

func TestMain(m *testing.M) {
	if os.Getenv(asIACCI) == "1" {
		os.Exit(cli.Main(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
	awstest.Main(m)
}

// runtimeAPI plays Lambda's side of the Runtime API (the protocol lambda.Start speaks): it hands
// out invocations and collects what the function answers.
type runtimeAPI struct {
	invocations chan []byte
	answers     chan answer
	url         string
}

type answer struct {
	kind string // response, error, or init (an error at start)
	body []byte
}

func startRuntimeAPI(t *testing.T) *runtimeAPI {
	t.Helper()
	rt := &runtimeAPI{invocations: make(chan []byte), answers: make(chan answer, 10)}
	var n int
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		select {
		case p := <-rt.invocations:
			mu.Lock()
			n++
			id := "request-" + strconv.Itoa(n)
			mu.Unlock()
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:iac-ci-test")
			w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
			_, _ = w.Write(p)
		case <-r.Context().Done():
		}
	})
	collect := func(kind string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			rt.answers <- answer{kind: kind, body: body}
			w.WriteHeader(http.StatusAccepted)
		}
	}
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", collect("response"))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", collect("error"))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", collect("init"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	rt.url = strings.TrimPrefix(srv.URL, "http://")
	return rt
}

// invoke hands the function one event and waits for its answer.
func (rt *runtimeAPI) invoke(t *testing.T, event any) answer {
	t.Helper()
	payload, err := json.Marshal(event)
	if err != nil {
		t.Fatalf("encode event: %v", err)
	}
	select {
	case rt.invocations <- payload:
	case <-time.After(30 * time.Second):
		t.Fatalf("the function never asked for an invocation")
	}
	select {
	case a := <-rt.answers:
		return a
	case <-time.After(30 * time.Second):
		t.Fatalf("the function never answered")
	}
	return answer{}
}

// process is `iac-ci lambda` running with env.
type process struct {
	cmd    *exec.Cmd
	output *bytes.Buffer
}

func startFunction(t *testing.T, env ...string) *process {
	t.Helper()
	out := &bytes.Buffer{}
	cmd := exec.Command(os.Args[0], "lambda")
	cmd.Env = append([]string{asIACCI + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	p := &process{cmd: cmd, output: out}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("iac-ci lambda said:\n%s", out.String())
		}
	})
	return p
}

func TestLambdaCommandRefusesToStartWithoutItsFunction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"no function", nil, "IAC_CI_FUNCTION is not set"},
		{"unknown function", []string{"IAC_CI_FUNCTION=launcher-of-rockets"}, `IAC_CI_FUNCTION="launcher-of-rockets": want one of webhook,`},
		{"not in Lambda", []string{"IAC_CI_FUNCTION=webhook"}, "AWS_LAMBDA_RUNTIME_API is not set"},
	}
	for _, tc := range tests {
		p := startFunction(t, tc.env...)
		err := p.cmd.Wait()
		code := p.cmd.ProcessState.ExitCode()
		if code != cli.ExitRejected || !strings.Contains(p.output.String(), tc.want) {
			t.Fatalf("%s: got exit %d (%v) saying %q, want exit %d saying %q", tc.name, code, err, p.output.String(), cli.ExitRejected, tc.want)
		}
	}
}

func TestFunctionsServeTheRuntimeAPIOnAWS(t *testing.T) {
	t.Parallel()
	awsCfg := awstest.Config(t)
	prefix := fmt.Sprintf("lfn%d", time.Now().UnixNano()%1_000_000_000)
	cfg, err := awsbackend.FromEnv(func(k string) string {
		if k == awsbackend.EnvPrefix {
			return prefix
		}
		return ""
	})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	clients := awsbackend.NewClients(awsCfg, cfg, awsbackend.ClientOptions{Serialize: true})
	if err := awsbackend.Setup(t.Context(), clients, cfg, io.Discard); err != nil {
		t.Fatalf("setup: %v", err)
	}
	secretPath := "/" + prefix + "/webhook-secret"
	_, err = clients.SSM.PutParameter(t.Context(), &ssm.PutParameterInput{Name: aws.String(secretPath),
		Value: aws.String(secret), Type: ssmtypes.ParameterTypeSecureString})
	if err != nil {
		t.Fatalf("put the webhook secret: %v", err)
	}
	env := []string{
		"AWS_ENDPOINT_URL=" + awstest.Endpoint(t), "AWS_REGION=" + awstest.Region,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_EC2_METADATA_DISABLED=true",
		awsbackend.EnvPrefix + "=" + prefix,
	}

	// The webhook function: a signed job is accepted, an unsigned one refused.
	rt := startRuntimeAPI(t)
	startFunction(t, append(env, "AWS_LAMBDA_RUNTIME_API="+rt.url, "IAC_CI_FUNCTION=webhook",
		"IAC_CI_WEBHOOK_SECRET_LOCATION=aws:::ssm:"+secretPath, "IAC_CI_PUBLIC_URL=https://api.example.test")...)
	body := []byte(twoOrders)
	for _, tc := range []struct {
		name string
		sig  string
		want int
	}{
		{"signed", producers.Sign([]byte(secret), body), http.StatusAccepted},
		{"unsigned", "", http.StatusUnauthorized},
	} {
		headers := map[string]string{}
		if tc.sig != "" {
			headers["x-hub-signature-256"] = tc.sig
		}
		a := rt.invoke(t, apiRequest(t, http.MethodPost, "/webhook", body, headers))
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(a.body, &resp); err != nil || a.kind != "response" {
			t.Fatalf("%s: got %s %s (%v), want a response", tc.name, a.kind, a.body, err)
		}
		if resp.StatusCode != tc.want {
			t.Fatalf("%s: got status %d %s, want %d", tc.name, resp.StatusCode, resp.Body, tc.want)
		}
		if tc.want == http.StatusAccepted && !strings.Contains(resp.Body, `"done_endpt": "https://api.example.test/done/`) {
			t.Fatalf("%s: body %s names no done endpoint under IAC_CI_PUBLIC_URL", tc.name, resp.Body)
		}
	}
	b, err := awsbackend.Open(cfg, clients, true, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	intake, err := b.Queues.Queue(queues.Intake)
	if err != nil {
		t.Fatalf("intake queue: %v", err)
	}
	msgs, err := intake.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("intake queue: got %d messages (%v), want 1", len(msgs), err)
	}

	// The sweeper function: one pass per scheduled event, answered with null.
	rt = startRuntimeAPI(t)
	startFunction(t, append(env, "AWS_LAMBDA_RUNTIME_API="+rt.url, "IAC_CI_FUNCTION=sweeper")...)
	for i := range 2 {
		a := rt.invoke(t, map[string]any{"source": "aws.scheduler", "detail": map[string]any{}})
		if a.kind != "response" || string(a.body) != "null" {
			t.Fatalf("sweep %d: got %s %s, want response null", i, a.kind, a.body)
		}
	}

	// A function whose resources are missing fails at its start, as Lambda reports an init error.
	rt = startRuntimeAPI(t)
	p := startFunction(t, append(env, "AWS_LAMBDA_RUNTIME_API="+rt.url, "IAC_CI_FUNCTION=orchestrator",
		awsbackend.EnvQueuePrefix+"=missing-")...)
	err = p.cmd.Wait()
	if code := p.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(p.output.String(), "missing-results") {
		t.Fatalf("orchestrator without its queue: got exit %d (%v) saying %q, want a failure naming missing-results", code, err, p.output.String())
	}
}
