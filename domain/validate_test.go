package domain

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"filippo.io/age"
)

func ptr[T any](v T) *T { return &v }

// validJob is a job Validate accepts once normalized; cases change one thing in it.
func validJob() Job {
	return Job{
		Username: "ana",
		GitRepo:  "octo-org/infra",
		Orders: []Order{
			{OrderName: "plan", Cmds: []string{"tofu plan"}, Timeout: 600, GitFolder: "stacks/net"},
			{OrderName: "apply", Cmds: []string{"tofu apply"}, Timeout: 1200, Dependencies: []string{"plan"}},
		},
	}
}

func TestValidateAcceptsValidJobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		job  func() Job
		ssm  bool
	}{
		{"plain", validJob, false},
		{"ssm job with instance ids", func() Job {
			return Job{Username: "ops", Orders: []Order{{Cmds: []string{"uptime"}, Timeout: 172800, SSMTargets: &SSMTargets{InstanceIDs: []string{"i-0abc1234"}}}}, PresignExpiry: 172800 + PresignMargin}
		}, true},
		{"everything optional set well", func() Job {
			j := validJob()
			j.PRNumber, j.IssueNumber = 3, 4
			j.GitTokenLocation = "aws:::ssm:/ci/github-token"
			j.GitSSHKeyLocation = "env:GIT_SSH_KEY"
			j.PresignExpiry = 1500
			j.Orders[0].EnvVars = map[string]string{"TF_VAR_region": "eu-west-1", "_X": "1"}
			j.Orders[0].SSMPaths = []string{"/team/db-password"}
			j.Orders[0].SecretManagerPaths = []string{"prod/api.key"}
			j.Orders[0].SopsKey = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"
			j.Orders[0].UseLambda = ptr(false)
			j.Orders[1].ExecutionTarget = TargetLambda
			j.Orders[1].UseLambda = ptr(true)
			j.Orders[1].Timeout = 840
			j.Orders[1].S3Location = "s3://code-bucket/stacks/net.zip"
			return j
		}, false},
		{"local path", func() Job {
			j := validJob()
			j.Orders[1].LocalPath = "stacks/./net"
			return j
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := tt.job()
			j.Normalize(tt.ssm)
			if err := Validate(j); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidateProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		change    func(j *Job)
		path      string
		fragments []string
	}{
		{"no orders", func(j *Job) { j.Orders = nil }, "orders", []string{"no orders", "add at least one"}},
		{"no username", func(j *Job) { j.Username = "" }, "username", []string{"required"}},
		{"colon in username", func(j *Job) { j.Username = "ana:b" }, "username", []string{"':'", "remove it"}},
		{"no commands", func(j *Job) { j.Orders[1].Cmds = nil }, "orders[1].cmds", []string{"no commands"}},
		{"empty command", func(j *Job) { j.Orders[1].Cmds = []string{"ls", "  "} }, "orders[1].cmds[1]", []string{"empty command"}},
		{"missing timeout", func(j *Job) { j.Orders[0].Timeout = 0 }, "orders[0].timeout", []string{"required", "at most 28800 on codebuild"}},
		{"timeout past every limit on an unknown target", func(j *Job) { j.Orders[0].ExecutionTarget, j.Orders[0].Timeout = "fargate", 9300000000 },
			"orders[0].timeout", []string{"9300000000 exceeds the longest limit of any target, 172800"}},
		{"negative timeout", func(j *Job) { j.Orders[0].Timeout = -5 }, "orders[0].timeout", []string{"-5 is not a positive"}},
		{"lambda limit", func(j *Job) { j.Orders[1].ExecutionTarget, j.Orders[1].Timeout = TargetLambda, 841 },
			"orders[1].timeout", []string{"841 exceeds the lambda limit of 840 (use codebuild or ssm for longer runs)"}},
		{"codebuild limit", func(j *Job) { j.Orders[1].Timeout, j.PresignExpiry = 28801, 40000 },
			"orders[1].timeout", []string{"28801 exceeds the codebuild limit of 28800", "use ssm"}},
		{"ssm limit", func(j *Job) {
			j.Orders[1].ExecutionTarget, j.Orders[1].Timeout, j.PresignExpiry = TargetSSM, 172801, 200000
			j.Orders[1].SSMTargets = &SSMTargets{Tags: map[string]string{"role": "runner"}}
		}, "orders[1].timeout", []string{"172801 exceeds the ssm limit of 172800"}},
		{"duplicate order_name", func(j *Job) { j.Orders[1].OrderName, j.Orders[1].QueueID = "plan", "apply" },
			"orders[1].order_name", []string{`"plan" is also the name of orders[0]`, "unique"}},
		{"duplicate queue_id", func(j *Job) { j.Orders[1].QueueID, j.Orders[1].Dependencies = "plan", nil },
			"orders[1].queue_id", []string{`"plan" is also the queue_id of orders[0]`}},
		{"unknown dependency", func(j *Job) { j.Orders[1].Dependencies = []string{"plna"} },
			"orders[1].dependencies[0]", []string{`no order has queue_id "plna" (did you mean "plan"?)`}},
		{"unknown dependency without suggestion", func(j *Job) { j.Orders[1].Dependencies = []string{"build"} },
			"orders[1].dependencies[0]", []string{`no order has queue_id "build": name another order's queue_id`}},
		{"self-dependency", func(j *Job) { j.Orders[1].Dependencies = []string{"plan", "apply"} },
			"orders[1].dependencies[1]", []string{"depends on itself", `remove "apply"`}},
		{"repeated dependency", func(j *Job) { j.Orders[1].Dependencies = []string{"plan", "plan"} },
			"orders[1].dependencies[1]", []string{`"plan" is listed twice`}},
		{"unknown target", func(j *Job) { j.Orders[0].ExecutionTarget = "fargate" },
			"orders[0].execution_target", []string{`unknown target "fargate"`, "lambda, codebuild or ssm"}},
		{"use_lambda true against codebuild", func(j *Job) { j.Orders[0].UseLambda, j.Orders[0].ExecutionTarget = ptr(true), TargetCodeBuild },
			"orders[0].use_lambda", []string{`true disagrees with execution_target "codebuild"`, "remove use_lambda"}},
		{"use_lambda false against lambda", func(j *Job) { j.Orders[0].UseLambda, j.Orders[0].ExecutionTarget = ptr(false), TargetLambda },
			"orders[0].use_lambda", []string{`false disagrees with execution_target "lambda"`}},
		{"two code sources", func(j *Job) { j.Orders[0].S3Location = "s3://code-bucket/a.zip" },
			"orders[0]", []string{"more than one code source (git_folder, s3_location)", "keep only one"}},
		{"three code sources", func(j *Job) { j.Orders[0].S3Location, j.Orders[0].LocalPath = "s3://code-bucket/a.zip", "a" },
			"orders[0]", []string{"(git_folder, s3_location, local_path)"}},
		{"git_folder without a repo", func(j *Job) { j.GitRepo = "" }, "orders[0].git_folder", []string{"no git_repo", "on the order or the job"}},
		{"git_folder escaping the repo", func(j *Job) { j.Orders[0].GitFolder = "stacks/../../etc" }, "orders[0].git_folder", []string{"'..'"}},
		{"order git_repo malformed", func(j *Job) { j.Orders[0].GitRepo = "infra" }, "orders[0].git_repo", []string{`"infra" is not of the form owner/name`}},
		{"s3 without scheme", func(j *Job) { j.Orders[1].S3Location = "code-bucket/a.zip" }, "orders[1].s3_location", []string{"does not start with s3://"}},
		{"s3 without key", func(j *Job) { j.Orders[1].S3Location = "s3://code-bucket" }, "orders[1].s3_location", []string{"names no object"}},
		{"s3 not a zip", func(j *Job) { j.Orders[1].S3Location = "s3://code-bucket/a.tar.gz" }, "orders[1].s3_location", []string{"not a .zip object"}},
		{"s3 bad bucket", func(j *Job) { j.Orders[1].S3Location = "s3://Code_Bucket/a.zip" }, "orders[1].s3_location", []string{"not a valid bucket name"}},
		{"absolute local_path", func(j *Job) { j.Orders[1].LocalPath = "/srv/code" }, "orders[1].local_path", []string{"absolute", "relative"}},
		{"local_path with ..", func(j *Job) { j.Orders[1].LocalPath = "code/../../up" }, "orders[1].local_path", []string{"'..'"}},
		{"env var name starts with a digit", func(j *Job) { j.Orders[0].EnvVars = map[string]string{"1X": "v"} },
			"orders[0].env_vars[\"1X\"]", []string{"not a valid variable name"}},
		{"env var name with a dash", func(j *Job) { j.Orders[0].EnvVars = map[string]string{"A-B": "v"} },
			"orders[0].env_vars[\"A-B\"]", []string{"not a valid variable name"}},
		{"reserved env var", func(j *Job) { j.Orders[0].EnvVars = map[string]string{"CALLBACK_URL": "x"} },
			"orders[0].env_vars.CALLBACK_URL", []string{"set by iac-ci"}},
		{"ssm path not absolute", func(j *Job) { j.Orders[0].SSMPaths = []string{"team/db"} },
			"orders[0].ssm_paths[0]", []string{`"team/db" is not a full parameter path`}},
		{"ssm path of a folder", func(j *Job) { j.Orders[0].SSMPaths = []string{"/team/"} },
			"orders[0].ssm_paths[0]", []string{"ends with a separator"}},
		{"ssm path reserved", func(j *Job) { j.Orders[0].SSMPaths = []string{"/team/run-id"} },
			"orders[0].ssm_paths[0]", []string{"RUN_ID, which iac-ci sets"}},
		{"secret name not a variable", func(j *Job) { j.Orders[0].SecretManagerPaths = []string{"prod/db password"} },
			"orders[0].secret_manager_paths[0]", []string{`"DB PASSWORD", not a valid name`}},
		{"empty secret name", func(j *Job) { j.Orders[0].SecretManagerPaths = []string{""} },
			"orders[0].secret_manager_paths[0]", []string{"empty"}},
		{"two secrets one variable", func(j *Job) {
			j.Orders[0].SSMPaths = []string{"/a/db-pass"}
			j.Orders[0].SecretManagerPaths = []string{"b/db.pass"}
		}, "orders[0].secret_manager_paths[0]", []string{"DB_PASS, as orders[0].ssm_paths[0] already does"}},
		{"secret and env var one variable", func(j *Job) {
			j.Orders[0].EnvVars = map[string]string{"TOKEN": "x"}
			j.Orders[0].SSMPaths = []string{"/ci/token"}
		}, "orders[0].ssm_paths[0]", []string{"TOKEN, as orders[0].env_vars.TOKEN already does"}},
		{"sops_key not a recipient", func(j *Job) { j.Orders[0].SopsKey = "ssh-ed25519 AAAA" },
			"orders[0].sops_key", []string{"not an age recipient"}},
		{"ssm order without targets", func(j *Job) { j.Orders[1].ExecutionTarget = TargetSSM },
			"orders[1].ssm_targets", []string{"required for ssm orders"}},
		{"ssm order with empty targets", func(j *Job) { j.Orders[1].ExecutionTarget, j.Orders[1].SSMTargets = TargetSSM, &SSMTargets{} },
			"orders[1].ssm_targets", []string{"required for ssm orders"}},
		{"ssm order with both targets", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{InstanceIDs: []string{"i-0123456789abcdef0"}, Tags: map[string]string{"a": "b"}}
		}, "orders[1].ssm_targets", []string{"not both"}},
		{"ssm order with an empty instance id", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{InstanceIDs: []string{"i-0123456789abcdef0", ""}}
		}, "orders[1].ssm_targets.instance_ids[1]", []string{"empty"}},
		{"ssm_targets on codebuild", func(j *Job) { j.Orders[0].SSMTargets = &SSMTargets{InstanceIDs: []string{"i-0123456789abcdef0"}} },
			"orders[0].ssm_targets", []string{"only ssm orders", `it is "codebuild"`}},
		{"job git_repo malformed", func(j *Job) { j.GitRepo = "https://github.com/octo-org/infra.git" },
			"git_repo", []string{`write "octo-org/infra"`}},
		{"job git_repo with three parts", func(j *Job) { j.GitRepo = "a/b/c" }, "git_repo", []string{"owner/name"}},
		{"negative pr_number", func(j *Job) { j.PRNumber = -1 }, "pr_number", []string{"negative"}},
		{"negative issue_number", func(j *Job) { j.IssueNumber = -1 }, "issue_number", []string{"negative"}},
		{"token location malformed", func(j *Job) { j.GitTokenLocation = "ssm:/ci/token" }, "git_token_location", []string{"not a secret location"}},
		{"ssh key location malformed", func(j *Job) { j.GitSSHKeyLocation = "aws:::ssm:" }, "git_ssh_key_location", []string{"nothing after"}},
		{"presign_expiry below a timeout plus margin", func(j *Job) { j.PresignExpiry = 1499 },
			"presign_expiry", []string{`1499 is too short for orders[1] ("apply"), whose timeout is 1200`, "at least 1500"}},
		{"negative presign_expiry", func(j *Job) { j.PresignExpiry = -1 }, "presign_expiry", []string{"not a positive"}},
		{"negative job_timeout", func(j *Job) { j.JobTimeout = -1 }, "job_timeout", []string{"not a positive"}},
		// 9300000000 s is past what a time.Duration holds: the deadline would overflow and the
		// run time out at once.
		{"job_timeout overflowing a duration", func(j *Job) { j.JobTimeout = 9300000000 }, "job_timeout", []string{"9300000000 exceeds the limit of 604800"}},
		{"job_timeout past a week", func(j *Job) { j.JobTimeout = MaxJobTimeout + 1 }, "job_timeout", []string{"exceeds the limit of 604800"}},
		{"presign_expiry past 7 days", func(j *Job) { j.PresignExpiry = MaxPresignExpiry + 1 }, "presign_expiry", []string{"604801 exceeds 604800 (7 days)", "S3 presigned URL"}},
		{"presign_expiry valid until 2058", func(j *Job) { j.PresignExpiry = 1_000_000_000 }, "presign_expiry", []string{"exceeds 604800"}},
		{"pr_number past 32 bits", func(j *Job) { j.PRNumber = 1 << 40 }, "pr_number", []string{"past the largest pull request number"}},
		{"issue_number past 32 bits", func(j *Job) { j.IssueNumber = 1 << 31 }, "issue_number", []string{"past the largest issue number"}},
		{"NUL in a command", func(j *Job) { j.Orders[0].Cmds = []string{"echo a\x00b"} }, "orders[0].cmds[0]", []string{"NUL byte", "remove it"}},
		{"NUL in an env var value", func(j *Job) { j.Orders[0].EnvVars = map[string]string{"A": "x\x00"} }, "orders[0].env_vars.A", []string{"NUL byte"}},
		{"NUL in an env var name", func(j *Job) { j.Orders[0].EnvVars = map[string]string{"A\x00": "x"} }, `orders[0].env_vars["A\x00"]`, []string{"the name contains a NUL byte"}},
		{"NUL in username", func(j *Job) { j.Username = "ana\x00" }, "username", []string{"NUL byte"}},
		{"NUL in order_name", func(j *Job) { j.Orders[0].OrderName = "pl\x00an" }, "orders[0].order_name", []string{"NUL byte"}},
		{"NUL in a tag value", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{Tags: map[string]string{"role": "a\x00"}}
		}, "orders[1].ssm_targets.tags.role", []string{"NUL byte"}},
		{"commit_hash an option", func(j *Job) { j.CommitHash = "--upload-pack=touch /tmp/x" }, "commit_hash", []string{"starts with '-'", "option", "commit hash"}},
		{"order commit_hash an option", func(j *Job) { j.Orders[0].CommitHash = "-c" }, "orders[0].commit_hash", []string{"starts with '-'"}},
		{"commit_hash with a space", func(j *Job) { j.CommitHash = "main foo" }, "commit_hash", []string{"not a git revision"}},
		{"commit_hash a range", func(j *Job) { j.CommitHash = "main..dev" }, "commit_hash", []string{"'..'"}},
		{"commit_hash ending in .lock", func(j *Job) { j.CommitHash = "heads/x.lock" }, "commit_hash", []string{"'.lock'"}},
		{"commit_hash with an empty part", func(j *Job) { j.CommitHash = "a//b" }, "commit_hash", []string{"empty part"}},
		{"commit_hash too long", func(j *Job) { j.CommitHash = strings.Repeat("a", 256) }, "commit_hash", []string{"256 bytes long"}},
		{"sops_key age1 but malformed", func(j *Job) { j.Orders[0].SopsKey = "age1notarecipient" }, "orders[0].sops_key", []string{"not a valid age recipient"}},
		{"sops_key with a bad checksum", func(j *Job) {
			j.Orders[0].SopsKey = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gz"
		}, "orders[0].sops_key", []string{"not a valid age recipient"}},
		{"sops_key a plugin recipient", func(j *Job) {
			j.Orders[0].SopsKey = "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t"
		}, "orders[0].sops_key", []string{"plugin recipient"}},
		{"sops_key a private key", func(j *Job) {
			j.Orders[0].SopsKey = "AGE-SECRET-KEY-1QQQQ"
		}, "orders[0].sops_key", []string{"private key", "treat the private key as exposed"}},
		{"instance id a path", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{InstanceIDs: []string{"i-0123456789abcdef0/../x"}}
		}, "orders[1].ssm_targets.instance_ids[0]", []string{"not an instance id", "i- and 8 or 17 hex digits"}},
		{"instance id not hex", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{InstanceIDs: []string{"i-zzzzzzzz"}}
		}, "orders[1].ssm_targets.instance_ids[0]", []string{"not an instance id"}},
		{"too many instance ids", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			ids := make([]string, 51)
			for k := range ids {
				ids[k] = fmt.Sprintf("i-%08x", k)
			}
			j.Orders[1].SSMTargets = &SSMTargets{InstanceIDs: ids}
		}, "orders[1].ssm_targets.instance_ids", []string{"51 instances, over the 50"}},
		{"too many tags", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{Tags: map[string]string{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1"}}
		}, "orders[1].ssm_targets.tags", []string{"6 tags, over the 5"}},
		{"tag key too long", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{Tags: map[string]string{strings.Repeat("k", 129): "1"}}
		}, "orders[1].ssm_targets.tags." + strings.Repeat("k", 129), []string{"129 characters, over the 128"}},
		{"tag key with a character SSM refuses", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{Tags: map[string]string{"a+b": "1"}}
		}, `orders[1].ssm_targets.tags["a+b"]`, []string{"character SSM refuses"}},
		{"tag value empty", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{Tags: map[string]string{"role": ""}}
		}, "orders[1].ssm_targets.tags.role", []string{"empty value"}},
		{"tag value too long", func(j *Job) {
			j.Orders[1].ExecutionTarget = TargetSSM
			j.Orders[1].SSMTargets = &SSMTargets{Tags: map[string]string{"role": strings.Repeat("v", 257)}}
		}, "orders[1].ssm_targets.tags.role", []string{"257 characters, over the 256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := validJob()
			j.Normalize(false)
			tt.change(&j)
			ps := problemsOf(t, Validate(j))
			if _, ok := findProblem(ps, tt.path, tt.fragments...); !ok {
				t.Fatalf("no problem at %q containing %q in:\n%v", tt.path, tt.fragments, ps)
			}
		})
	}
}

func TestValidateTimeoutLimitBoundaries(t *testing.T) {
	t.Parallel()
	for _, target := range Targets {
		limit := target.TimeoutLimit()
		for _, timeout := range []int{1, limit, limit + 1} {
			j := Job{Username: "ana", PresignExpiry: 200000, Orders: []Order{{Cmds: []string{"true"}, Timeout: timeout, ExecutionTarget: target}}}
			if target == TargetSSM {
				j.Orders[0].SSMTargets = &SSMTargets{InstanceIDs: []string{"i-0123456789abcdef0"}}
			}
			j.Normalize(false)
			err := Validate(j)
			if ok := timeout <= limit; ok != (err == nil) {
				t.Errorf("%s timeout %d: got error %v, want accepted %v", target, timeout, err, ok)
			}
		}
	}
}

func TestValidatePresignExpiryBoundary(t *testing.T) {
	t.Parallel()
	j := validJob()
	j.Normalize(false)
	j.PresignExpiry = 1200 + PresignMargin
	if err := Validate(j); err != nil {
		t.Fatalf("presign_expiry equal to the longest timeout plus margin: %v", err)
	}
	// Two orders too long for it: each is named.
	j.PresignExpiry = 500
	ps := problemsOf(t, Validate(j))
	for _, order := range []string{"orders[0]", "orders[1]"} {
		if _, ok := findProblem(ps, "presign_expiry", order); !ok {
			t.Errorf("no presign_expiry problem naming %s in %v", order, ps)
		}
	}
}

func TestValidateCycles(t *testing.T) {
	t.Parallel()
	order := func(id string, deps ...string) Order {
		return Order{OrderName: id, Cmds: []string{"true"}, Timeout: 60, Dependencies: deps}
	}
	tests := []struct {
		name   string
		orders []Order
		want   []string
	}{
		{"two", []Order{order("b", "a"), order("a", "b")},
			[]string{"dependency cycle a -> b -> a"}},
		{"three, starting at the smallest id", []Order{order("c", "a"), order("b", "c"), order("a", "b")},
			[]string{"dependency cycle a -> b -> c -> a"}},
		{"not reachable from the first order", []Order{order("root"), order("x", "root", "z"), order("y", "x"), order("z", "y")},
			[]string{"dependency cycle x -> z -> y -> x"}},
		{"two separate cycles, sorted", []Order{order("q", "p"), order("p", "q"), order("b", "a"), order("a", "b")},
			[]string{"dependency cycle a -> b -> a", "dependency cycle p -> q -> p"}},
		{"shortest cycle through the smallest id", []Order{order("a", "b", "c"), order("b", "c"), order("c", "a")},
			[]string{"dependency cycle a -> c -> a"}},
		{"a diamond is no cycle", []Order{order("a"), order("b", "a"), order("c", "a"), order("d", "b", "c")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := Job{Username: "ana", Orders: tt.orders}
			j.Normalize(false)
			err := Validate(j)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var got []string
			for _, p := range problemsOf(t, err) {
				if p.Path != "orders" {
					t.Errorf("unexpected problem %v", p)
					continue
				}
				got = append(got, strings.SplitN(p.Message, " (", 2)[0])
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("cycles: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateReportsEverythingInFieldOrder(t *testing.T) {
	t.Parallel()
	j := Job{
		Username:      "",
		GitRepo:       "nope",
		PresignExpiry: 100,
		JobTimeout:    -1,
		Orders: []Order{
			{OrderName: "a", Cmds: nil, Timeout: 0, Dependencies: []string{"b"}},
			{OrderName: "b", Cmds: []string{"ls"}, Timeout: 1000, ExecutionTarget: TargetLambda, Dependencies: []string{"a", "zzz"}},
			{OrderName: "c", Cmds: []string{"ls"}, Timeout: 60},
		},
	}
	j.Normalize(false)
	err := Validate(j)
	var got []string
	for _, p := range problemsOf(t, err) {
		got = append(got, p.Path)
	}
	want := []string{
		"orders",
		"orders[0].cmds", "orders[0].timeout",
		"orders[1].timeout", "orders[1].dependencies[1]",
		"username", "git_repo", "presign_expiry", "job_timeout",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problem paths:\ngot  %q\nwant %q", got, want)
	}
	if again := Validate(j); again.Error() != err.Error() {
		t.Fatalf("second Validate differs:\n%v\n%v", again, err)
	}
	if !strings.HasPrefix(err.Error(), "job rejected: 9 problems:\n  orders: dependency cycle a -> b -> a") {
		t.Errorf("Error(): got %q", err.Error())
	}
}

func TestValidateNeverRepeatsSecrets(t *testing.T) {
	t.Parallel()
	const token = "ghp_SuperSecretTokenValue123"
	const private = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	j := validJob()
	j.Normalize(false)
	j.GitTokenLocation = token // a token pasted where its location belongs
	j.GitSSHKeyLocation = "aws:::" + token
	j.Orders[0].SopsKey = private
	err := Validate(j)
	ps := problemsOf(t, err)
	if _, ok := findProblem(ps, "orders[0].sops_key", "private key"); !ok {
		t.Errorf("private sops_key not called out: %v", ps)
	}
	for _, secret := range []string{token, private} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error repeats a secret: %v", err)
		}
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		ssm   bool
		job   Job
		check func(t *testing.T, j Job)
	}{
		{"job defaults", false, Job{Orders: []Order{{Cmds: []string{"ls"}}}}, func(t *testing.T, j Job) {
			if j.FlowLabel != "exec" || j.PresignExpiry != 7200 || j.JobTimeout != 3600 {
				t.Errorf("got flow_label %q presign_expiry %d job_timeout %d, want exec 7200 3600", j.FlowLabel, j.PresignExpiry, j.JobTimeout)
			}
			if o := j.Orders[0]; o.ExecutionTarget != TargetCodeBuild || o.SSMDocumentName != "" {
				t.Errorf("target %q document %q, want codebuild and none", o.ExecutionTarget, o.SSMDocumentName)
			}
		}},
		{"ssm defaults", true, Job{Orders: []Order{{Cmds: []string{"ls"}}, {Cmds: []string{"ls"}, ExecutionTarget: TargetLambda}}}, func(t *testing.T, j Job) {
			if j.FlowLabel != "ssm" {
				t.Errorf("flow_label: got %q, want ssm", j.FlowLabel)
			}
			if o := j.Orders[0]; o.ExecutionTarget != TargetSSM || o.SSMDocumentName != DefaultSSMDocumentName {
				t.Errorf("orders[0]: target %q document %q, want ssm %s", o.ExecutionTarget, o.SSMDocumentName, DefaultSSMDocumentName)
			}
			if o := j.Orders[1]; o.ExecutionTarget != TargetLambda || o.SSMDocumentName != "" {
				t.Errorf("orders[1]: target %q document %q, want lambda and none", o.ExecutionTarget, o.SSMDocumentName)
			}
		}},
		{"given values kept", false, Job{FlowLabel: "pr", PresignExpiry: 10, JobTimeout: 20, Orders: []Order{{OrderName: "x", QueueID: "y", ExecutionTarget: TargetSSM, SSMDocumentName: "doc"}}}, func(t *testing.T, j Job) {
			if j.FlowLabel != "pr" || j.PresignExpiry != 10 || j.JobTimeout != 20 {
				t.Errorf("job values changed: %+v", j)
			}
			if o := j.Orders[0]; o.OrderName != "x" || o.QueueID != "y" || o.SSMDocumentName != "doc" {
				t.Errorf("order values changed: %+v", o)
			}
		}},
		{"use_lambda", true, Job{Orders: []Order{{UseLambda: ptr(true)}, {UseLambda: ptr(false)}, {UseLambda: ptr(true), ExecutionTarget: TargetCodeBuild}}}, func(t *testing.T, j Job) {
			want := []Target{TargetLambda, TargetCodeBuild, TargetCodeBuild}
			for i, o := range j.Orders {
				if o.ExecutionTarget != want[i] {
					t.Errorf("orders[%d]: got %q, want %q", i, o.ExecutionTarget, want[i])
				}
			}
		}},
		{"commit hash from the job for git orders", false, Job{CommitHash: "abc", Orders: []Order{{GitFolder: "a"}, {GitFolder: "b", CommitHash: "def"}, {}}}, func(t *testing.T, j Job) {
			for i, want := range []string{"abc", "def", ""} {
				if got := j.Orders[i].CommitHash; got != want {
					t.Errorf("orders[%d].commit_hash: got %q, want %q", i, got, want)
				}
			}
		}},
		{"derived names", false, Job{Orders: []Order{
			{GitFolder: "stacks/Prod Net/", Cmds: []string{"x"}},
			{Cmds: []string{"  Tofu -chdir=infra PLAN  "}},
			{Cmds: []string{strings.Repeat("a", 39) + " b c"}},
			{Cmds: []string{"!!!"}},
			{GitFolder: "/", Cmds: []string{"make deploy"}},
			{},
		}}, func(t *testing.T, j Job) {
			want := []string{"prod-net", "tofu-chdir-infra-plan", strings.Repeat("a", 39), "order-4", "make-deploy", "order-6"}
			for i, o := range j.Orders {
				if o.OrderName != want[i] || o.QueueID != want[i] {
					t.Errorf("orders[%d]: got name %q queue_id %q, want %q", i, o.OrderName, o.QueueID, want[i])
				}
			}
		}},
		{"derived names made unique", false, Job{Orders: []Order{
			{Cmds: []string{"tofu plan"}},
			{Cmds: []string{"tofu plan"}},
			{OrderName: "tofu-plan-3", Cmds: []string{"x"}},
			{Cmds: []string{"tofu plan"}},
			{QueueID: "make", Cmds: []string{"x"}},
			{Cmds: []string{"make"}},
			{QueueID: "own", Cmds: []string{"own"}},
		}}, func(t *testing.T, j Job) {
			want := []string{"tofu-plan", "tofu-plan-2", "tofu-plan-3", "tofu-plan-4", "x", "make-2", "own"}
			for i, o := range j.Orders {
				if o.OrderName != want[i] {
					t.Errorf("orders[%d]: got %q, want %q", i, o.OrderName, want[i])
				}
			}
			if got := j.Orders[5].QueueID; got != "make-2" {
				t.Errorf("orders[5].queue_id: got %q, want make-2 (not orders[4]'s make)", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := tt.job
			j.Normalize(tt.ssm)
			tt.check(t, j)
			again := j
			again.Orders = append([]Order(nil), j.Orders...)
			again.Normalize(tt.ssm)
			if !reflect.DeepEqual(again, j) {
				t.Errorf("Normalize is not idempotent:\nonce  %+v\ntwice %+v", j, again)
			}
		})
	}
}

// An order longer than the default presign_expiry allows is valid when presign_expiry is left
// out: the default grows to fit it, while one written too short is still refused.
func TestPresignExpiryDefaultFitsTheLongestOrder(t *testing.T) {
	t.Parallel()
	j := validJob()
	j.Orders[1].Timeout = 10000
	j.Normalize(false)
	if want := 10000 + PresignMargin; j.PresignExpiry != want {
		t.Errorf("default presign_expiry: got %d, want %d", j.PresignExpiry, want)
	}
	if err := Validate(j); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	short := validJob()
	short.Orders[1].Timeout = 10000
	short.PresignExpiry = DefaultPresignExpiry
	short.Normalize(false)
	if _, ok := findProblem(problemsOf(t, Validate(short)), "presign_expiry", "7200 is too short", "at least 10300"); !ok {
		t.Errorf("an explicit presign_expiry too short was not named: %v", Validate(short))
	}
}

func TestValidateAcceptsGeneratedAgeRecipients(t *testing.T) {
	t.Parallel()
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	h, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{x.Recipient().String(), h.Recipient().String()} {
		j := validJob()
		j.Orders[0].SopsKey = key
		j.Normalize(false)
		if err := Validate(j); err != nil {
			t.Errorf("sops_key %.20s...: %v", key, err)
		}
	}
}

// Every revision a caller plausibly means is accepted.
func TestValidateAcceptsGitRevisions(t *testing.T) {
	t.Parallel()
	for _, rev := range []string{"3f2a9c1", "0123456789abcdef0123456789abcdef01234567", "main", "release/v1.2", "refs/heads/feature_x", "v2.0.0-rc.1"} {
		j := validJob()
		j.CommitHash = rev
		j.Normalize(false)
		if err := Validate(j); err != nil {
			t.Errorf("commit_hash %q: %v", rev, err)
		}
	}
}
