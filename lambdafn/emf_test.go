package lambdafn_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/lambdafn"
	"github.com/iac-ci/iac-ci/producers"
)

// syncBuffer is a buffer the process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startFunctionStdout is startFunction keeping the function's standard output apart: where
// Lambda's log stream, and so CloudWatch, reads EMF lines.
func startFunctionStdout(t *testing.T, env ...string) *syncBuffer {
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd := exec.Command(os.Args[0], "lambda")
	cmd.Env = append([]string{asIACCI + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("iac-ci lambda's stderr:\n%s\nstdout:\n%s", stderr.String(), stdout.String())
		}
	})
	return stdout
}

// emfSeries is one EMF line: its metric's name, unit and value, and its dimensions' values.
type emfSeries struct {
	name, unit string
	value      float64
	dims       map[string]string
}

// readEMF parses every EMF line of out, checking each is what CloudWatch accepts: the iac-ci
// namespace, one metric, its value a number, each dimension present as a string.
func readEMF(t *testing.T, out string) []emfSeries {
	t.Helper()
	var series []emfSeries
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var doc map[string]any
		if json.Unmarshal(sc.Bytes(), &doc) != nil || doc["_aws"] == nil {
			continue
		}
		var meta struct {
			Timestamp         int64 `json:"Timestamp"`
			CloudWatchMetrics []struct {
				Namespace  string     `json:"Namespace"`
				Dimensions [][]string `json:"Dimensions"`
				Metrics    []struct {
					Name string `json:"Name"`
					Unit string `json:"Unit"`
				} `json:"Metrics"`
			} `json:"CloudWatchMetrics"`
		}
		raw, _ := json.Marshal(doc["_aws"])
		if err := json.Unmarshal(raw, &meta); err != nil || len(meta.CloudWatchMetrics) != 1 || meta.Timestamp == 0 {
			t.Fatalf("malformed EMF line %s: %v", sc.Text(), err)
		}
		d := meta.CloudWatchMetrics[0]
		if d.Namespace != "iac-ci" || len(d.Metrics) != 1 || len(d.Dimensions) != 1 {
			t.Fatalf("EMF line %s: want namespace iac-ci, one metric, one dimension set", sc.Text())
		}
		s := emfSeries{name: d.Metrics[0].Name, unit: d.Metrics[0].Unit, dims: map[string]string{}}
		v, ok := doc[s.name].(float64)
		if !ok {
			t.Fatalf("EMF line %s: %s is not a number", sc.Text(), s.name)
		}
		s.value = v
		for _, k := range d.Dimensions[0] {
			dv, ok := doc[k].(string)
			if !ok {
				t.Fatalf("EMF line %s: dimension %s missing", sc.Text(), k)
			}
			s.dims[k] = dv
		}
		series = append(series, s)
	}
	return series
}

// readEMFUntil reads out's EMF lines until done says they are all there (or a minute passed).
func readEMFUntil(t *testing.T, out *syncBuffer, done func([]emfSeries) bool) []emfSeries {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s := readEMF(t, out.String())
		if done(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sum adds up the values of every EMF line of name whose dimensions include dims.
func sum(series []emfSeries, name string, dims map[string]string) (float64, bool) {
	total, found := 0.0, false
	for _, s := range series {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range dims {
			match = match && s.dims[k] == v
		}
		if match {
			total, found = total+s.value, true
		}
	}
	return total, found
}

// TestFunctionsWriteEMFLines plays Lambda's runtime API to the webhook and sweeper functions on
// the emulator and reads the figures they write to their output.
func TestFunctionsWriteEMFLines(t *testing.T) {
	t.Parallel()
	awsCfg := awstest.Config(t)
	prefix := fmt.Sprintf("emf%d", time.Now().UnixNano()%1_000_000_000)
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
	if _, err := clients.SSM.PutParameter(t.Context(), &ssm.PutParameterInput{Name: aws.String(secretPath),
		Value: aws.String(secret), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatalf("put the webhook secret: %v", err)
	}
	tokenPath := "/" + prefix + "/api-token"
	if _, err := clients.SSM.PutParameter(t.Context(), &ssm.PutParameterInput{Name: aws.String(tokenPath),
		Value: aws.String(apiToken), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatalf("put the API token: %v", err)
	}
	env := []string{
		"AWS_ENDPOINT_URL=" + awstest.Endpoint(t), "AWS_REGION=" + awstest.Region,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_EC2_METADATA_DISABLED=true",
		awsbackend.EnvPrefix + "=" + prefix,
	}

	rt := startRuntimeAPI(t)
	out := startFunctionStdout(t, append(env, "AWS_LAMBDA_RUNTIME_API="+rt.url, "IAC_CI_FUNCTION=webhook",
		"IAC_CI_WEBHOOK_SECRET_LOCATION=aws:::ssm:"+secretPath, lambdafn.EnvAPITokenLocation+"=aws:::ssm:"+tokenPath)...)
	// Two jobs (the same body twice would be a replay, answered with the first run).
	body, other := []byte(twoOrders), []byte(strings.Replace(twoOrders, "lambda-test", "lambda-test-2", 1))
	var runID string
	for _, sb := range []struct {
		sig  string
		body []byte
	}{
		{producers.Sign([]byte(secret), body), body}, {"", body}, {producers.Sign([]byte(secret), other), other},
	} {
		sig, body := sb.sig, sb.body
		headers := map[string]string{}
		if sig != "" {
			headers["x-hub-signature-256"] = sig
		}
		a := rt.invoke(t, apiRequest(t, http.MethodPost, "/webhook", body, headers))
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(a.body, &resp); err != nil || a.kind != "response" {
			t.Fatalf("webhook: got %s %s", a.kind, a.body)
		}
		var acc producers.Accepted
		if json.Unmarshal([]byte(resp.Body), &acc) == nil && acc.RunID != "" {
			runID = acc.RunID
		}
	}
	// Each invocation's lines are written before its answer is sent; the pipe from the process
	// may still hold the last ones.
	webhook := readEMFUntil(t, out, func(s []emfSeries) bool {
		n, _ := sum(s, "iac_ci_http_request_duration_seconds_count", nil)
		return n >= 3
	})
	for _, c := range []struct {
		code string
		want float64
	}{{"202", 2}, {"401", 1}} {
		if got, _ := sum(webhook, "iac_ci_http_requests_total", map[string]string{"route": "webhook", "code": c.code}); got != c.want {
			t.Errorf("webhook answers %s in the EMF lines: %v, want %v", c.code, got, c.want)
		}
	}
	if got, _ := sum(webhook, "iac_ci_http_request_duration_seconds_count", map[string]string{"route": "webhook"}); got != 3 {
		t.Errorf("webhook latencies counted in the EMF lines: %v, want 3", got)
	}
	if _, found := sum(webhook, "iac_ci_queue_messages", nil); found {
		t.Errorf("the webhook function reads queue depths: only the sweeper's should")
	}

	// The webhook function serves the status page too: a browser asking for a run gets HTML.
	page := rt.invoke(t, apiRequest(t, http.MethodGet, "/runs/"+runID, nil, map[string]string{"accept": "text/html,*/*;q=0.8",
		"authorization": "Bearer " + apiToken}))
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(page.body, &resp); err != nil || page.kind != "response" {
		t.Fatalf("GET /runs/{id}: got %s %s", page.kind, page.body)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Headers["Content-Type"], "text/html") ||
		!strings.Contains(resp.Body, runID) || !strings.Contains(resp.Body, `data-live="true"`) {
		t.Errorf("GET /runs/{id} from a browser through the webhook function: %d %v\n%s", resp.StatusCode, resp.Headers, resp.Body)
	}

	rt = startRuntimeAPI(t)
	out = startFunctionStdout(t, append(env, "AWS_LAMBDA_RUNTIME_API="+rt.url, "IAC_CI_FUNCTION=sweeper")...)
	if a := rt.invoke(t, map[string]any{"source": "aws.scheduler", "detail": map[string]any{}}); a.kind != "response" {
		t.Fatalf("sweep: got %s %s", a.kind, a.body)
	}
	sweeper := readEMFUntil(t, out, func(s []emfSeries) bool {
		_, found := sum(s, "iac_ci_sweeper_passes_total", nil)
		return found
	})
	if got, _ := sum(sweeper, "iac_ci_queue_messages", map[string]string{"queue": "intake"}); got != 2 {
		t.Errorf("intake depth in the sweeper's EMF lines: %v, want the 2 accepted jobs", got)
	}
	if got, found := sum(sweeper, "iac_ci_dead_letters", map[string]string{"queue": "results"}); !found || got != 0 {
		t.Errorf("results dead letters in the sweeper's EMF lines: %v (found %v), want 0", got, found)
	}
	if got, _ := sum(sweeper, "iac_ci_sweeper_passes_total", map[string]string{"result": "ok"}); got != 1 {
		t.Errorf("sweeper passes in its EMF lines: %v, want 1", got)
	}
	for _, s := range sweeper {
		if s.name == "iac_ci_queue_oldest_message_age_seconds" {
			t.Errorf("an age on SQS, which the API does not give: %+v", s)
		}
	}
}
