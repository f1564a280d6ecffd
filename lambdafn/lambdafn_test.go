package lambdafn_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/lambdafn"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
	"github.com/iac-ci/iac-ci/secrets/localsecrets"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
	"github.com/iac-ci/iac-ci/vcs"
	"github.com/iac-ci/iac-ci/vcs/github"
	"github.com/iac-ci/iac-ci/vcs/github/githubtest"
)

const (
	fixtures = "../../shared/fixtures/aws"
	prefix   = "iac-ci-test-"
	secret   = "webhook-secret-for-tests"
	apiToken = "api-token-for-tests"
)

// twoOrders is a job of two lambda orders, the second depending on the first.
const twoOrders = `{"username": "lambda-test", "orders": [
  {"order_name": "first", "execution_target": "lambda", "timeout": 60, "cmds": ["echo first ran"]},
  {"order_name": "second", "execution_target": "lambda", "timeout": 60, "dependencies": ["first"],
   "cmds": ["echo second ran after $ORDER_NUM"]}]}`

// fixture reads a stored AWS event into v.
func fixture(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
}

// testLog routes slog into t.Log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// starter stands in for CodeBuild, which cannot run here: it records each launch and answers
// with err.
type starter struct {
	launches []consumers.Launch
	err      error
}

func (s *starter) Start(_ context.Context, l consumers.Launch) (string, error) {
	s.launches = append(s.launches, l)
	if s.err != nil {
		return "", s.err
	}
	return "build-" + itoa(len(s.launches)), nil
}

// deployment is one iac-ci on the embedded adapters, wired as the Lambda functions are.
type deployment struct {
	sys    *assembly.System
	builds *starter
	broker *sqlitequeue.Broker
	store  *sqlitestore.Store
	done   *folderblobs.Bucket
	now    time.Time // the engine's clock when set
	// retried holds, by queue, the receipts of the records poll left for retry.
	retried map[string][]string
}

func setup(t *testing.T) *deployment { t.Helper(); return setupWith(t, nil) }

// setupWith is setup with the assembly's options changed by with (which may be nil).
func setupWith(t *testing.T, with func(*assembly.Options)) *deployment {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db := sqlitedbtest.Open(t, dir)
	specs := queues.Topology()
	for i := range specs {
		specs[i].Visibility = time.Minute
	}
	broker, st := sqlitedbtest.Ports(t, db, specs...)
	keys, err := localsecrets.NewKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	results, err := broker.Queue(queues.Results)
	if err != nil {
		t.Fatalf("results queue: %v", err)
	}
	// The blob server stands in for S3: workers PUT their results to its presigned URLs, and a
	// result's arrival notifies the results queue, as S3's bucket notification does.
	var srv *httptest.Server
	baseURL := func() string { return srv.URL }
	notify := func(ctx context.Context, body []byte) error { return results.Send(ctx, queues.Outgoing{Body: body}) }
	internal, err := folderblobs.New(filepath.Join(dir, "blobs"), "internal", folderblobs.Options{BaseURL: baseURL, Notify: notify, Logger: log})
	if err != nil {
		t.Fatalf("internal bucket: %v", err)
	}
	done, err := folderblobs.New(filepath.Join(dir, "blobs"), "done", folderblobs.Options{BaseURL: baseURL, Logger: log})
	if err != nil {
		t.Fatalf("done bucket: %v", err)
	}
	srv = httptest.NewServer(folderblobs.Handler(internal, done))
	t.Cleanup(srv.Close)

	d := &deployment{broker: broker, store: st, done: done, builds: &starter{}, retried: map[string][]string{}}
	// Wired as `iac-ci lambda` wires the functions, on the embedded adapters: lambda orders run
	// in the worker function, codebuild orders are launched.
	opts := assembly.Options{Log: log, WebhookSecret: []byte(secret), APIToken: []byte(apiToken), ScratchDir: dir, Workers: 1,
		BaseEnv: []string{"PATH=" + os.Getenv("PATH")}}
	if with != nil {
		with(&opts)
	}
	sys, err := assembly.New(assembly.Ports{Store: st, Queues: broker, Internal: internal, Done: done, Keys: keys,
		Secrets: &localsecrets.Source{}, Starters: map[domain.Target]consumers.Starter{domain.TargetCodeBuild: d.builds},
		RunKeyParameter: func(runID string) (string, error) { return "/iac-ci/run-keys/" + runID, nil }}, opts)
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	sys.Engine.Now = func() time.Time {
		if !d.now.IsZero() {
			return d.now
		}
		return time.Now()
	}
	d.sys = sys
	return d
}

// function builds a function's handler as `iac-ci lambda` does.
func (d *deployment) function(t *testing.T, name string) lambda.Handler {
	t.Helper()
	h, err := lambdafn.New(name, d.sys, prefix)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return h
}

// invoke sends a payload through a handler as the Lambda runtime does: JSON in, JSON out.
func invoke[Out any](t *testing.T, h lambda.Handler, payload any) Out {
	t.Helper()
	in, err := json.Marshal(payload)
	if err != nil {
		t.Fatalf("encode payload: %v", err)
	}
	raw, err := h.Invoke(t.Context(), in)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var out Out
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode response %s: %v", raw, err)
	}
	return out
}

// arn is the ARN of the SQS queue behind an engine queue name.
func arn(queue string) string { return "arn:aws:sqs:us-east-1:123456789012:" + prefix + queue }

// record turns a received message into an SQS event record shaped like the stored sample.
func record(t *testing.T, queue string, m queues.Message) events.SQSMessage {
	t.Helper()
	var ev events.SQSEvent
	fixture(t, "sqs-event.json", &ev)
	r := ev.Records[0]
	r.MessageId, r.ReceiptHandle, r.Body = m.ID, m.Receipt, string(m.Body)
	r.EventSourceARN = arn(queue)
	r.Attributes["ApproximateReceiveCount"] = itoa(m.ReceiveCount)
	return r
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// poll hands every visible message of a queue to a function as the event source mapping does,
// one batch after another, deleting the records the response does not list as failed. It
// returns how many records were handed over and the ids of those left for retry.
func (d *deployment) poll(t *testing.T, h lambda.Handler, queue string) (int, []string) {
	t.Helper()
	q, err := d.broker.Queue(queue)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	var handed int
	var failed []string
	for {
		msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch})
		if err != nil {
			t.Fatalf("receive from %s: %v", queue, err)
		}
		if len(msgs) == 0 {
			return handed, failed
		}
		ev := events.SQSEvent{}
		for _, m := range msgs {
			ev.Records = append(ev.Records, record(t, queue, m))
		}
		resp := invoke[events.SQSEventResponse](t, h, ev)
		for _, m := range msgs {
			handed++
			if slices.ContainsFunc(resp.BatchItemFailures, func(f events.SQSBatchItemFailure) bool { return f.ItemIdentifier == m.ID }) {
				failed = append(failed, m.ID)
				d.retried[queue] = append(d.retried[queue], m.Receipt)
				continue
			}
			if err := q.Delete(t.Context(), m.Receipt); err != nil {
				t.Fatalf("delete from %s: %v", queue, err)
			}
		}
	}
}

// comeBack makes the records left for retry on a queue visible again, as the end of their
// visibility timeout does.
func (d *deployment) comeBack(t *testing.T, queue string) {
	t.Helper()
	q, _ := d.broker.Queue(queue)
	for _, r := range d.retried[queue] {
		if err := q.ChangeVisibility(t.Context(), r, 0); err != nil {
			t.Fatalf("change visibility: %v", err)
		}
	}
	d.retried[queue] = nil
}

// apiRequest is the stored HTTP API sample turned into a request for method and path.
func apiRequest(t *testing.T, method, path string, body []byte, headers map[string]string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	var req events.APIGatewayV2HTTPRequest
	fixture(t, "apigw-v2-request-no-authorizer.json", &req)
	req.RouteKey = method + " " + path
	req.RawPath = path
	req.RequestContext.HTTP.Method = method
	req.RequestContext.HTTP.Path = path
	req.Body = string(body)
	req.Headers["content-length"] = itoa(len(body))
	req.Headers["content-type"] = "application/json"
	for k, v := range headers {
		req.Headers[k] = v
	}
	return req
}

// submit posts a signed job through the webhook function and returns its run id.
func (d *deployment) submit(t *testing.T, job string) string {
	t.Helper()
	req := apiRequest(t, http.MethodPost, "/webhook", []byte(job),
		map[string]string{"x-hub-signature-256": producers.Sign([]byte(secret), []byte(job))})
	resp := invoke[events.APIGatewayV2HTTPResponse](t, d.function(t, lambdafn.Webhook), req)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /webhook: got %d %s, want 202", resp.StatusCode, resp.Body)
	}
	var acc producers.Accepted
	if err := json.Unmarshal([]byte(resp.Body), &acc); err != nil || acc.RunID == "" {
		t.Fatalf("POST /webhook answer %q: no run id (%v)", resp.Body, err)
	}
	return acc.RunID
}

func TestWebhookAnswersSignedJobsAndRefusesUnsigned(t *testing.T) {
	t.Parallel()
	d := setup(t)
	h := d.function(t, lambdafn.Webhook)
	body := []byte(twoOrders)
	sig := producers.Sign([]byte(secret), body)
	tests := []struct {
		name    string
		req     events.APIGatewayV2HTTPRequest
		want    int
		queued  int // messages on the intake queue afterwards
		runBody bool
	}{
		{name: "signed", req: apiRequest(t, "POST", "/webhook", body, map[string]string{"x-hub-signature-256": sig}), want: 202, queued: 1, runBody: true},
		{name: "unsigned", req: apiRequest(t, "POST", "/webhook", body, nil), want: 401},
		{name: "wrong signature", req: apiRequest(t, "POST", "/webhook", body, map[string]string{"x-hub-signature-256": producers.Sign([]byte("other"), body)}), want: 401},
		{name: "ssm route", req: apiRequest(t, "POST", "/ssm", body, nil), want: 401},
		{name: "no such path", req: apiRequest(t, "POST", "/nowhere", body, nil), want: 404},
	}
	// Another job: the same body again would be a replay, answered with the first run.
	other := []byte(strings.Replace(twoOrders, "lambda-test", "lambda-test-b64", 1))
	b64 := apiRequest(t, "POST", "/webhook", nil, map[string]string{"x-hub-signature-256": producers.Sign([]byte(secret), other)})
	b64.Body, b64.IsBase64Encoded = base64.StdEncoding.EncodeToString(other), true
	tests = append(tests, struct {
		name    string
		req     events.APIGatewayV2HTTPRequest
		want    int
		queued  int
		runBody bool
	}{name: "signed, base64", req: b64, want: 202, queued: 1, runBody: true})

	intake, err := d.broker.Queue(queues.Intake)
	if err != nil {
		t.Fatalf("intake queue: %v", err)
	}
	for _, tc := range tests {
		resp := invoke[events.APIGatewayV2HTTPResponse](t, h, tc.req)
		if resp.StatusCode != tc.want {
			t.Fatalf("%s: got status %d (%s), want %d", tc.name, resp.StatusCode, resp.Body, tc.want)
		}
		if got := resp.Headers["Content-Type"]; got != "application/json" {
			t.Fatalf("%s: Content-Type got %q, want application/json", tc.name, got)
		}
		msgs, err := intake.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(msgs) != tc.queued {
			t.Fatalf("%s: intake queue got %d messages, want %d", tc.name, len(msgs), tc.queued)
		}
		for _, m := range msgs {
			if err := intake.Delete(t.Context(), m.Receipt); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
		if tc.runBody {
			var acc producers.Accepted
			if err := json.Unmarshal([]byte(resp.Body), &acc); err != nil || acc.RunID == "" || acc.TraceID == "" {
				t.Fatalf("%s: body %q is no accepted run (%v)", tc.name, resp.Body, err)
			}
			// The run's status is readable through the same function before intake has run.
			st := invoke[events.APIGatewayV2HTTPResponse](t, h, apiRequest(t, "GET", "/runs/"+acc.RunID, nil,
				map[string]string{"authorization": "Bearer " + apiToken}))
			if st.StatusCode != 200 || !strings.Contains(st.Body, `"accepted"`) {
				t.Fatalf("%s: GET /runs/%s got %d %s, want 200 accepted", tc.name, acc.RunID, st.StatusCode, st.Body)
			}
		}
	}
}

func TestRequestCarriesMethodPathQueryHeadersCookiesAndBody(t *testing.T) {
	t.Parallel()
	var ev events.APIGatewayV2HTTPRequest
	fixture(t, "apigw-v2-request-iam.json", &ev)
	var got *http.Request
	var gotBody []byte
	h := lambdafn.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Add("Vary", "Accept")
		w.Header().Add("Vary", "Origin")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte{0xff, 0x00, 0x01})
	}))
	resp, err := h(t.Context(), ev)
	if err != nil {
		t.Fatalf("handler: %v", err)
	}
	checks := []struct{ what, got, want string }{
		{"method", got.Method, "GET"},
		{"path", got.URL.Path, "/my/path"},
		{"query", got.URL.RawQuery, "parameter1=value1&parameter1=value2&parameter2=value"},
		{"query value", strings.Join(got.URL.Query()["parameter1"], ","), "value1,value2"},
		{"header", got.Header.Get("Header1"), "value1"},
		{"header in lower case", got.Header.Get("header2"), "value2"},
		{"cookies", got.Header.Get("Cookie"), "cookie1; cookie2"},
		{"body", string(gotBody), "{\r\n\t\"a\": 1\r\n}"},
		{"content length", itoa(int(got.ContentLength)), itoa(len("{\r\n\t\"a\": 1\r\n}"))},
		{"host", got.Host, "id.execute-api.us-east-1.amazonaws.com"},
		{"remote address", got.RemoteAddr, "IP:0"},
		{"response cookies", strings.Join(resp.Cookies, " "), "a=1 b=2"},
		{"repeated header", resp.Headers["Vary"], "Accept,Origin"},
		{"set-cookie not in headers", resp.Headers["Set-Cookie"], ""},
		{"binary body", resp.Body, base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 0x01})},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Fatalf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
	if resp.StatusCode != http.StatusTeapot || !resp.IsBase64Encoded {
		t.Fatalf("response: got status %d base64 %v, want 418 true", resp.StatusCode, resp.IsBase64Encoded)
	}

	// A named stage's prefix is not part of the route; a body that lies about being base64 is
	// answered 400 without reaching the handler.
	ev.RequestContext.Stage, ev.RawPath = "prod", "/prod/webhook"
	got = nil
	if _, err := h(t.Context(), ev); err != nil || got == nil || got.URL.Path != "/webhook" {
		t.Fatalf("staged path: got %v (err %v), want /webhook", got, err)
	}
	ev.IsBase64Encoded, ev.Body = true, "not base64!"
	got = nil
	resp, err = h(t.Context(), ev)
	if err != nil || resp.StatusCode != http.StatusBadRequest || got != nil {
		t.Fatalf("bad base64: got status %d, handler reached %v, err %v; want 400, false, nil", resp.StatusCode, got != nil, err)
	}
}

func TestMessageFromStoredSQSRecord(t *testing.T) {
	t.Parallel()
	var ev events.SQSEvent
	fixture(t, "sqs-event.json", &ev)
	m := lambdafn.Message(ev.Records[0])
	if m.ID != "MessageID_1" || m.Receipt != "MessageReceiptHandle" || string(m.Body) != "Message Body" {
		t.Fatalf("message: got id %q receipt %q body %q, want MessageID_1 MessageReceiptHandle \"Message Body\"", m.ID, m.Receipt, m.Body)
	}
	if m.ReceiveCount != 2 {
		t.Fatalf("receive count: got %d, want 2", m.ReceiveCount)
	}
	if want := time.UnixMilli(1520621625029).UTC(); !m.SentAt.Equal(want) {
		t.Fatalf("sent at: got %v, want %v", m.SentAt, want)
	}
	if got := lambdafn.QueueName(ev.Records[0].EventSourceARN, ""); got != "SQSQueue" {
		t.Fatalf("queue name: got %q, want SQSQueue", got)
	}
	if got := lambdafn.QueueName(arn("orders-lambda-dlq"), prefix); got != "orders-lambda-dlq" {
		t.Fatalf("queue name: got %q, want orders-lambda-dlq", got)
	}
	delete(ev.Records[0].Attributes, "ApproximateReceiveCount")
	if got := lambdafn.Message(ev.Records[0]).ReceiveCount; got != 1 {
		t.Fatalf("receive count without the attribute: got %d, want 1", got)
	}
}

func TestBatchListsExactlyTheRecordsWhoseHandlerFailed(t *testing.T) {
	t.Parallel()
	d := setup(t)
	first, second := d.submit(t, twoOrders), d.submit(t, strings.Replace(twoOrders, "lambda-test", "lambda-test-2", 1))

	q, err := d.broker.Queue(queues.Intake)
	if err != nil {
		t.Fatalf("intake queue: %v", err)
	}
	msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("receive: got %d messages (%v), want 2", len(msgs), err)
	}
	// A third request whose stored body is unreadable makes intake fail on its record alone.
	if err := d.sys.Engine.Blobs.Put(t.Context(), blobs.RequestKey("broken"), []byte("{not json")); err != nil {
		t.Fatalf("put: %v", err)
	}
	broken, _ := json.Marshal(domain.IntakeMessage{RunID: "broken", TraceID: "0123abcd", RequestKey: blobs.RequestKey("broken")})
	ev := events.SQSEvent{Records: []events.SQSMessage{
		record(t, queues.Intake, msgs[0]),
		record(t, queues.Intake, queues.Message{ID: "the-broken-one", Receipt: "r", Body: broken, ReceiveCount: 1}),
		record(t, queues.Intake, msgs[1]),
	}}
	resp := invoke[events.SQSEventResponse](t, d.function(t, lambdafn.Intake), ev)
	got := []string{}
	for _, f := range resp.BatchItemFailures {
		got = append(got, f.ItemIdentifier)
	}
	if strings.Join(got, ",") != "the-broken-one" {
		t.Fatalf("batch item failures: got %v, want [the-broken-one]", got)
	}
	for _, id := range []string{first, second} {
		run, err := d.store.GetRun(t.Context(), id)
		if err != nil || run.Status != domain.RunRunning {
			t.Fatalf("run %s after intake: got %v (%v), want running", id, run.Status, err)
		}
	}

	// A record from a queue the function does not serve is left for retry, not handled.
	ev = events.SQSEvent{Records: []events.SQSMessage{record(t, queues.Results, msgs[0])}}
	resp = invoke[events.SQSEventResponse](t, d.function(t, lambdafn.Intake), ev)
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != msgs[0].ID {
		t.Fatalf("record of another queue: got failures %v, want [%s]", resp.BatchItemFailures, msgs[0].ID)
	}

	// Records not reached before the deadline are left for retry.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	direct := lambdafn.Batch(nil, prefix, func(string) (consumers.Handler, bool) {
		return func(context.Context, queues.Message) error { return nil }, true
	})
	out, err := direct(ctx, events.SQSEvent{Records: ev.Records})
	if err != nil || len(out.BatchItemFailures) != 1 {
		t.Fatalf("after the deadline: got failures %v (err %v), want 1", out.BatchItemFailures, err)
	}
}

func TestFunctionsRunAJobToTheEnd(t *testing.T) {
	t.Parallel()
	d := setup(t)
	runID := d.submit(t, twoOrders)
	intake, worker, orch := d.function(t, lambdafn.Intake), d.function(t, lambdafn.Worker), d.function(t, lambdafn.Orchestrator)

	var handed [3]int
	for round := 0; round < 10; round++ {
		n0, f0 := d.poll(t, intake, queues.Intake)
		n1, f1 := d.poll(t, worker, queues.Orders("lambda"))
		n2, f2 := d.poll(t, orch, queues.Results)
		if len(f0)+len(f1)+len(f2) > 0 {
			t.Fatalf("round %d: failures intake %v worker %v orchestrator %v, want none", round, f0, f1, f2)
		}
		handed[0], handed[1], handed[2] = handed[0]+n0, handed[1]+n1, handed[2]+n2
		if n0+n1+n2 == 0 {
			break
		}
	}
	if handed != [3]int{1, 2, 2} {
		t.Fatalf("messages handed to intake, worker, orchestrator: got %v, want [1 2 2]", handed)
	}
	run, err := d.store.GetRun(t.Context(), runID)
	if err != nil || run.Status != domain.RunSucceeded {
		t.Fatalf("run: got %v (%v), want succeeded", run.Status, err)
	}
	orders, err := d.store.ListOrders(t.Context(), runID)
	if err != nil {
		t.Fatalf("orders: %v", err)
	}
	for _, o := range orders {
		if o.Status != domain.OrderSucceeded || !strings.Contains(o.LogTail, o.OrderName+" ran") {
			t.Fatalf("order %s: got %s with log %q, want succeeded with %q", o.OrderName, o.Status, o.LogTail, o.OrderName+" ran")
		}
	}
	if _, err := d.done.Get(t.Context(), blobs.DoneKey(runID)); err != nil {
		t.Fatalf("done object: %v", err)
	}
}

func TestLauncherStartsBuildsAndTheirResultsEndTheRun(t *testing.T) {
	t.Parallel()
	d := setup(t)
	const job = `{"username": "lambda-test", "orders": [
	  {"order_name": "build", "execution_target": "codebuild", "timeout": 600, "cmds": ["make"]},
	  {"order_name": "ssm", "execution_target": "ssm", "timeout": 60, "cmds": ["true"],
	   "dependencies": ["build"], "ssm_targets": {"instance_ids": ["i-0123456789abcdef0"]}}]}`
	runID := d.submit(t, job)
	if n, failed := d.poll(t, d.function(t, lambdafn.Intake), queues.Intake); n != 1 || len(failed) != 0 {
		t.Fatalf("intake: got %d handed, %v failed, want 1, none", n, failed)
	}
	launcher := d.function(t, lambdafn.Launcher)

	// A passing failure of CodeBuild leaves the message for retry.
	d.builds.err = errors.New("throttled")
	if n, failed := d.poll(t, launcher, queues.Orders("codebuild")); n != 1 || len(failed) != 1 {
		t.Fatalf("launch while throttled: got %d handed, %d failed, want 1, 1", n, len(failed))
	}
	d.builds.err = nil
	d.comeBack(t, queues.Orders("codebuild"))
	n, failed := d.poll(t, launcher, queues.Orders("codebuild"))
	if n != 1 || len(failed) != 0 || len(d.builds.launches) != 2 {
		t.Fatalf("launch: got %d handed, %v failed, %d launches, want 1, none, 2", n, failed, len(d.builds.launches))
	}
	l := d.builds.launches[1]
	if l.RunID != runID || l.OrderNum != 1 || l.Timeout != 600 || l.RunKeyParameter != "/iac-ci/run-keys/"+runID {
		t.Fatalf("launch: got run %s order %d timeout %d key %q, want %s 1 600 /iac-ci/run-keys/%s",
			l.RunID, l.OrderNum, l.Timeout, l.RunKeyParameter, runID, runID)
	}
	// The build delivers its result to the presigned URL, as `iac-ci worker` does.
	res, _ := json.Marshal(domain.Result{RunID: runID, OrderNum: 1, Attempt: l.Attempt, Status: domain.OrderSucceeded,
		StartedAt: time.Now(), FinishedAt: time.Now(), LogTail: "built"})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, l.CallbackURL, strings.NewReader(string(res)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("PUT result: got %v (%v), want 2xx", resp, err)
	}
	resp.Body.Close()
	if n, failed := d.poll(t, d.function(t, lambdafn.Orchestrator), queues.Results); n != 1 || len(failed) != 0 {
		t.Fatalf("orchestrator: got %d handed, %v failed, want 1, none", n, failed)
	}
	// No starter serves ssm here: its record is left for retry, not dropped.
	if n, failed := d.poll(t, launcher, queues.Orders("ssm")); n != 1 || len(failed) != 1 {
		t.Fatalf("ssm without a starter: got %d handed, %d failed, want 1, 1", n, len(failed))
	}
	orders, err := d.store.ListOrders(t.Context(), runID)
	if err != nil || len(orders) != 2 {
		t.Fatalf("orders: got %d (%v), want 2", len(orders), err)
	}
	if orders[0].Status != domain.OrderSucceeded || orders[1].Status != domain.OrderQueued {
		t.Fatalf("orders: got %s, %s, want succeeded, queued", orders[0].Status, orders[1].Status)
	}
}

func TestDeadLettersFailTheOrderAndEndTheRun(t *testing.T) {
	t.Parallel()
	d := setup(t)
	runID := d.submit(t, twoOrders)
	if n, failed := d.poll(t, d.function(t, lambdafn.Intake), queues.Intake); n != 1 || len(failed) != 0 {
		t.Fatalf("intake: got %d handed, %v failed, want 1, none", n, failed)
	}
	// The first order's message dies: it moves to its dead-letter queue, as SQS's redrive does.
	from, _ := d.broker.Queue(queues.Orders("lambda"))
	to, _ := d.broker.Queue(queues.Orders("lambda") + queues.DeadLetterSuffix)
	if n, err := queues.MoveDeadLetters(t.Context(), from, to, 10); err != nil || n != 1 {
		t.Fatalf("move to the dead-letter queue: got %d (%v), want 1", n, err)
	}
	// A dead result notification is kept for an operator; its run ends by the sweeper.
	results, _ := d.broker.Queue(queues.Results + queues.DeadLetterSuffix)
	if err := results.Send(t.Context(), queues.Outgoing{Body: []byte(`{}`)}); err != nil {
		t.Fatalf("send: %v", err)
	}
	dl := d.function(t, lambdafn.DeadLetters)
	if n, failed := d.poll(t, dl, queues.Orders("lambda")+queues.DeadLetterSuffix); n != 1 || len(failed) != 0 {
		t.Fatalf("dead letters: got %d handed, %v failed, want 1, none", n, failed)
	}
	if n, failed := d.poll(t, dl, queues.Results+queues.DeadLetterSuffix); n != 1 || len(failed) != 0 {
		t.Fatalf("results-dlq: got %d handed, %d failed, want 1, none", n, len(failed))
	}
	kept, err := d.sys.DeadLetters.List(t.Context())
	if err != nil || len(kept) != 2 {
		t.Fatalf("dead letters kept: got %d (%v), want the order's and the result's", len(kept), err)
	}
	run, err := d.store.GetRun(t.Context(), runID)
	if err != nil || run.Status != domain.RunFailed {
		t.Fatalf("run: got %v (%v), want failed", run.Status, err)
	}
	orders, _ := d.store.ListOrders(t.Context(), runID)
	if len(orders) != 2 || orders[0].Status != domain.OrderFailed || orders[1].Status != domain.OrderSkipped {
		t.Fatalf("orders: got %+v, want failed then skipped", orders)
	}
}

func TestSweeperRunsOnePassPerEvent(t *testing.T) {
	t.Parallel()
	d := setup(t)
	runID := d.submit(t, twoOrders)
	if n, _ := d.poll(t, d.function(t, lambdafn.Intake), queues.Intake); n != 1 {
		t.Fatalf("intake: got %d handed, want 1", n)
	}
	// The first order's message is lost: received and deleted without being run.
	q, _ := d.broker.Queue(queues.Orders("lambda"))
	msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: got %d (%v), want 1", len(msgs), err)
	}
	if err := q.Delete(t.Context(), msgs[0].Receipt); err != nil {
		t.Fatalf("delete: %v", err)
	}
	sweeper := d.function(t, lambdafn.Sweeper)
	event := map[string]any{"source": "iac-ci.scheduler", "detail-type": "sweep", "detail": map[string]any{}}
	if _, err := sweeper.Invoke(t.Context(), mustJSON(t, event)); err != nil {
		t.Fatalf("sweep now: %v", err)
	}
	if msgs, _ := q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch}); len(msgs) != 0 {
		t.Fatalf("a sweep before the re-send time: got %d messages, want 0", len(msgs))
	}
	// Once the order has been queued for longer than RequeueAfter, a pass sends it again.
	d.now = time.Now().Add(engine.DefaultRequeueAfter + time.Minute)
	if _, err := sweeper.Invoke(t.Context(), []byte(`{}`)); err != nil {
		t.Fatalf("sweep later: %v", err)
	}
	msgs, err = q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("after the sweep: got %d messages (%v), want 1", len(msgs), err)
	}
	var om domain.OrderMessage
	if err := json.Unmarshal(msgs[0].Body, &om); err != nil || om.RunID != runID || om.OrderNum != 1 {
		t.Fatalf("re-sent message: got %+v (%v), want run %s order 1", om, err, runID)
	}
}

func TestNewRefusesUnknownFunctions(t *testing.T) {
	t.Parallel()
	d := setup(t)
	_, err := lambdafn.New("launcher-of-rockets", d.sys, prefix)
	if !errors.Is(err, lambdafn.ErrUnknownFunction) {
		t.Fatalf("New(unknown): got %v, want ErrUnknownFunction", err)
	}
	for _, name := range lambdafn.Names {
		if _, err := lambdafn.New(name, d.sys, prefix); err != nil {
			t.Fatalf("New(%s): %v", name, err)
		}
	}
	if _, err := lambdafn.New(lambdafn.Webhook, nil, prefix); err == nil {
		t.Fatalf("New(webhook) with nothing assembled: got nil error, want one")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// A CodeBuild build that dies without its result (here: FAILED in its provisioning) ends its
// order at once, with the reason the build state change gives, in one handling of the real
// event's shape; a duplicate or late event, or one of a build that succeeded, changes nothing.
func TestADeadBuildEndsItsOrderAtOnce(t *testing.T) {
	t.Parallel()
	d := setup(t)
	runID := d.submit(t, `{"username": "builds", "orders": [{"order_name": "apply", "execution_target": "codebuild",
		"timeout": 600, "cmds": ["terraform apply"]}]}`)
	if n, _ := d.poll(t, d.function(t, lambdafn.Intake), queues.Intake); n != 1 {
		t.Fatalf("intake: got %d handed, want 1", n)
	}
	if n, failed := d.poll(t, d.function(t, lambdafn.Launcher), queues.Orders("codebuild")); n != 1 || len(failed) != 0 {
		t.Fatalf("launcher: got %d handed, %v failed", n, failed)
	}
	if len(d.builds.launches) != 1 {
		t.Fatalf("builds started: %d, want 1", len(d.builds.launches))
	}
	launch := d.builds.launches[0]
	raw, err := os.ReadFile(filepath.Join(fixtures, "codebuild-state-change.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The stored event, as CodeBuild would send it for this build: its status, the variables the
	// launcher gave the build, and the phase that failed.
	event := func(status string) []byte {
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		detail := ev["detail"].(map[string]any)
		detail["build-status"] = status
		info := detail["additional-information"].(map[string]any)
		info["environment"].(map[string]any)["environment-variables"] = []map[string]string{
			{"name": consumers.EnvRunID, "type": "PLAINTEXT", "value": launch.RunID},
			{"name": consumers.EnvOrderNum, "type": "PLAINTEXT", "value": strconv.Itoa(launch.OrderNum)},
			{"name": consumers.EnvAttempt, "type": "PLAINTEXT", "value": strconv.Itoa(launch.Attempt)},
		}
		for _, p := range info["phases"].([]any) {
			if p := p.(map[string]any); p["phase-type"] == "PROVISIONING" && status != "SUCCEEDED" {
				p["phase-status"] = "FAILED"
				p["phase-context"] = []string{"CLIENT_ERROR: Out of memory"}
			}
		}
		return mustJSON(t, ev)
	}
	sweeper := d.function(t, lambdafn.Sweeper)
	if _, err := sweeper.Invoke(t.Context(), event("SUCCEEDED")); err != nil {
		t.Fatalf("a succeeded build's event: %v", err)
	}
	if o, _ := d.store.GetOrder(t.Context(), runID, 1); o.Status != domain.OrderRunning {
		t.Fatalf("after a succeeded build's event: %s, want running (its result says how it ended)", o.Status)
	}
	if _, err := sweeper.Invoke(t.Context(), event("FAILED")); err != nil {
		t.Fatalf("a failed build's event: %v", err)
	}
	o, err := d.store.GetOrder(t.Context(), runID, 1)
	if err != nil || o.Status != domain.OrderFailed || !strings.Contains(o.Reason, "ended FAILED in its PROVISIONING phase") ||
		!strings.Contains(o.Reason, "Out of memory") {
		t.Fatalf("after a failed build's event: %+v %v", o, err)
	}
	if run, _ := d.store.GetRun(t.Context(), runID); run.Status != domain.RunFailed {
		t.Fatalf("run after its only order's build died: %s", run.Status)
	}
	events, _ := d.store.ListEvents(t.Context(), launch.TraceID)
	for _, late := range []string{"FAILED", "TIMED_OUT"} {
		if _, err := sweeper.Invoke(t.Context(), event(late)); err != nil {
			t.Fatalf("a late %s event: %v", late, err)
		}
	}
	again, _ := d.store.GetOrder(t.Context(), runID, 1)
	after, _ := d.store.ListEvents(t.Context(), launch.TraceID)
	if again.Status != o.Status || again.Reason != o.Reason || len(after) != len(events) {
		t.Fatalf("a duplicate or late event changed the order: %+v, %d events, was %d", again, len(after), len(events))
	}
}

// Runs on AWS keep their pull request's comment and commit status as serve does: every function
// that moves a run publishes what its invocation changed before it returns (coalesced), and the
// run's finalization, wherever it happens, publishes the final comment and status.
func TestPullRequestCommentsThroughTheFunctions(t *testing.T) {
	t.Parallel()
	fake := githubtest.NewServer(t)
	client, err := github.New(fake.URL(), githubtest.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	reporter := vcs.NewReporter(client, vcs.ReporterOptions{Interval: time.Millisecond})
	d := setupWith(t, func(o *assembly.Options) {
		o.Watchers, o.Finishers = []engine.Watcher{reporter}, []engine.Finisher{reporter}
	})
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go reporter.Run(ctx, d.store, func(runID string) string { return "https://ci.example.com/runs/" + runID })
	const repo, pr, sha = "acme/infra", 7, "0123456789abcdef0123456789abcdef01234567"
	runID := d.submit(t, `{"username": "ada", "git_repo": "acme/infra", "pr_number": 7,
		"commit_hash": "0123456789abcdef0123456789abcdef01234567", "orders": [
		{"order_name": "plan", "execution_target": "lambda", "timeout": 60, "cmds": ["echo planned"]},
		{"order_name": "apply", "execution_target": "lambda", "timeout": 60, "dependencies": ["plan"], "cmds": ["echo applied"]}]}`)
	fn := func(name string) lambda.Handler { return lambdafn.After(d.function(t, name), reporter.PublishDue) }
	if n, _ := d.poll(t, fn(lambdafn.Intake), queues.Intake); n != 1 {
		t.Fatalf("intake: %d handed", n)
	}
	// Publishes come once the invocation's changes are due: the comment exists, the run pending.
	comments := fake.Comments(repo, pr)
	statuses := fake.Statuses(repo, sha)
	if len(comments) != 1 || len(statuses) == 0 || statuses[len(statuses)-1].State != "pending" {
		t.Fatalf("after intake: %d comments, statuses %+v; want one comment and a pending status", len(comments), statuses)
	}
	first := comments[0].Body
	for range 2 {
		time.Sleep(5 * time.Millisecond) // past the coalescing interval
		if n, _ := d.poll(t, fn(lambdafn.Worker), queues.Orders("lambda")); n != 1 {
			t.Fatalf("worker: %d handed", n)
		}
		if n, _ := d.poll(t, fn(lambdafn.Orchestrator), queues.Results); n != 1 {
			t.Fatalf("orchestrator: %d handed", n)
		}
	}
	if run, err := d.store.GetRun(t.Context(), runID); err != nil || !run.Reported || run.Status != domain.RunSucceeded {
		t.Fatalf("run: %+v %v, want succeeded and reported", run, err)
	}
	comments = fake.Comments(repo, pr)
	if len(comments) != 1 || comments[0].Body == first || !strings.Contains(comments[0].Body, "succeeded") ||
		!strings.Contains(comments[0].Body, "https://ci.example.com/runs/"+runID) {
		t.Fatalf("the run's comment: %d comments, last %q", len(comments), comments[len(comments)-1].Body)
	}
	edits := 0
	for _, c := range fake.Calls() {
		if c.Method == http.MethodPatch && strings.Contains(c.Path, "/issues/comments/") {
			edits++
		}
	}
	statuses = fake.Statuses(repo, sha)
	if edits < 2 || statuses[len(statuses)-1].State != "success" {
		t.Fatalf("%d edits of the comment (want progress edits and the final one), last status %+v", edits, statuses[len(statuses)-1])
	}
}

// The worker function's own credentials (Lambda hands them in its environment) never reach an
// order's commands: they start without them, and get none when no order role is set.
func TestTheWorkerFunctionsCredentialsNeverReachAnOrder(t *testing.T) {
	t.Parallel()
	const key, secretKey, token = "ASIAWORKERROLEKEY", "worker-role-secret-key", "worker-role-session-token"
	d := setupWith(t, func(o *assembly.Options) {
		o.BaseEnv = []string{"PATH=" + os.Getenv("PATH"), "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=" + key,
			"AWS_SECRET_ACCESS_KEY=" + secretKey, "AWS_SESSION_TOKEN=" + token, "AWS_LAMBDA_FUNCTION_NAME=iac-ci-worker"}
	})
	runID := d.submit(t, `{"username": "creds", "orders": [{"order_name": "env", "execution_target": "lambda",
		"timeout": 60, "cmds": ["env | sort"]}]}`)
	if n, _ := d.poll(t, d.function(t, lambdafn.Intake), queues.Intake); n != 1 {
		t.Fatalf("intake: %d handed", n)
	}
	if n, failed := d.poll(t, d.function(t, lambdafn.Worker), queues.Orders("lambda")); n != 1 || len(failed) != 0 {
		t.Fatalf("worker: %d handed, %v failed", n, failed)
	}
	if n, _ := d.poll(t, d.function(t, lambdafn.Orchestrator), queues.Results); n != 1 {
		t.Fatalf("orchestrator: %d handed", n)
	}
	o, err := d.store.GetOrder(t.Context(), runID, 1)
	if err != nil || o.Status != domain.OrderSucceeded {
		t.Fatalf("order: %+v %v", o, err)
	}
	if !strings.Contains(o.LogTail, "AWS_REGION=us-east-1") {
		t.Fatalf("the commands' environment was not printed (the test would see nothing):\n%s", o.LogTail)
	}
	for _, own := range []string{key, secretKey, token, "AWS_ACCESS_KEY_ID=", "AWS_SESSION_TOKEN="} {
		if strings.Contains(o.LogTail, own) {
			t.Errorf("the commands saw the worker's own %q:\n%s", own, o.LogTail)
		}
	}
}
