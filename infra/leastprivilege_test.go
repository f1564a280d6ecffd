package infra_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codebuild"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/awscalls"
	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/lambdafn"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/secrets"
)

// Least privilege, derived: the functions run the diamond on the resources Terraform made, each
// built as `iac-ci lambda` builds it from the variables Terraform gave it and counting its own
// AWS calls; the test plays Lambda's part (the event source mappings of the plan, the schedule).
// Each function's calls, as IAM actions, must be granted by its role.

// iamActions maps an SDK operation onto the IAM actions it needs, where they differ from
// "service:Operation": batches are authorized per entry, HEAD as GET, a transaction by its
// items' actions.
var iamActions = map[string][]string{
	"sqs.SendMessageBatch":               {"sqs:SendMessage"},
	"sqs.DeleteMessageBatch":             {"sqs:DeleteMessage"},
	"sqs.ChangeMessageVisibilityBatch":   {"sqs:ChangeMessageVisibility"},
	"s3.HeadObject":                      {"s3:GetObject"},
	"s3.ListObjectsV2":                   {"s3:ListBucket"},
	"s3.DeleteObjects":                   {"s3:DeleteObject"},
	"dynamodb.TransactWriteItems":        {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"},
	"dynamodb.TransactGetItems":          {"dynamodb:GetItem"},
	"secretsmanager.BatchGetSecretValue": {"secretsmanager:GetSecretValue"},
}

// actionsOf turns counted operations ("sqs.SendMessageBatch") into IAM actions.
func actionsOf(ops []string) []string {
	set := map[string]bool{}
	for _, op := range ops {
		if a, ok := iamActions[op]; ok {
			for _, x := range a {
				set[x] = true
			}
			continue
		}
		service, name, _ := strings.Cut(op, ".")
		set[service+":"+name] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// ungranted lists the actions a role's policy does not allow, by exact name (wildcards are
// refused on their own, by TestRolesGrantNoWildcards).
func ungranted(p policy, actions []string) []string {
	allowed := map[string]bool{}
	for _, s := range p.Statement {
		if s.Effect == "Allow" {
			for _, a := range s.Action {
				allowed[strings.ToLower(a)] = true
			}
		}
	}
	var out []string
	for _, a := range actions {
		if !allowed[strings.ToLower(a)] {
			out = append(out, a)
		}
	}
	return out
}

// lambdaHost runs the functions of one deployment.
type lambdaHost struct {
	handlers map[string]lambda.Handler
	counters map[string]*awscalls.Counter
	sqs      *sqs.Client         // the event source mappings' own, uncounted
	mappings map[string][]string // function -> queues, from the plan
	urls     map[string]string   // queue -> URL
	arns     map[string]string   // queue -> ARN
	batch    map[string]int32    // function -> batch size
	builds   *codeBuild
	held     map[string]bool // queues whose mapping is paused
}

func newLambdaHost(t *testing.T, d *deployed) *lambdaHost {
	t.Helper()
	h := &lambdaHost{handlers: map[string]lambda.Handler{}, counters: map[string]*awscalls.Counter{},
		sqs: sqs.NewFromConfig(awstest.Config(t)), mappings: map[string][]string{}, urls: map[string]string{},
		arns: map[string]string{}, batch: map[string]int32{}, held: map[string]bool{}}
	// The event source mappings, as planned (moto cannot keep them: see motoWorkarounds).
	for addr, r := range planned(t) {
		if r.Type != "aws_lambda_event_source_mapping" {
			continue
		}
		key, _ := r.Index.(string)
		fn, queue, ok := strings.Cut(key, ":")
		if !ok {
			t.Fatalf("%s: index %v is not function:queue", addr, r.Index)
		}
		h.mappings[fn] = append(h.mappings[fn], queue)
		size, _ := r.Values["batch_size"].(float64)
		h.batch[fn] = int32(size)
	}
	for addr, r := range d.resources {
		if r.Type == "aws_sqs_queue" {
			key, _ := r.Index.(string)
			h.urls[key], h.arns[key] = str(r.Values["url"]), str(r.Values["arn"])
			if h.urls[key] == "" {
				t.Fatalf("%s: no url", addr)
			}
		}
	}
	// The webhook reads its secret where Terraform told it to look.
	env := d.functionEnv(t, lambdafn.Webhook)
	loc, err := domain.ParseSecretLocation(env[lambdafn.EnvWebhookSecretLocation])
	if err != nil {
		t.Fatalf("%s: %v", lambdafn.EnvWebhookSecretLocation, err)
	}
	if _, err := ssm.NewFromConfig(awstest.Config(t)).PutParameter(t.Context(), &ssm.PutParameterInput{Name: aws.String(loc.Ref),
		Value: aws.String(webhookSecret), Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
		t.Fatalf("put the webhook secret: %v", err)
	}
	h.builds = startCodeBuild(t, d)
	for _, name := range lambdafn.Names {
		h.counters[name] = &awscalls.Counter{}
		h.handlers[name] = buildFunction(t, name, d.functionEnv(t, name), h.counters[name], h.builds.url)
	}
	return h
}

// buildFunction builds one function as `iac-ci lambda` does, on the resources its variables
// name, its AWS calls counted.
func buildFunction(t *testing.T, name string, env map[string]string, counter *awscalls.Counter, codeBuildURL string) lambda.Handler {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	cfg, err := awsbackend.FromEnv(getenv)
	if err != nil {
		t.Fatalf("function %s: %v", name, err)
	}
	awsCfg := awstest.Config(t)
	// Counted as the SDK starts each operation, presigning included: a presigned URL carries
	// its signer's rights.
	counter.Attach(&awsCfg)
	clients := awsbackend.NewClients(awsCfg, cfg, awsbackend.ClientOptions{Serialize: true})
	b, err := awsbackend.Open(cfg, clients, true, nil)
	if err != nil {
		t.Fatalf("function %s: %v", name, err)
	}
	// CodeBuild is the stand-in; its client is otherwise the function's own.
	builds := codebuild.NewFromConfig(awsCfg, func(o *codebuild.Options) { o.BaseEndpoint = aws.String(codeBuildURL) })
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ports := b.Ports()
	ports.Starters[domain.TargetCodeBuild] = &awslaunch.CodeBuild{Client: builds, Project: cfg.CodeBuildProject}
	o := assembly.Options{Log: log, ScratchDir: t.TempDir(), Workers: 1}
	secretOf := func(variable string) string {
		if getenv(variable) == "" {
			return ""
		}
		loc, err := domain.ParseSecretLocation(getenv(variable))
		if err != nil {
			t.Fatalf("%s: %v", variable, err)
		}
		v, err := secrets.Resolve(t.Context(), b.Secrets, loc, getenv)
		if err != nil {
			t.Fatalf("%s: %v", variable, err)
		}
		return v
	}
	// As `iac-ci lambda` does: every function reads the API token, which signs status links;
	// the webhook its secret too.
	o.APIToken = []byte(secretOf(lambdafn.EnvAPITokenLocation))
	o.GuardedUpstream = getenv(lambdafn.EnvStatusAuthorization) == "AWS_IAM"
	if name == lambdafn.Webhook {
		o.WebhookSecret = []byte(secretOf(lambdafn.EnvWebhookSecretLocation))
	}
	sys, err := assembly.New(ports, o)
	if err != nil {
		t.Fatalf("function %s: %v", name, err)
	}
	h, err := lambdafn.New(name, sys, cfg.QueuePrefix)
	if err != nil {
		t.Fatalf("function %s: %v", name, err)
	}
	return h
}

func invoke[Out any](t *testing.T, h lambda.Handler, payload any) Out {
	t.Helper()
	in, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
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

// request is one HTTP API request (payload format 2.0) to the webhook function.
func (h *lambdaHost) request(t *testing.T, method, path string, body []byte, headers map[string]string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	req := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "$default"}
	req.RequestContext.Stage, req.RequestContext.RequestID = "$default", domain.NewTraceID()
	req.RequestContext.HTTP.Protocol, req.RequestContext.HTTP.SourceIP = "HTTP/1.1", "127.0.0.1"
	req.RouteKey = method + " " + path
	req.RawPath, req.RawQueryString = path, ""
	req.RequestContext.HTTP.Method, req.RequestContext.HTTP.Path = method, path
	req.Body, req.IsBase64Encoded = string(body), false
	req.Headers = map[string]string{"content-type": "application/json", "content-length": strconv.Itoa(len(body))}
	for k, v := range headers {
		req.Headers[k] = v
	}
	return invoke[events.APIGatewayV2HTTPResponse](t, h.handlers[lambdafn.Webhook], req)
}

// submit posts a signed job through the webhook function and returns its run id.
func (h *lambdaHost) submit(t *testing.T, body []byte) string {
	t.Helper()
	resp := h.request(t, http.MethodPost, "/webhook", body, map[string]string{"x-hub-signature-256": producers.Sign([]byte(webhookSecret), body)})
	var acc struct {
		RunID string `json:"run_id"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal([]byte(resp.Body), &acc) != nil || acc.RunID == "" {
		t.Fatalf("POST /webhook: %d %s", resp.StatusCode, resp.Body)
	}
	return acc.RunID
}

// until delivers messages and sweeps now and then until the run ends, and returns it.
func (h *lambdaHost) until(t *testing.T, runID string, more func() bool) runView {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var view runView
	for i := 0; ctx.Err() == nil; i++ {
		idle := h.deliver(t) == 0
		if i%5 == 0 {
			h.sweep(t)
		}
		r := h.request(t, http.MethodGet, "/runs/"+runID, nil, nil)
		if r.StatusCode == http.StatusOK {
			_ = json.Unmarshal([]byte(r.Body), &view)
		}
		if view.Status.Terminal() || more != nil && !more() {
			return view
		}
		if idle {
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Fatalf("run %s did not end: %+v", runID, view)
	return view
}

// deliver hands each function the messages waiting on its queues, one batch per queue, as its
// event source mappings do, and deletes those the function did not report failed. It returns
// how many messages it handed over.
func (h *lambdaHost) deliver(t *testing.T) int {
	t.Helper()
	handed := 0
	for fn, qs := range h.mappings {
		for _, q := range qs {
			if h.held[q] {
				continue
			}
			out, err := h.sqs.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(h.urls[q]),
				MaxNumberOfMessages: min(h.batch[fn], 10), MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"All"},
				MessageAttributeNames: []string{"All"}, VisibilityTimeout: 30})
			if err != nil {
				t.Fatalf("receive from %s: %v", q, err)
			}
			if len(out.Messages) == 0 {
				continue
			}
			var ev events.SQSEvent
			for _, m := range out.Messages {
				rec := events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
					Body: aws.ToString(m.Body), Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: m.Attributes,
					MessageAttributes: map[string]events.SQSMessageAttribute{}, EventSource: "aws:sqs",
					EventSourceARN: h.arns[q], AWSRegion: awstest.Region}
				for k, a := range m.MessageAttributes {
					rec.MessageAttributes[k] = events.SQSMessageAttribute{StringValue: a.StringValue, DataType: aws.ToString(a.DataType)}
				}
				ev.Records = append(ev.Records, rec)
			}
			resp := invoke[events.SQSEventResponse](t, h.handlers[fn], ev)
			for _, m := range out.Messages {
				handed++
				if slices.ContainsFunc(resp.BatchItemFailures, func(f events.SQSBatchItemFailure) bool {
					return f.ItemIdentifier == aws.ToString(m.MessageId)
				}) {
					continue
				}
				if _, err := h.sqs.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(h.urls[q]),
					ReceiptHandle: m.ReceiptHandle}); err != nil {
					t.Fatalf("delete from %s: %v", q, err)
				}
			}
		}
	}
	return handed
}

func (h *lambdaHost) sweep(t *testing.T) {
	t.Helper()
	ev := events.EventBridgeEvent{Source: "iac-ci.scheduler", DetailType: "sweep", Detail: json.RawMessage("{}")}
	in, _ := json.Marshal(ev)
	if _, err := h.handlers[lambdafn.Sweeper].Invoke(t.Context(), in); err != nil {
		t.Fatalf("sweeper: %v", err)
	}
}

func TestEveryRoleGrantsWhatItsFunctionCalls(t *testing.T) {
	t.Parallel()
	d := applied(t)
	useStack(t)
	host := newLambdaHost(t, d)
	view := host.until(t, host.submit(t, diamondJob(t, applyPrefix+"-code-functions")), nil)
	if view.Status != domain.RunSucceeded {
		t.Fatalf("the diamond through the functions: run %q, orders %+v", view.Status, view.Orders)
	}
	// An order whose message dies: the worker's mapping is paused, its message is moved to the
	// dead-letter queue as SQS would after too many receives, and the deadletters function
	// ends it.
	lambdaQ, deadQ := "orders-lambda", "orders-lambda-dlq"
	host.held[lambdaQ] = true
	job := []byte(`{"username":"infra","orders":[{"order_name":"dies","execution_target":"lambda","timeout":60,"cmds":["true"]}]}`)
	runID := host.submit(t, job)
	var moved bool
	host.until(t, runID, func() bool {
		out, err := host.sqs.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(host.urls[lambdaQ]),
			MaxNumberOfMessages: 1, MessageAttributeNames: []string{"All"}})
		if err != nil || len(out.Messages) == 0 {
			return true
		}
		m := out.Messages[0]
		if _, err := host.sqs.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(host.urls[deadQ]), MessageBody: m.Body,
			MessageAttributes: m.MessageAttributes}); err != nil {
			t.Fatalf("dead-letter: %v", err)
		}
		if _, err := host.sqs.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(host.urls[lambdaQ]), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		moved = true
		return false
	})
	if !moved {
		t.Fatalf("run %s ended before its order was queued", runID)
	}
	if view := host.until(t, runID, nil); view.Status != domain.RunFailed {
		t.Fatalf("a dead order: run %q, orders %+v, want failed", view.Status, view.Orders)
	}
	host.sweep(t)

	policies := rolePolicies(t, d)
	calls := map[string][]string{}
	for _, fn := range lambdafn.Names {
		ops := slices.Sorted(maps.Keys(host.counters[fn].Snapshot()))
		// The event source mappings poll with the function's role.
		if len(host.mappings[fn]) > 0 {
			ops = append(ops, "sqs.ReceiveMessage", "sqs.DeleteMessage", "sqs.GetQueueAttributes")
		}
		calls[fn] = actionsOf(ops)
		t.Logf("%s calls %s", fn, strings.Join(calls[fn], ", "))
	}
	if host.builds.started() != 2 {
		t.Errorf("CodeBuild started %d builds, want one per codebuild order (lint, test)", host.builds.started())
	}
	for _, fn := range []string{lambdafn.Webhook, lambdafn.Intake, lambdafn.Worker, lambdafn.Launcher, lambdafn.Orchestrator, lambdafn.Sweeper} {
		if len(calls[fn]) == 0 {
			t.Errorf("function %s made no AWS call: the run did not go through it", fn)
		}
	}
	var problems []string
	for _, fn := range lambdafn.Names {
		p, ok := policies[fmt.Sprintf("aws_iam_role_policy.function[%q]", fn)]
		if !ok {
			t.Fatalf("no role policy for %s", fn)
		}
		for _, a := range ungranted(p, calls[fn]) {
			problems = append(problems, fn+" calls "+a+", which its role does not grant")
		}
	}
	if len(problems) > 0 {
		t.Fatalf("roles lack what their functions call:\n%s", strings.Join(problems, "\n"))
	}

	// Without sqs:SendMessage the webhook cannot queue what it accepted: the check says so.
	addr := fmt.Sprintf("aws_iam_role_policy.function[%q]", lambdafn.Webhook)
	var narrowed policy
	for _, s := range policies[addr].Statement {
		s.Action = slices.DeleteFunc(slices.Clone(s.Action), func(a string) bool { return a == "sqs:SendMessage" })
		narrowed.Statement = append(narrowed.Statement, s)
	}
	if got := ungranted(narrowed, calls[lambdafn.Webhook]); !slices.Equal(got, []string{"sqs:SendMessage"}) {
		t.Fatalf("the webhook's role without sqs:SendMessage: the check found %v missing, want [sqs:SendMessage]", got)
	}
}
