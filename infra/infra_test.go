// Package infra_test checks the Terraform in infra/ against the code it deploys, so that a name,
// key, index or setting changed on one side and not the other fails here rather than in an
// account: the resources awsbackend.Describe lists (the queues of queues.Topology, the tables of
// dynamostore, the result notification of s3blobs, the variables the functions read), the
// functions of lambdafn and the queues each one serves, and the buildspec the launcher starts.
//
// Terraform itself checks the stacks (terraform_test.go: fmt, validate, a plan and an apply on
// the emulator); the checks in this file read the .tf files as text (hcl_test.go) where they
// compare the Terraform's own expressions with the code (which local names which queue, what a
// function's environment is made of), which no plan shows.
package infra_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/lambdafn"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/secrets/localsecrets"
)

// stack is one Terraform folder, read.
type stack struct {
	root   *block
	locals map[string]string
	vars   map[string]string // variable defaults that are plain strings
}

func load(t *testing.T, dir string) *stack {
	t.Helper()
	root, err := parseDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	s := &stack{root: root, locals: map[string]string{}, vars: map[string]string{}}
	for _, l := range root.all("locals") {
		for k, v := range l.attrs {
			if _, dup := s.locals[k]; dup {
				t.Fatalf("%s: local %s defined twice", dir, k)
			}
			s.locals[k] = v
		}
	}
	for _, v := range root.all("variable") {
		if d, ok := v.attrs["default"]; ok && isPlainString(d) {
			s.vars[v.labels[0]] = unquote(d)
		}
	}
	return s
}

func (s *stack) resource(t *testing.T, typ, name string) *block {
	t.Helper()
	for _, r := range s.root.all("resource") {
		if len(r.labels) == 2 && r.labels[0] == typ && r.labels[1] == name {
			return r
		}
	}
	t.Fatalf("no resource %s.%s", typ, name)
	return nil
}

func (s *stack) local(t *testing.T, name string) string {
	t.Helper()
	v, ok := s.locals[name]
	if !ok {
		t.Fatalf("no local %s", name)
	}
	return v
}

func (s *stack) object(t *testing.T, raw string) *block {
	t.Helper()
	o, err := object(raw)
	if err != nil {
		t.Fatalf("read object: %v", err)
	}
	return o
}

var (
	interpolation = regexp.MustCompile(`\$\{([^}]*)\}`)
	resourceAttr  = regexp.MustCompile(`^(aws_[a-z0-9_]+)\.([a-z0-9_]+)\.(name|bucket)$`)
)

// value resolves an expression made of plain strings, variables with plain defaults, locals
// and resources' name attributes, as Terraform would with every variable at its default.
func (s *stack) value(t *testing.T, raw string) string {
	t.Helper()
	raw = strings.TrimSpace(raw)
	switch {
	case strings.HasPrefix(raw, "local."):
		return s.value(t, s.local(t, strings.TrimPrefix(raw, "local.")))
	case strings.HasPrefix(raw, "var."):
		v, ok := s.vars[strings.TrimPrefix(raw, "var.")]
		if !ok {
			t.Fatalf("%s has no plain default", raw)
		}
		return v
	case resourceAttr.MatchString(raw):
		m := resourceAttr.FindStringSubmatch(raw)
		attr, ok := s.resource(t, m[1], m[2]).attrs[m[3]]
		if !ok {
			t.Fatalf("%s is not set", raw)
		}
		return s.value(t, attr)
	case strings.HasPrefix(raw, `"`) && strings.HasSuffix(raw, `"`):
		return interpolation.ReplaceAllStringFunc(unquote(raw), func(m string) string {
			return s.value(t, interpolation.FindStringSubmatch(m)[1])
		})
	}
	t.Fatalf("cannot resolve %q", raw)
	return ""
}

func number(t *testing.T, raw string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil {
		t.Fatalf("%q is not a number", raw)
	}
	return n
}

// deployment is 02-deploy, read, and what awsbackend describes for its default prefix.
func deployment(t *testing.T) (*stack, awsbackend.Resources, awsbackend.Config) {
	t.Helper()
	s := load(t, "02-deploy")
	if got := s.vars["prefix"]; got != awsbackend.DefaultPrefix {
		t.Fatalf("default prefix: got %q, want %q (awsbackend.DefaultPrefix)", got, awsbackend.DefaultPrefix)
	}
	cfg, err := awsbackend.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatalf("awsbackend config: %v", err)
	}
	return s, awsbackend.Describe(cfg), cfg
}

func TestDeployCreatesEveryQueueOfTheTopology(t *testing.T) {
	t.Parallel()
	s, res, cfg := deployment(t)
	if got := s.value(t, "local.queue_prefix"); got != cfg.QueuePrefix {
		t.Fatalf("queue prefix: got %q, want %q", got, cfg.QueuePrefix)
	}
	qs := s.object(t, s.local(t, "queues"))
	if len(qs.attrs) != len(res.Queues) {
		t.Fatalf("queues: got %d, want the %d of queues.Topology", len(qs.attrs), len(res.Queues))
	}
	for _, want := range res.Queues {
		raw, ok := qs.attrs[want.Role]
		if !ok {
			t.Fatalf("queue %s: missing from local.queues", want.Role)
		}
		q := s.object(t, raw)
		if got := number(t, q.attrs["visibility"]); got < want.VisibilityTimeoutSeconds {
			t.Fatalf("queue %s: visibility got %d, want at least %d", want.Role, got, want.VisibilityTimeoutSeconds)
		}
		dead := strings.TrimPrefix(want.DeadLetterQueue, cfg.QueuePrefix)
		if want.DeadLetterQueue == "" {
			dead = "null"
		} else {
			dead = strconv.Quote(dead)
		}
		if got := q.attrs["dead_letter"]; got != dead {
			t.Fatalf("queue %s: dead_letter got %s, want %s", want.Role, got, dead)
		}
		if got := number(t, q.attrs["max_receive_count"]); got != want.MaxReceiveCount {
			t.Fatalf("queue %s: max_receive_count got %d, want %d", want.Role, got, want.MaxReceiveCount)
		}
	}
	for _, name := range []string{"main", "dead_letter"} {
		r := s.resource(t, "aws_sqs_queue", name)
		if got := r.attrs["name"]; got != `"${local.queue_prefix}${each.key}"` {
			t.Fatalf("aws_sqs_queue.%s name: got %s, want the queue prefix and the queue's role", name, got)
		}
		if got := number(t, r.attrs["receive_wait_time_seconds"]); got != res.Queues[0].ReceiveWaitTimeSeconds {
			t.Fatalf("aws_sqs_queue.%s receive_wait_time_seconds: got %d, want %d", name, got, res.Queues[0].ReceiveWaitTimeSeconds)
		}
	}
	redrive := s.resource(t, "aws_sqs_queue", "main").attrs["redrive_policy"]
	for _, want := range []string{"deadLetterTargetArn = aws_sqs_queue.dead_letter[each.value.dead_letter].arn", "maxReceiveCount     = each.value.max_receive_count"} {
		if !strings.Contains(redrive, want) {
			t.Fatalf("redrive policy %s: missing %q", redrive, want)
		}
	}
}

func TestDeployCreatesTheTablesOfDynamostore(t *testing.T) {
	t.Parallel()
	s, res, _ := deployment(t)
	for _, want := range res.Tables {
		r := s.resource(t, "aws_dynamodb_table", want.Role)
		if got := s.value(t, r.attrs["name"]); got != want.Name {
			t.Fatalf("table %s: name got %q, want %q", want.Role, got, want.Name)
		}
		for attr, w := range map[string]string{"billing_mode": want.BillingMode, "hash_key": want.HashKey, "range_key": want.RangeKey} {
			if got := s.value(t, r.attrs[attr]); got != w {
				t.Fatalf("table %s: %s got %q, want %q", want.Role, attr, got, w)
			}
		}
		var gotAttrs, wantAttrs []string
		for _, a := range r.all("attribute") {
			gotAttrs = append(gotAttrs, s.value(t, a.attrs["name"])+":"+s.value(t, a.attrs["type"]))
		}
		for _, a := range want.Attributes {
			wantAttrs = append(wantAttrs, a.Name+":"+a.Type)
		}
		sort.Strings(gotAttrs)
		sort.Strings(wantAttrs)
		if !slices.Equal(gotAttrs, wantAttrs) {
			t.Fatalf("table %s: attributes got %v, want %v", want.Role, gotAttrs, wantAttrs)
		}
		var gotIdx, wantIdx []string
		for _, g := range r.all("global_secondary_index") {
			gotIdx = append(gotIdx, strings.Join([]string{s.value(t, g.attrs["name"]), s.value(t, g.attrs["hash_key"]),
				s.value(t, g.attrs["range_key"]), s.value(t, g.attrs["projection_type"])}, " "))
		}
		for _, g := range want.GlobalSecondaryIndexes {
			wantIdx = append(wantIdx, strings.Join([]string{g.Name, g.HashKey, g.RangeKey, g.ProjectionType}, " "))
		}
		sort.Strings(gotIdx)
		sort.Strings(wantIdx)
		if !slices.Equal(gotIdx, wantIdx) {
			t.Fatalf("table %s: indexes got %v, want %v", want.Role, gotIdx, wantIdx)
		}
		ttl := r.all("ttl")
		switch {
		case want.TTLAttribute == "" && len(ttl) != 0:
			t.Fatalf("table %s: has a ttl, want none", want.Role)
		case want.TTLAttribute != "" && (len(ttl) != 1 || s.value(t, ttl[0].attrs["attribute_name"]) != want.TTLAttribute || ttl[0].attrs["enabled"] != "true"):
			t.Fatalf("table %s: want ttl on %s enabled", want.Role, want.TTLAttribute)
		}
	}
}

func TestDeployNotifiesTheResultsQueueOfResults(t *testing.T) {
	t.Parallel()
	s, res, cfg := deployment(t)
	var notifying []awsbackend.BucketResource
	for _, b := range res.Buckets {
		s.resource(t, "aws_s3_bucket", b.Role)
		if b.Notification != nil {
			notifying = append(notifying, b)
		}
	}
	if len(notifying) != 1 {
		t.Fatalf("buckets with a notification: got %d, want 1", len(notifying))
	}
	want := notifying[0]
	n := s.resource(t, "aws_s3_bucket_notification", "results")
	if got := n.attrs["bucket"]; got != "aws_s3_bucket."+want.Role+".id" {
		t.Fatalf("notification bucket: got %s, want the %s bucket", got, want.Role)
	}
	q, err := n.one("queue")
	if err != nil {
		t.Fatalf("notification: %v", err)
	}
	role := strings.TrimPrefix(want.Notification.Queue, cfg.QueuePrefix)
	if got := q.attrs["queue_arn"]; got != fmt.Sprintf("aws_sqs_queue.main[%q].arn", role) {
		t.Fatalf("notification queue: got %s, want the %s queue", got, role)
	}
	evs, err := list(q.attrs["events"])
	if err != nil || !slices.Equal(evs, want.Notification.Events) {
		t.Fatalf("notification events: got %v (%v), want %v", evs, err, want.Notification.Events)
	}
	if got := s.value(t, q.attrs["filter_prefix"]); got != want.Notification.FilterPrefix {
		t.Fatalf("notification filter_prefix: got %q, want %q", got, want.Notification.FilterPrefix)
	}
	if got := s.value(t, q.attrs["filter_suffix"]); got != want.Notification.FilterSuffix {
		t.Fatalf("notification filter_suffix: got %q, want %q", got, want.Notification.FilterSuffix)
	}
	// S3 may send to the queue only from that bucket.
	var found bool
	for _, d := range s.root.all("data") {
		if len(d.labels) != 2 || d.labels[0] != "aws_iam_policy_document" || d.labels[1] != "results_queue" {
			continue
		}
		for _, st := range d.all("statement") {
			for _, c := range st.all("condition") {
				found = found || c.attrs["variable"] == `"aws:SourceArn"` && c.attrs["values"] == "[aws_s3_bucket."+want.Role+".arn]"
			}
		}
	}
	if !found {
		t.Fatalf("the results queue's policy does not limit S3 to the %s bucket", want.Role)
	}
}

func TestDeployTellsTheFunctionsEveryName(t *testing.T) {
	t.Parallel()
	s, res, cfg := deployment(t)
	env := s.object(t, s.local(t, "function_env"))
	// What each variable must hold, with every Terraform variable at its default. The buckets
	// carry a suffix Terraform adds (their names are global), so only their reference is checked.
	want := map[string]string{
		awsbackend.EnvPrefix:           cfg.Prefix,
		awsbackend.EnvQueuePrefix:      cfg.QueuePrefix,
		awsbackend.EnvOrdersTable:      cfg.OrdersTable,
		awsbackend.EnvEventsTable:      cfg.EventsTable,
		awsbackend.EnvRunKeyPrefix:     cfg.RunKeyPrefix,
		awsbackend.EnvCodeBuildProject: cfg.CodeBuildProject,
		awsbackend.EnvSSMDocument:      cfg.SSMDocument,
	}
	variables := []string{res.RunKeyPrefix.Variable, res.SSMDocument.Variable, res.CodeBuildProject.Variable}
	for _, q := range res.Queues {
		variables = append(variables, q.Variable)
	}
	for _, tb := range res.Tables {
		variables = append(variables, tb.Variable)
	}
	for _, b := range res.Buckets {
		variables = append(variables, b.Variable)
		if got := env.attrs[b.Variable]; got != "aws_s3_bucket."+b.Role+".bucket" {
			t.Fatalf("%s: got %s, want the %s bucket's name", b.Variable, got, b.Role)
		}
	}
	for _, v := range append(variables, lambdafn.EnvPublicURL, lambdafn.EnvLogLevel) {
		if _, ok := env.attrs[v]; !ok {
			t.Fatalf("function_env: %s is not set", v)
		}
	}
	for v, w := range want {
		if got := s.value(t, env.attrs[v]); got != w {
			t.Fatalf("%s: got %q, want %q", v, got, w)
		}
	}
	webhook := s.local(t, "webhook_env")
	for _, v := range []string{lambdafn.EnvWebhookSecretLocation, lambdafn.EnvStatusAuthorization} {
		if !strings.Contains(webhook, v+" = ") {
			t.Fatalf("webhook_env: %s is not set", v)
		}
	}
	// Every function reads the tokens: the API token signs the links comments carry, and every
	// function that moves a run keeps its pull request's comment.
	for _, v := range []string{lambdafn.EnvGitHubTokenLocation, lambdafn.EnvGitHubAPIURL, lambdafn.EnvAPITokenLocation} {
		if !strings.Contains(s.local(t, "optional_env"), v+" = ") {
			t.Fatalf("optional_env: %s is not set", v)
		}
	}
	if !strings.Contains(s.local(t, "worker_env"), awsbackend.EnvOrderRoleARN+" = aws_iam_role.order.arn") {
		t.Fatalf("worker_env: %s is not the order role's", awsbackend.EnvOrderRoleARN)
	}
	fn := s.resource(t, "aws_lambda_function", "fn")
	e, err := fn.one("environment")
	if err != nil {
		t.Fatalf("function environment: %v", err)
	}
	if !strings.Contains(s.local(t, "optional_env"), lambdafn.EnvGitBaseURL+" = ") {
		t.Fatalf("optional_env: %s is not set", lambdafn.EnvGitBaseURL)
	}
	if got := e.attrs["variables"]; !strings.Contains(got, "{ "+lambdafn.EnvFunction+" = each.key }") || !strings.Contains(got, "local.optional_env") {
		t.Fatalf("function environment %s: does not set %s to the function's name", got, lambdafn.EnvFunction)
	}
	ic, err := fn.one("image_config")
	if err != nil || ic.attrs["command"] != `["lambda"]` {
		t.Fatalf("image_config: got %v (%v), want command [\"lambda\"]", ic, err)
	}
	if got := s.value(t, "local.ssm_document"); got != cfg.SSMDocument {
		t.Fatalf("ssm document: got %q, want %q", got, cfg.SSMDocument)
	}
	doc := s.resource(t, "aws_ssm_document", "run_commands")
	if _, err := os.Stat(filepath.Join("02-deploy", "..", "ssm", "iac-ci-run-commands.yaml")); err != nil ||
		!strings.Contains(doc.attrs["content"], "../ssm/iac-ci-run-commands.yaml") {
		t.Fatalf("ssm document content: got %s (%v), want the file in infra/ssm", doc.attrs["content"], err)
	}
}

// served reports which queues of queues.Topology each function serves, by handing it a record
// of every queue: a function answers a record of a queue it does not serve as failed, and a
// malformed record of one it serves as done.
func served(t *testing.T) map[string][]string {
	t.Helper()
	db := sqlitedbtest.Open(t, "")
	broker, st := sqlitedbtest.Ports(t, db, queues.Topology()...)
	bucket, err := folderblobs.New(t.TempDir(), "internal", folderblobs.Options{})
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	keys, err := localsecrets.NewKeys(t.TempDir())
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	sys, err := assembly.New(assembly.Ports{Store: st, Queues: broker, Internal: bucket, Done: bucket, Keys: keys,
		Starters: map[domain.Target]consumers.Starter{domain.TargetCodeBuild: &awslaunch.CodeBuild{}, domain.TargetSSM: &awslaunch.SSM{}}},
		assembly.Options{ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	var ev events.SQSEvent
	for _, spec := range queues.Topology() {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: spec.Name, Body: "not a message",
			EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:p-" + spec.Name, Attributes: map[string]string{"ApproximateReceiveCount": "1"}})
	}
	payload, _ := json.Marshal(ev)
	out := map[string][]string{}
	for _, name := range lambdafn.Names {
		h, err := lambdafn.New(name, sys, "p-")
		if err != nil {
			t.Fatalf("function %s: %v", name, err)
		}
		if name == lambdafn.Webhook || name == lambdafn.Sweeper {
			out[name] = []string{}
			continue
		}
		raw, err := h.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatalf("function %s: %v", name, err)
		}
		var resp events.SQSEventResponse
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatalf("function %s: %v", name, err)
		}
		failed := map[string]bool{}
		for _, f := range resp.BatchItemFailures {
			failed[f.ItemIdentifier] = true
		}
		out[name] = []string{}
		for _, spec := range queues.Topology() {
			if !failed[spec.Name] {
				out[name] = append(out[name], spec.Name)
			}
		}
	}
	return out
}

func TestDeployRunsEveryFunctionOnTheQueuesItServes(t *testing.T) {
	t.Parallel()
	s, res, _ := deployment(t)
	fns := s.object(t, s.local(t, "functions"))
	var names []string
	for n := range fns.attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	want := slices.Clone(lambdafn.Names)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Fatalf("functions: got %v, want %v (lambdafn.Names)", names, want)
	}
	qs := s.object(t, s.local(t, "queues"))
	serves := served(t)
	consumed := map[string]string{}
	for _, name := range names {
		f := s.object(t, fns.attrs[name])
		got, err := list(f.attrs["queues"])
		if err != nil {
			t.Fatalf("function %s queues: %v", name, err)
		}
		sort.Strings(got)
		w := serves[name]
		sort.Strings(w)
		if !slices.Equal(got, w) {
			t.Fatalf("function %s: event sources got %v, want the queues it serves, %v", name, got, w)
		}
		timeout := number(t, f.attrs["timeout"])
		for _, q := range got {
			if other, dup := consumed[q]; dup {
				t.Fatalf("queue %s: consumed by %s and %s", q, other, name)
			}
			consumed[q] = name
			// Lambda refuses an event source whose visibility timeout is shorter than the
			// function's timeout: the message would come back while the function still runs.
			if v := number(t, s.object(t, qs.attrs[q]).attrs["visibility"]); v < timeout {
				t.Fatalf("queue %s: visibility %d shorter than function %s's timeout %d", q, v, name, timeout)
			}
			if b := number(t, f.attrs["batch_size"]); b < 1 || b > queues.MaxBatch {
				t.Fatalf("function %s: batch_size %d, want 1 to %d", name, b, queues.MaxBatch)
			}
		}
		// The worker fetches the bundle before the commands and delivers the log and result
		// after them: the longest lambda order leaves it a minute.
		if name == lambdafn.Worker && timeout < domain.TargetLambda.TimeoutLimit()+60 {
			t.Fatalf("worker timeout %d: leaves the longest lambda order (%d s) no minute to deliver its result", timeout, domain.TargetLambda.TimeoutLimit())
		}
	}
	// Every queue has a consumer but results-dlq, whose messages wait for an operator (the
	// sweeper finds an unrecorded result again).
	for _, q := range res.Queues {
		if _, ok := consumed[q.Role]; !ok && q.Role != queues.Results+queues.DeadLetterSuffix {
			t.Fatalf("queue %s: no function consumes it", q.Role)
		}
	}
	esm := s.resource(t, "aws_lambda_event_source_mapping", "queue")
	if got, err := list(esm.attrs["function_response_types"]); err != nil || !slices.Equal(got, []string{"ReportBatchItemFailures"}) {
		t.Fatalf("event source mapping function_response_types: got %v (%v), want [ReportBatchItemFailures]", got, err)
	}
	api := s.object(t, s.local(t, "routes"))
	for _, route := range []string{"POST /webhook", "POST /ssm", "GET /runs/{run_id}"} {
		if _, ok := api.attrs[route]; !ok {
			t.Fatalf("API: no route %s", route)
		}
	}
	sched := s.resource(t, "aws_scheduler_schedule", "sweeper")
	target, err := sched.one("target")
	if err != nil || sched.attrs["schedule_expression"] != `"rate(1 minute)"` || target.attrs["arn"] != `aws_lambda_function.fn["sweeper"].arn` {
		t.Fatalf("scheduler: got %v, target %v (%v), want the sweeper every minute", sched.attrs, target, err)
	}
}

func TestCodeBuildRunsWhatTheLauncherStarts(t *testing.T) {
	t.Parallel()
	s, _, cfg := deployment(t)
	p := s.resource(t, "aws_codebuild_project", "worker")
	if got := s.value(t, p.attrs["name"]); got != cfg.CodeBuildProject {
		t.Fatalf("codebuild project: got %q, want %q", got, cfg.CodeBuildProject)
	}
	src, err := p.one("source")
	if err != nil {
		t.Fatalf("codebuild source: %v", err)
	}
	spec, err := heredocText(src.attrs["buildspec"])
	if err != nil || spec != awslaunch.Buildspec {
		t.Fatalf("codebuild buildspec: got %q (%v), want awslaunch.Buildspec %q", spec, err, awslaunch.Buildspec)
	}
	env, err := p.one("environment")
	if err != nil || env.attrs["image"] != "local.image_uri" {
		t.Fatalf("codebuild image: got %v (%v), want the functions' image", env, err)
	}
	fn := s.resource(t, "aws_lambda_function", "fn")
	if fn.attrs["image_uri"] != "local.image_uri" {
		t.Fatalf("function image: got %s, want local.image_uri", fn.attrs["image_uri"])
	}
}

func TestBootstrapAndRepository(t *testing.T) {
	t.Parallel()
	b := load(t, "00-bootstrap")
	// The S3 backend locks with a lock file (use_lockfile): no lock table.
	for _, r := range b.root.all("resource") {
		if r.labels[0] == "aws_dynamodb_table" {
			t.Fatalf("00-bootstrap: creates a lock table, but the backend locks with use_lockfile")
		}
	}
	for _, out := range []string{"state_bucket", "region"} {
		if !slices.ContainsFunc(b.root.all("output"), func(o *block) bool { return o.labels[0] == out }) {
			t.Fatalf("00-bootstrap: no output %s (scripts/generate_backend.sh reads it)", out)
		}
	}
	e := load(t, "01-ecr")
	repo := e.resource(t, "aws_ecr_repository", "iac_ci")
	if repo.attrs["image_tag_mutability"] != `"IMMUTABLE"` || repo.attrs["name"] != "var.prefix" {
		t.Fatalf("repository: got %v, want named after the prefix, with immutable tags", repo.attrs)
	}
	for _, dir := range []string{"00-bootstrap", "01-ecr"} {
		if got := load(t, dir).vars["prefix"]; got != awsbackend.DefaultPrefix {
			t.Fatalf("%s default prefix: got %q, want %q", dir, got, awsbackend.DefaultPrefix)
		}
	}
}

func TestReaderFailsOnWhatItCannotRead(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"resource \"a\" \"b\" {\n  x = 1\n",        // unclosed block
		"resource \"a\" \"b\" {\n  x = [1, 2\n}\n", // unclosed list
		"x = \"unterminated\n",                     // string
		"resource \"a\" \"b\" {\n  x = 1\n  x = 2\n}\n",
	} {
		if _, err := (&parser{src: []rune(src), file: "t.tf"}).body(true); err == nil {
			t.Fatalf("read %q: got no error, want one", src)
		}
	}
	b, err := (&parser{src: []rune("locals {\n  m = { \"a-b\" = { x = 1, y = \"${var.p}-z\" } } # note\n  h = <<-EOT\n    one\n      two\n  EOT\n}\n"), file: "t.tf"}).body(true)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	l, _ := b.one("locals")
	m, err := object(l.attrs["m"])
	if err != nil {
		t.Fatalf("object: %v", err)
	}
	inner, err := object(m.attrs["a-b"])
	if err != nil || inner.attrs["x"] != "1" || inner.attrs["y"] != `"${var.p}-z"` {
		t.Fatalf("object: got %v (%v), want x 1 and y \"${var.p}-z\"", inner, err)
	}
	if h, err := heredocText(l.attrs["h"]); err != nil || h != "one\n  two\n" {
		t.Fatalf("heredoc: got %q (%v), want \"one\\n  two\\n\"", h, err)
	}
}
