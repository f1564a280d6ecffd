package awslaunch_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/awstest"
)

// playAgent does on this machine what SSM Run Command and its agent do with one command of the
// document: check the parameters against the document (the service does, on SendCommand),
// replace the placeholders, set SSM_<name> for ENV_VAR parameters when the agent is new enough
// (envVars), and run the script (infra/ssm/run-commands.sh, which the document embeds) with
// iac-ci on PATH, within the executionTimeout.
func playAgent(t *testing.T, doc document, params map[string][]string, envVars bool) []byte {
	t.Helper()
	_, _, script := readDocument(t)
	env := append(awsEnv(t),
		"PATH="+filepath.Dir(iacciBinary(t))+":/usr/local/bin:/usr/bin:/bin",
		"AWS_SSM_REGION_NAME="+awstest.Region, "AWS_SSM_INSTANCE_ID=i-0aaaaaaaaaaaaaaa1")
	values := map[string]string{}
	for name, p := range doc.Parameters {
		v, given := params[name]
		switch {
		case given && len(v) != 1:
			t.Fatalf("parameter %s: got %d values, want 1", name, len(v))
		case given:
			values[name] = v[0]
		case p.Default != nil:
			values[name] = *p.Default
		default:
			t.Fatalf("SendCommand lacks the required parameter %s", name)
		}
		if !regexp.MustCompile(p.AllowedPattern).MatchString(values[name]) {
			t.Fatalf("parameter %s: %q does not match the document's allowedPattern %q", name, values[name], p.AllowedPattern)
		}
		script = regexp.MustCompile(`\{\{\s*`+regexp.QuoteMeta(name)+`\s*\}\}`).ReplaceAllLiteralString(script, values[name])
		if envVars && p.InterpolationType == "ENV_VAR" {
			env = append(env, "SSM_"+name+"="+values[name])
		}
	}
	for name := range params {
		if _, ok := doc.Parameters[name]; !ok {
			t.Fatalf("SendCommand sends %s, which the document does not declare", name)
		}
	}
	path := filepath.Join(t.TempDir(), "_script.sh")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	seconds, err := strconv.Atoi(values[awslaunch.ParamExecutionTimeout])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(seconds)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", path)
	cmd.Env, cmd.Dir = env, t.TempDir()
	out, err := cmd.CombinedOutput()
	t.Logf("run-commands.sh (agent with env vars: %v):\n%s", envVars, out)
	if err != nil {
		t.Fatalf("run-commands.sh: %v", err)
	}
	return out
}

func TestSSMLaunchRunsDocumentScriptAndResultsArrive(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	doc, text, _ := readDocument(t)
	docName := f.prefix + "-run-commands"
	if _, err := f.ssm.CreateDocument(ctx, &ssm.CreateDocumentInput{Name: aws.String(docName), Content: aws.String(text),
		DocumentType: ssmtypes.DocumentTypeCommand, DocumentFormat: ssmtypes.DocumentFormatYaml}); err != nil {
		t.Fatalf("create document: %v", err)
	}
	f.start(t, domain.TargetSSM, &awslaunch.SSM{Client: f.ssm})
	cmds := []string{`echo "secret=$DB_PASSWORD plain=$PLAIN"`, `echo "inputs=${IAC_CI_CALLBACK_URL:-none}${SSM_callbackUrl:-none}"`}
	tag := f.prefix + "-web"
	runID := f.submit(t,
		domain.Order{OrderName: "by-id", Timeout: 300, ExecutionTarget: domain.TargetSSM, Cmds: cmds, SSMDocumentName: docName,
			SSMTargets: &domain.SSMTargets{InstanceIDs: []string{"i-0aaaaaaaaaaaaaaa1"}},
			SSMPaths:   []string{f.secretPath}, EnvVars: map[string]string{"PLAIN": plainValue}},
		domain.Order{OrderName: "by-tag", Timeout: 300, ExecutionTarget: domain.TargetSSM, Cmds: cmds, SSMDocumentName: docName,
			SSMTargets: &domain.SSMTargets{Tags: map[string]string{"role": tag}},
			SSMPaths:   []string{f.secretPath}, EnvVars: map[string]string{"PLAIN": plainValue}},
	)

	// What SSM recorded: one command per order, with URLs and names only.
	var commands []ssmtypes.Command
	waitFor(t, "two commands of "+docName, func() bool {
		out, err := f.ssm.ListCommands(ctx, &ssm.ListCommandsInput{})
		if err != nil {
			return false
		}
		commands = slices.DeleteFunc(out.Commands, func(c ssmtypes.Command) bool { return aws.ToString(c.DocumentName) != docName })
		return len(commands) == 2
	})
	recorded, _ := json.Marshal(commands)
	checkNoneOf(t, "the commands SSM recorded", recorded, secretValue, plainValue, "AGE-SECRET-KEY")
	checkNoneOf(t, "the SendCommand requests", []byte(strings.Join(stringsOf(f.wire.sent("SendCommand")), "\n")), secretValue, plainValue, "AGE-SECRET-KEY")
	keyName, err := f.keys.ParameterName(runID)
	if err != nil {
		t.Fatal(err)
	}
	byOrder := map[int]ssmtypes.Command{}
	for _, c := range commands {
		callback := c.Parameters[awslaunch.ParamCallbackURL]
		if len(callback) != 1 {
			t.Fatalf("command %s: callback URL %v, want one", aws.ToString(c.CommandId), callback)
		}
		i := strings.Index(callback[0], "/callbacks/")
		rid, num, attempt, err := blobs.ParseResultKey(strings.SplitN(callback[0][i+1:], "?", 2)[0])
		if err != nil || rid != runID || attempt != 1 {
			t.Fatalf("command %s: callback URL names %s/%d/%d (%v), want run %s attempt 1", aws.ToString(c.CommandId), rid, num, attempt, err, runID)
		}
		byOrder[num] = c
		if got := c.Parameters[awslaunch.ParamRunKeyParameter]; len(got) != 1 || got[0] != keyName {
			t.Fatalf("order %d: run key parameter %v, want %s", num, got, keyName)
		}
		if got := c.Parameters[awslaunch.ParamExecutionTimeout]; len(got) != 1 || got[0] != "360" {
			t.Fatalf("order %d: execution timeout %v, want 360 (300 plus the launch margin)", num, got)
		}
		if got := aws.ToInt32(c.TimeoutSeconds); got != int32(grace/time.Second) {
			t.Fatalf("order %d: TimeoutSeconds %d, want the engine's grace, %d", num, got, int32(grace/time.Second))
		}
	}
	if got := byOrder[1].InstanceIds; !slices.Equal(got, []string{"i-0aaaaaaaaaaaaaaa1"}) || len(byOrder[1].Targets) != 0 {
		t.Fatalf("order 1: instance ids %v targets %v, want i-0aaaaaaaaaaaaaaa1 and no targets", got, byOrder[1].Targets)
	}
	if got := byOrder[2].Targets; len(got) != 1 || aws.ToString(got[0].Key) != "tag:role" || !slices.Equal(got[0].Values, []string{tag}) {
		t.Fatalf("order 2: targets %+v, want tag:role = %s", got, tag)
	}

	// Play the instances: a current agent for order 1, an agent without env var interpolation for 2.
	for num, envVars := range map[int]bool{1: true, 2: false} {
		out := playAgent(t, doc, byOrder[num].Parameters, envVars)
		checkNoneOf(t, "the command's output", out, secretValue, byOrder[num].Parameters[awslaunch.ParamCallbackURL][0])
	}
	run := f.waitRunEnded(t, runID)
	if run.Status != domain.RunSucceeded {
		t.Fatalf("run: got %s, want succeeded", run.Status)
	}
	for num := 1; num <= 2; num++ {
		o, err := f.engine.Store.GetOrder(ctx, runID, num)
		if err != nil {
			t.Fatal(err)
		}
		if o.Status != domain.OrderSucceeded || !strings.Contains(o.LogTail, "secret=*** plain="+plainValue) ||
			!strings.Contains(o.LogTail, "inputs=nonenone") {
			t.Fatalf("order %d: %s with log tail %q, want succeeded, the secret masked, no worker inputs", num, o.Status, o.LogTail)
		}
	}
}

func stringsOf(bodies [][]byte) []string {
	out := make([]string, len(bodies))
	for i, b := range bodies {
		out[i] = string(b)
	}
	return out
}
