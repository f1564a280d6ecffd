package tests

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/deadletters"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
)

// On AWS, an intake message that SQS gave up on ends its run, is kept, and iac-ci dlq lists,
// shows, redrives (the job runs again, to success) and purges it, against the AWS resources.
func TestAWSDeadLettersThroughTheCommand(t *testing.T) {
	t.Parallel()
	st := newAWSStack(t)
	getenv := func(k string) string {
		for _, kv := range st.env {
			if name, v, _ := strings.Cut(kv, "="); name == k {
				return v
			}
		}
		return ""
	}
	cfg, err := awsbackend.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := awsbackend.Open(cfg, awsbackend.NewClients(st.cfg, cfg, awsbackend.ClientOptions{Serialize: true}), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := assembly.New(b.Ports(), assembly.Options{ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// A job is accepted; its intake message dies before any intake ran (as SQS moves a message
	// received too often), so its run was never made.
	job := domain.Job{Username: "dlq", Orders: []domain.Order{{OrderName: "hello", ExecutionTarget: domain.TargetLambda,
		Timeout: 30, Cmds: []string{"echo hello"}}}}
	acc, err := sys.Accepter.Accept(t.Context(), producers.Submission{Job: job, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	from, _ := b.Queues.Queue(queues.Intake)
	to, _ := b.Queues.Queue(queues.Intake + queues.DeadLetterSuffix)
	if n, err := queues.MoveDeadLetters(t.Context(), from, to, 10); err != nil || n != 1 {
		t.Fatalf("dead-letter the intake message: %d, %v", n, err)
	}

	// A second job goes through intake; its order's message dies, as one whose worker kept
	// dying does.
	other, err := sys.Accepter.Accept(t.Context(), producers.Submission{Job: job, Source: "test", RunID: acc.RunID + "-2"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := from.Receive(t.Context(), queues.ReceiveOptions{Max: 1, Wait: 5 * time.Second})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("the second intake message: %d, %v", len(msgs), err)
	}
	if err := sys.Intake.Handle(t.Context(), msgs[0]); err != nil {
		t.Fatalf("intake: %v", err)
	}
	_ = from.Delete(t.Context(), msgs[0].Receipt)
	orders, _ := b.Queues.Queue(queues.Orders("lambda"))
	ordersDLQ, _ := b.Queues.Queue(queues.Orders("lambda") + queues.DeadLetterSuffix)
	if n, err := queues.MoveDeadLetters(t.Context(), orders, ordersDLQ, 10); err != nil || n != 1 {
		t.Fatalf("dead-letter the order message: %d, %v", n, err)
	}

	s := st.serve()
	if v := waitAWSRun(t, s, acc.RunID, 2*time.Minute); v.Status != domain.RunFailed {
		t.Fatalf("the run whose intake died: %s", v.Status)
	}
	if v := waitAWSRun(t, s, other.RunID, 2*time.Minute); v.Status != domain.RunFailed ||
		!strings.Contains(v.Orders[0].Reason, "dead-lettered") {
		t.Fatalf("the run whose order's message died: %s %+v", v.Status, v.Orders)
	}
	r := iacci(t, st.env, "dlq", "list", "--backend", "aws", "--json")
	var all []deadletters.Record
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &all) != nil || len(all) != 2 {
		t.Fatalf("dlq list --backend aws: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
	var list []deadletters.Record
	for _, d := range all {
		switch {
		case d.Queue == queues.Intake && d.RunID == acc.RunID && d.Reason != "":
			list = append(list, d)
		case d.Queue == queues.Orders("lambda") && d.RunID == other.RunID && d.OrderName == "hello" && d.Reason != "":
			if r := iacci(t, st.env, "dlq", "purge", d.ID, "--backend", "aws"); r.code != 0 {
				t.Fatalf("dlq purge --backend aws: exit %d\n%s", r.code, r.stderr)
			}
		default:
			t.Fatalf("dead letters: %+v", all)
		}
	}
	if len(list) != 1 {
		t.Fatalf("dead letters: %+v", all)
	}
	r = iacci(t, st.env, "dlq", "show", list[0].ID, "--backend", "aws")
	if r.code != 0 || !strings.Contains(r.stdout, "run status") || !strings.Contains(r.stdout, "redrive would") {
		t.Fatalf("dlq show --backend aws: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
	r = iacci(t, st.env, "dlq", "redrive", list[0].ID, "--backend", "aws", "--json")
	var redriven []producers.Redriven
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &redriven) != nil || len(redriven) != 1 || redriven[0].NewRunID == "" {
		t.Fatalf("dlq redrive --backend aws: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
	if v := waitAWSRun(t, s, redriven[0].NewRunID, 2*time.Minute); v.Status != domain.RunSucceeded {
		t.Fatalf("the job redriven: %s %+v", v.Status, v.Orders)
	}
	if r := iacci(t, st.env, "dlq", "list", "--backend", "aws", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("after the redrive: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
}
