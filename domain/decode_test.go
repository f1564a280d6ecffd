package domain

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const sampleJSON = `{
  "username": "ana",
  "git_repo": "octo-org/infra",
  "pr_number": 12,
  "commit_hash": "abc123",
  "presign_expiry": 9000,
  "orders": [
    {
      "order_name": "plan",
      "cmds": ["tofu init", "tofu plan"],
      "timeout": 600,
      "git_folder": "stacks/net",
      "env_vars": {"PORT": "8080", "VERSION": "3.10", "DEBUG": "true"},
      "ssm_paths": ["/team/db-password"],
      "use_lambda": true
    },
    {
      "order_name": "apply",
      "cmds": ["tofu apply -auto-approve"],
      "timeout": 1800,
      "dependencies": ["plan"],
      "must_succeed": false,
      "execution_target": "ssm",
      "ssm_targets": {"tags": {"role": "runner"}}
    }
  ]
}`

const sampleYAML = `
username: ana
git_repo: octo-org/infra
pr_number: 12
commit_hash: abc123
presign_expiry: 9_000
orders:
  - order_name: plan
    cmds:
      - tofu init
      - tofu plan
    timeout: 600
    git_folder: stacks/net
    env_vars:
      PORT: 8080
      VERSION: 3.10
      DEBUG: true
    ssm_paths: [/team/db-password]
    use_lambda: true
  - order_name: apply
    cmds: [tofu apply -auto-approve]
    timeout: 1800
    dependencies: [plan]
    must_succeed: false
    execution_target: ssm
    ssm_targets:
      tags: {role: runner}
`

func decodeOK(t *testing.T, body string) (Job, Envelope) {
	t.Helper()
	j, env, err := DecodeJob([]byte(body))
	if err != nil {
		t.Fatalf("DecodeJob: %v", err)
	}
	return j, env
}

// problemsOf returns the problems of err, failing unless it is a *ValidationError.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if !errors.Is(err, ErrInvalidJob) {
		t.Errorf("errors.Is(err, ErrInvalidJob) = false for %v", err)
	}
	return ve.Problems
}

// findProblem returns the first problem at path whose message contains every fragment.
func findProblem(ps []Problem, path string, fragments ...string) (Problem, bool) {
next:
	for _, p := range ps {
		if p.Path != path {
			continue
		}
		for _, f := range fragments {
			if !strings.Contains(p.Message, f) {
				continue next
			}
		}
		return p, true
	}
	return Problem{}, false
}

func TestDecodeJobJSONAndYAMLAgree(t *testing.T) {
	t.Parallel()
	fromJSON, _ := decodeOK(t, sampleJSON)
	fromYAML, _ := decodeOK(t, sampleYAML)
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Fatalf("JSON and YAML forms differ:\njson %+v\nyaml %+v", fromJSON, fromYAML)
	}
	j := fromJSON
	if got, want := len(j.Orders), 2; got != want {
		t.Fatalf("orders: got %d, want %d", got, want)
	}
	if got, want := j.PresignExpiry, 9000; got != want {
		t.Errorf("presign_expiry: got %d, want %d", got, want)
	}
	if got, want := j.Orders[0].EnvVars["VERSION"], "3.10"; got != want {
		t.Errorf("env_vars.VERSION: got %q, want %q (a YAML number keeps its text)", got, want)
	}
	if j.Orders[0].UseLambda == nil || !*j.Orders[0].UseLambda {
		t.Errorf("use_lambda: got %v, want true", j.Orders[0].UseLambda)
	}
	if got := j.Orders[1].Succeed(); got {
		t.Errorf("must_succeed: got %v, want false", got)
	}
	if got, want := j.Orders[1].SSMTargets.Tags["role"], "runner"; got != want {
		t.Errorf("ssm_targets.tags.role: got %q, want %q", got, want)
	}
}

func TestDecodeJobEnvelope(t *testing.T) {
	t.Parallel()
	plain, _ := decodeOK(t, sampleJSON)
	b64 := base64.StdEncoding.EncodeToString([]byte(sampleJSON))
	wrapped := ""
	for s := b64; s != ""; {
		n := min(76, len(s))
		wrapped, s = wrapped+s[:n]+"\n", s[n:]
	}
	tests := []struct {
		name string
		body string
		want Envelope
	}{
		{"all fields", `{"job_parameters_b64": "` + b64 + `", "trace_id": "a1b2c3", "run_id": "r-1", "done_endpt": "https://example.test/done"}`,
			Envelope{TraceID: "a1b2c3", RunID: "r-1", DoneEndpoint: "https://example.test/done"}},
		{"job only", `{"job_parameters_b64": "` + b64 + `"}`, Envelope{}},
		{"url alphabet without padding", `{"job_parameters_b64": "` + base64.RawURLEncoding.EncodeToString([]byte(sampleJSON)) + `"}`, Envelope{}},
		{"wrapped at 76 columns, as YAML", "job_parameters_b64: |\n  " + strings.ReplaceAll(strings.TrimSpace(wrapped), "\n", "\n  ") + "\ntrace_id: t9\n", Envelope{TraceID: "t9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j, env := decodeOK(t, tt.body)
			if env != tt.want {
				t.Errorf("envelope: got %+v, want %+v", env, tt.want)
			}
			if !reflect.DeepEqual(j, plain) {
				t.Errorf("job from envelope differs from the plain job:\ngot  %+v\nwant %+v", j, plain)
			}
		})
	}
}

func TestDecodeJobEnvelopeErrors(t *testing.T) {
	t.Parallel()
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, body, path, fragment string
	}{
		{"bad base64", `{"job_parameters_b64": "not*base64!"}`, "job_parameters_b64", "not valid base64"},
		{"bad inner JSON", `{"job_parameters_b64": "` + enc(`{"username": "ana", "orders": [`) + `"}`, "job_parameters_b64", "not valid JSON"},
		{"inner YAML is not JSON", `{"job_parameters_b64": "` + enc("username: ana\n") + `"}`, "job_parameters_b64", "not valid JSON"},
		{"empty inner job", `{"job_parameters_b64": ""}`, "job_parameters_b64", "empty"},
		{"not a string", `{"job_parameters_b64": 12}`, "job_parameters_b64", "want a string, got 12"},
		{"trace_id not a string", `{"job_parameters_b64": "` + enc(`{}`) + `", "trace_id": 7}`, "trace_id", "want a string"},
		{"job fields beside the envelope", `{"job_parameters_b64": "` + enc(`{}`) + `", "username": "ana"}`, "username", "unknown field"},
		{"unknown field inside", `{"job_parameters_b64": "` + enc(`{"username": "ana", "orders": [{"cmds": ["ls"], "timout": 5}]}`) + `"}`, "orders[0].timout", `did you mean "timeout"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, env, err := DecodeJob([]byte(tt.body))
			if env != (Envelope{}) {
				t.Errorf("envelope on error: got %+v, want none", env)
			}
			ps := problemsOf(t, err)
			if _, ok := findProblem(ps, tt.path, tt.fragment); !ok {
				t.Fatalf("no problem at %q containing %q in %v", tt.path, tt.fragment, ps)
			}
		})
	}
}

func TestDecodeJobProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, path, fragment string
	}{
		{"near-miss field", `{"username": "ana", "orders": [{"cmds": ["ls"], "timeout": 5}, {"cmds": ["ls"], "timout": 5}]}`,
			"orders[1].timout", `unknown field (did you mean "timeout"?)`},
		{"near-miss field in YAML", "username: ana\norders:\n  - cmds: [ls]\n    dependancies: [x]\n",
			"orders[0].dependancies", `did you mean "dependencies"`},
		{"camel case", `{"username": "ana", "orders": [{"cmds": ["ls"], "queueId": "a"}]}`, "orders[0].queueId", `did you mean "queue_id"`},
		{"no_secrets is the engine's", `{"username": "ana", "no_secrets": true, "orders": []}`, "no_secrets", "unknown field"},
		{"base_dir is the engine's", `{"username": "ana", "base_dir": "/", "orders": []}`, "base_dir", "unknown field"},
		{"no_secrets in YAML", "username: ana\nno_secrets: true\n", "no_secrets", "unknown field"},
		{"order field at the top", `{"username": "ana", "timeout": 5, "orders": []}`, "timeout", "belongs on each order"},
		{"job field in an order", `{"orders": [{"cmds": ["ls"], "username": "ana"}]}`, "orders[0].username", "whole job"},
		{"unknown field without suggestion", `{"username": "ana", "colour": "red"}`, "colour", "unknown field"},
		{"string for a number", `{"username": "ana", "orders": [{"cmds": ["ls"], "timeout": "abc"}]}`, "orders[0].timeout", `want a number, got "abc"`},
		{"fraction for a number", `{"orders": [{"timeout": 1.5}]}`, "orders[0].timeout", "want a whole number, got 1.5"},
		{"string for a list", `{"orders": [{"cmds": "ls -la"}]}`, "orders[0].cmds", `want a list, got "ls -la"`},
		{"number for a string", `{"username": 42}`, "username", "want a string, got 42"},
		{"number in a list of strings", `{"orders": [{"cmds": ["ls", 3]}]}`, "orders[0].cmds[1]", "want a string, got 3"},
		{"yes is not a boolean", "orders:\n  - must_succeed: yes\n", "orders[0].must_succeed", `want true or false, got "yes"`},
		{"colon in an unquoted YAML command", "orders:\n  - cmds:\n      - echo \"lint: ok\"\n", "orders[0].cmds[0]", `an unquoted ": " starts a mapping, so quote the whole string`},
		{"object for a string in JSON", `{"orders": [{"cmds": [{"echo": "x"}]}]}`, "orders[0].cmds[0]", "want a string, got an object"},
		{"list for an object", `{"orders": [{"ssm_targets": ["i-1"]}]}`, "orders[0].ssm_targets", "want an object"},
		{"list for env_vars", `{"orders": [{"env_vars": ["A=1"]}]}`, "orders[0].env_vars", "want an object of NAME: value, got a list"},
		{"object for an env value", `{"orders": [{"env_vars": {"A": {"b": 1}}}]}`, "orders[0].env_vars.A", "want a string, got an object"},
		{"duplicate key in JSON", `{"username": "ana", "username": "bob"}`, "username", "given twice"},
		{"duplicate key in YAML", "username: ana\nusername: bob\n", "username", "given twice"},
		{"duplicate env var", "orders:\n  - env_vars:\n      A: 1\n      A: 2\n", "orders[0].env_vars.A", "given twice"},
		{"odd env var name quoted in path", `{"orders": [{"env_vars": {"a b": [1]}}]}`, `orders[0].env_vars["a b"]`, "want a string, got a list"},
		{"orders not a list", `{"orders": {"cmds": ["ls"]}}`, "orders", "want a list, got an object"},
		{"top level list", `[{"username": "ana"}]`, "", "want an object of fields, got a list"},
		{"top level scalar", `just words`, "", `want an object of fields, got "just words"`},
		{"long strings are not repeated", `{"pr_number": "ghp_0123456789abcdefghijklmnopqrstuvwxyz"}`, "pr_number", "want a number, got a string"},
		{"empty body", "", "", "the body is empty"},
		{"blank body", " \n\t ", "", "the body is empty"},
		{"broken JSON names the place", "{\n  \"username\": \"ana\",\n  \"orders\": [}\n", "", "not valid JSON: line 3, column 14"},
		{"trailing data after JSON", `{"username": "ana"} {"x": 1}`, "", "more data after the job object"},
		{"truncated JSON", `{"username": "ana"`, "", "ends before the job does"},
		{"broken YAML", "username: ana\norders: [a, b\n", "", "not valid YAML"},
		{"two YAML documents", "username: ana\n---\nusername: bob\n", "", "more than one document"},
		{"too deep", strings.Repeat("[", 40) + strings.Repeat("]", 40), "", "nested deeper"},
		{"too large", `{"username": "` + strings.Repeat("a", MaxBodyBytes) + `"}`, "", "over the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j, _, err := DecodeJob([]byte(tt.body))
			if err == nil {
				t.Fatalf("DecodeJob accepted the body, decoded %+v", j)
			}
			ps := problemsOf(t, err)
			if _, ok := findProblem(ps, tt.path, tt.fragment); !ok {
				t.Fatalf("no problem at %q containing %q in %v", tt.path, tt.fragment, ps)
			}
		})
	}
}

func TestDecodeJobYAMLFlowMapping(t *testing.T) {
	t.Parallel()
	j, _ := decodeOK(t, `{username: ana, orders: [{cmds: [ls], timeout: 5}]}`)
	if j.Username != "ana" || len(j.Orders) != 1 || j.Orders[0].Timeout != 5 {
		t.Fatalf("flow mapping decoded to %+v", j)
	}
}

func TestDecodeJobReportsEveryProblem(t *testing.T) {
	t.Parallel()
	body := `{"username": 1, "orders": [{"cmds": ["ls"], "timeout": "x"}, {"timout": 5, "use_lambda": "yes"}], "colour": 1}`
	_, _, err := DecodeJob([]byte(body))
	ps := problemsOf(t, err)
	var got []string
	for _, p := range ps {
		got = append(got, p.Path)
	}
	want := []string{"username", "orders[0].timeout", "orders[1].timout", "orders[1].use_lambda", "colour"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problem paths: got %q, want %q", got, want)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "job rejected: 5 problems:\n  username: want a string, got 1\n") {
		t.Errorf("Error(): got %q", msg)
	}
}

func TestDecodeJobEngineFieldsStayUnset(t *testing.T) {
	t.Parallel()
	// The json names of NoSecrets and BaseDir exist for storing a Request; a body still cannot
	// use them, whatever its syntax.
	for _, body := range []string{
		`{"username": "ana", "orders": [], "no_secrets": false}`,
		"username: ana\nbase_dir: /etc\n",
	} {
		j, _, err := DecodeJob([]byte(body))
		if err == nil {
			t.Fatalf("DecodeJob(%q) accepted an engine field: %+v", body, j)
		}
	}
}

func TestDecodeJobYAMLFeatures(t *testing.T) {
	t.Parallel()
	body := `
username: ana
orders:
  - &first
    cmds: [tofu plan]
    timeout: 0x1f
    env_vars: {REGION: eu-west-1}
  - <<: *first
    cmds: [tofu apply]
    git_folder: ~
    commit_hash: 2001-12-14
`
	j, _ := decodeOK(t, body)
	if got, want := j.Orders[0].Timeout, 31; got != want {
		t.Errorf("orders[0].timeout 0x1f: got %d, want %d", got, want)
	}
	second := j.Orders[1]
	if got, want := second.Timeout, 31; got != want {
		t.Errorf("orders[1].timeout merged from orders[0]: got %d, want %d", got, want)
	}
	if got, want := second.Cmds, []string{"tofu apply"}; !reflect.DeepEqual(got, want) {
		t.Errorf("orders[1].cmds: got %q, want %q (keys written win over merged ones)", got, want)
	}
	if got, want := second.EnvVars["REGION"], "eu-west-1"; got != want {
		t.Errorf("orders[1].env_vars.REGION: got %q, want %q", got, want)
	}
	if got, want := second.CommitHash, "2001-12-14"; got != want {
		t.Errorf("orders[1].commit_hash: got %q, want %q (a YAML timestamp is a string here)", got, want)
	}
	if second.GitFolder != "" {
		t.Errorf("orders[1].git_folder ~: got %q, want empty", second.GitFolder)
	}
}

func TestDecodeJobYAMLAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		prev := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	_, _, err := DecodeJob([]byte(b.String()))
	if _, ok := findProblem(problemsOf(t, err), "", "aliases expand into too many values"); !ok {
		t.Fatalf("alias expansion not bounded: %v", err)
	}
}

func TestDecodeJobNullIsZero(t *testing.T) {
	t.Parallel()
	j, _ := decodeOK(t, `{"username": "ana", "git_repo": null, "orders": [{"cmds": null, "timeout": null, "must_succeed": null, "ssm_targets": null}]}`)
	o := j.Orders[0]
	if o.Cmds != nil || o.Timeout != 0 || o.MustSucceed != nil || o.SSMTargets != nil || j.GitRepo != "" {
		t.Fatalf("nulls did not decode to zero values: %+v", j)
	}
}

func TestClosest(t *testing.T) {
	t.Parallel()
	names := []string{"timeout", "cmds", "order_name", "queue_id", "dependencies", "execution_target"}
	tests := []struct{ in, want string }{
		{"timout", "timeout"},
		{"Timeout", "timeout"},
		{"cmd", "cmds"},
		{"queue-id", "queue_id"},
		{"executionTarget", "execution_target"},
		{"dependancies", "dependencies"},
		{"tiemout", "timeout"},
		{"colour", ""},
		{"id", ""},
	}
	for _, tt := range tests {
		if got := closest(tt.in, names); got != tt.want {
			t.Errorf("closest(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A typo or a wrong type no longer hides the rest: the job decoded beside those problems is
// still validated, and its problems are reported with them, except where decoding already
// spoke.
func TestDecodeProblemsJoinValidation(t *testing.T) {
	t.Parallel()
	const body = `
username: ana
orders:
  - order_name: plan
    cmds: [tofu plan]
    timeout: 600
    dependencies: [apply]
    tiemout_minutes: 5
  - order_name: apply
    cmds: [tofu apply]
    timeout: 1000
    execution_target: lambda
    dependencies: [plan]
  - order_name: check
    cmds: [tofu validate]
    timeout: "60s"
`
	job, _, err := DecodeJob([]byte(body))
	var decoded *ValidationError
	if !errors.As(err, &decoded) || !decoded.Partial {
		t.Fatalf("DecodeJob: got %v, want a partial *ValidationError", err)
	}
	if len(job.Orders) != 3 || job.Orders[1].Timeout != 1000 {
		t.Fatalf("the job decoded beside the problems is not kept: %+v", job)
	}
	job.Normalize(false)
	ps := problemsOf(t, JoinProblems(err, Validate(job)))
	for _, want := range []struct{ path, fragment string }{
		{"orders[0].tiemout_minutes", "unknown field"},
		{"orders[2].timeout", `want a number, got "60s"`},
		{"orders", "dependency cycle apply -> plan -> apply"},
		{"orders[1].timeout", "1000 exceeds the lambda limit of 840"},
	} {
		if _, ok := findProblem(ps, want.path, want.fragment); !ok {
			t.Errorf("no problem at %q containing %q in:\n%v", want.path, want.fragment, ps)
		}
	}
	// orders[2].timeout did not decode: it is not also reported as missing.
	if n := countAt(ps, "orders[2].timeout"); n != 1 {
		t.Errorf("orders[2].timeout: %d problems, want only decoding's:\n%v", n, ps)
	}
}

func countAt(ps []Problem, path string) int {
	n := 0
	for _, p := range ps {
		if p.Path == path {
			n++
		}
	}
	return n
}

func TestJoinProblems(t *testing.T) {
	t.Parallel()
	decoded := &ValidationError{Partial: true, Problems: []Problem{{"orders[1]", "want an object of fields, got a list"}, {"orders[0].timeout", "want a number"}}}
	validated := &ValidationError{Problems: []Problem{
		{"orders", "dependency cycle a -> b -> a"},
		{"orders[0].timeout", "required"},
		{"orders[1].cmds", "no commands"},
		{"orders[10].cmds", "no commands"},
		{"username", "required"},
	}}
	got := problemsOf(t, JoinProblems(decoded, validated))
	want := []Problem{
		{"orders[1]", "want an object of fields, got a list"}, {"orders[0].timeout", "want a number"},
		{"orders", "dependency cycle a -> b -> a"}, {"orders[10].cmds", "no commands"}, {"username", "required"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JoinProblems:\ngot  %v\nwant %v", got, want)
	}
	if err := JoinProblems(nil, nil); err != nil {
		t.Errorf("JoinProblems(nil, nil): %v", err)
	}
	// A problem of the whole body covers everything.
	whole := &ValidationError{Partial: true, Problems: []Problem{{"", "want an object of fields, got a list"}}}
	if got := problemsOf(t, JoinProblems(whole, validated)); len(got) != 1 {
		t.Errorf("JoinProblems under a problem of the whole body: got %v, want only it", got)
	}
	other := errors.New("disk on fire")
	if err := JoinProblems(nil, other); err != other {
		t.Errorf("JoinProblems with a plain error: got %v", err)
	}
}
