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

	s := st.serve()
	if v := waitAWSRun(t, s, acc.RunID, 2*time.Minute); v.Status != domain.RunFailed {
		t.Fatalf("the run whose intake died: %s", v.Status)
	}
	r := iacci(t, st.env, "dlq", "list", "--backend", "aws", "--json")
	var list []deadletters.Record
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 1 ||
		list[0].Queue != queues.Intake || list[0].RunID != acc.RunID || list[0].Reason == "" {
		t.Fatalf("dlq list --backend aws: exit %d %s\n%s", r.code, r.stdout, r.stderr)
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
