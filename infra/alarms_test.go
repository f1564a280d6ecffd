package infra_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/lambdafn"
)

// alarm is what an alarm watches, read from the plan: its metrics (namespace/name) and the
// dimension value they are about.
type alarm struct {
	address   string
	metrics   []string // "AWS/SQS/ApproximateAgeOfOldestMessage"
	subject   string   // the QueueName or FunctionName dimension
	threshold float64
	operator  string
	actions   bool
}

func alarmsOf(res map[string]plannedResource) []alarm {
	var out []alarm
	for _, r := range res {
		if r.Type != "aws_cloudwatch_metric_alarm" {
			continue
		}
		a := alarm{address: r.Address, operator: str(r.Values["comparison_operator"])}
		a.threshold, _ = r.Values["threshold"].(float64)
		// The topic's ARN is known only after apply: the plan marks it (or the
		// whole set) unknown.
		acts, _ := r.Values["alarm_actions"].([]any)
		unknown, _ := r.Unknown["alarm_actions"].([]any)
		whole, _ := r.Unknown["alarm_actions"].(bool)
		a.actions = len(acts) > 0 || len(unknown) > 0 || whole
		add := func(namespace, name string, dims any) {
			a.metrics = append(a.metrics, namespace+"/"+name)
			if d, ok := dims.(map[string]any); ok {
				for _, k := range []string{"QueueName", "FunctionName"} {
					if v := str(d[k]); v != "" {
						a.subject = v
					}
				}
			}
		}
		if n := str(r.Values["metric_name"]); n != "" {
			add(str(r.Values["namespace"]), n, r.Values["dimensions"])
		}
		queries, _ := r.Values["metric_query"].([]any)
		for _, q := range queries {
			qm, _ := q.(map[string]any)
			ms, _ := qm["metric"].([]any)
			for _, m := range ms {
				mm, _ := m.(map[string]any)
				add(str(mm["namespace"]), str(mm["metric_name"]), mm["dimensions"])
			}
		}
		out = append(out, a)
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

// missingAlarms lists what the planned alarms leave unwatched: for every queue of the code's
// description, the age of its oldest message and its backlog (for a dead-letter queue, any
// message at all); errors and throttles of every function; the sweeper's invocations. Every
// alarm must notify someone.
func missingAlarms(res map[string]plannedResource, desc awsbackend.Resources, functions []string) []string {
	alarms := alarmsOf(res)
	watches := func(subject string, ok func(alarm) bool) bool {
		return slices.ContainsFunc(alarms, func(a alarm) bool { return a.subject == subject && ok(a) })
	}
	on := func(metric string) func(alarm) bool {
		return func(a alarm) bool { return slices.Contains(a.metrics, metric) }
	}
	var missing []string
	for _, a := range alarms {
		if !a.actions {
			missing = append(missing, a.address+" notifies nobody")
		}
	}
	dead := map[string]bool{}
	for _, q := range desc.Queues {
		if q.DeadLetterQueue != "" {
			dead[q.DeadLetterQueue] = true
		}
	}
	for _, q := range desc.Queues {
		if !watches(q.Name, on("AWS/SQS/ApproximateAgeOfOldestMessage")) {
			missing = append(missing, "queue "+q.Name+": no alarm on the age of its oldest message")
		}
		if !dead[q.Name] {
			if !watches(q.Name, on("AWS/SQS/ApproximateNumberOfMessagesVisible")) {
				missing = append(missing, "queue "+q.Name+": no alarm on its backlog")
			}
			continue
		}
		// One dead letter is enough: visible or being read, over a threshold of nothing.
		first := func(a alarm) bool {
			return slices.Contains(a.metrics, "AWS/SQS/ApproximateNumberOfMessagesVisible") &&
				slices.Contains(a.metrics, "AWS/SQS/ApproximateNumberOfMessagesNotVisible") &&
				a.operator == "GreaterThanThreshold" && a.threshold == 0
		}
		if !watches(q.Name, first) {
			missing = append(missing, "dead-letter queue "+q.Name+": no alarm on its first dead letter")
		}
	}
	for _, fn := range functions {
		name := desc.Prefix + "-" + fn
		for _, metric := range []string{"Errors", "Throttles"} {
			if !watches(name, on("AWS/Lambda/"+metric)) {
				missing = append(missing, "function "+name+": no alarm on its "+strings.ToLower(metric))
			}
		}
	}
	sweeper := desc.Prefix + "-" + lambdafn.Sweeper
	if !watches(sweeper, func(a alarm) bool {
		return slices.Contains(a.metrics, "AWS/Lambda/Invocations") && a.operator == "LessThanThreshold"
	}) {
		missing = append(missing, "function "+sweeper+": no alarm when it stops running")
	}
	return missing
}

func planDescription(t *testing.T) awsbackend.Resources {
	t.Helper()
	cfg, err := awsbackend.FromEnv(func(k string) string {
		if k == awsbackend.EnvPrefix {
			return planPrefix
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return awsbackend.Describe(cfg)
}

func TestEveryQueueAndFunctionHasItsAlarms(t *testing.T) {
	t.Parallel()
	res := planned(t)
	desc := planDescription(t)
	if missing := missingAlarms(res, desc, lambdafn.Names); len(missing) > 0 {
		t.Fatalf("alarms missing:\n%s", strings.Join(missing, "\n"))
	}
	// The check sees a missing alarm: drop each queue's and function's alarms in turn.
	for _, subject := range []string{desc.Queues[0].Name, desc.Queues[1].Name, desc.Prefix + "-" + lambdafn.Sweeper} {
		without := maps.Clone(res)
		for addr, a := range res {
			for _, al := range alarmsOf(map[string]plannedResource{addr: a}) {
				if al.subject == subject {
					delete(without, addr)
				}
			}
		}
		if len(without) == len(res) {
			t.Fatalf("no alarm watches %s", subject)
		}
		if missing := missingAlarms(without, desc, lambdafn.Names); !slices.ContainsFunc(missing, func(m string) bool {
			return strings.Contains(m, subject)
		}) {
			t.Fatalf("without the alarms on %s the check finds nothing missing: %v", subject, missing)
		}
	}
	// A queue the code adds and the Terraform lacks is missing its alarms.
	desc.Queues = append(desc.Queues, awsbackend.QueueResource{Name: desc.Prefix + "-new-queue"})
	if missing := missingAlarms(res, desc, lambdafn.Names); len(missing) != 2 {
		t.Fatalf("a queue without alarms: got %v, want its age and backlog alarms missing", missing)
	}
}

func TestThePlanHasTheDashboardAndTheAlarmTopic(t *testing.T) {
	t.Parallel()
	res := planned(t)
	topic, ok := res["aws_sns_topic.alarms"]
	if !ok || str(topic.Values["name"]) != planPrefix+"-alarms" {
		t.Fatalf("alarm topic: got %+v, want %s-alarms", topic, planPrefix)
	}
	if _, ok := res[`aws_sns_topic_subscription.alarm_email[0]`]; ok {
		t.Fatalf("alarm_email is empty by default, yet a subscription is planned")
	}
	if _, ok := res["aws_cloudwatch_dashboard.iac_ci"]; !ok {
		t.Fatalf("no dashboard planned: %v", slices.Sorted(maps.Keys(res)))
	}
	// Every queue of the description is planned under its name.
	names := map[string]bool{}
	for _, r := range res {
		if r.Type == "aws_sqs_queue" {
			names[str(r.Values["name"])] = true
		}
	}
	for _, q := range planDescription(t).Queues {
		if !names[q.Name] {
			t.Errorf("queue %s: not planned (planned %v)", q.Name, slices.Sorted(maps.Keys(names)))
		}
	}
}
