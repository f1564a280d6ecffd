package domain

// Target is where an order's commands run.
type Target string

const (
	TargetLambda    Target = "lambda"
	TargetCodeBuild Target = "codebuild"
	TargetSSM       Target = "ssm"
)

// Targets lists every execution target, in the order their queues are named.
var Targets = []Target{TargetLambda, TargetCodeBuild, TargetSSM}

// TimeoutLimit is the longest timeout, in seconds, a target allows.
func (t Target) TimeoutLimit() int {
	switch t {
	case TargetLambda:
		// Lambda ends a function at 900 s; the worker needs the last minute to fetch the
		// bundle before and to deliver the log and result after the commands.
		return 840
	case TargetCodeBuild:
		return 28800
	case TargetSSM:
		return 172800
	}
	return 0
}

// Valid reports whether t names a target.
func (t Target) Valid() bool { return t.TimeoutLimit() > 0 }

// Defaults of the job contract.
const (
	DefaultPresignExpiry   = 7200 // seconds
	DefaultJobTimeout      = 3600 // seconds
	DefaultFlowLabel       = "exec"
	DefaultSSMFlowLabel    = "ssm"
	DefaultSSMDocumentName = "iac-ci-run-commands"
	DefaultTarget          = TargetCodeBuild
	// PresignMargin is how much longer than an order's timeout its callback URL must stay valid.
	PresignMargin = 300 // seconds
	// MaxPresignExpiry is the longest presign_expiry: S3 presigned URLs live at most 7 days.
	MaxPresignExpiry = 7 * 24 * 3600 // seconds
	// MaxJobTimeout is the longest job_timeout. A week is more than any job of orders within
	// their targets' limits needs, and it keeps every deadline far from overflowing a
	// time.Duration (which holds about 292 years).
	MaxJobTimeout = 7 * 24 * 3600 // seconds
	// MaxOrderTimeout is the longest timeout of any target (ssm's); it bounds an order's timeout
	// even when its target is unknown.
	MaxOrderTimeout = 172800 // seconds
	// MaxIssueNumber bounds pr_number and issue_number (GitHub numbers them in 32 bits).
	MaxIssueNumber = 1<<31 - 1
	// MaxBodyBytes is the largest job body the producers accept.
	MaxBodyBytes = 1 << 20
)

// Job is what a caller hands iac-ci: orders and where to report. Field names follow the wire
// format (JSON or YAML). After Normalize, defaults are filled in.
type Job struct {
	Orders             []Order `json:"orders" yaml:"orders"`
	Username           string  `json:"username" yaml:"username"`
	GitRepo            string  `json:"git_repo,omitempty" yaml:"git_repo,omitempty"`
	PRNumber           int     `json:"pr_number,omitempty" yaml:"pr_number,omitempty"`
	IssueNumber        int     `json:"issue_number,omitempty" yaml:"issue_number,omitempty"`
	GitTokenLocation   string  `json:"git_token_location,omitempty" yaml:"git_token_location,omitempty"`
	GitSSHKeyLocation  string  `json:"git_ssh_key_location,omitempty" yaml:"git_ssh_key_location,omitempty"`
	CommitHash         string  `json:"commit_hash,omitempty" yaml:"commit_hash,omitempty"`
	FlowLabel          string  `json:"flow_label,omitempty" yaml:"flow_label,omitempty"`
	PRCommentSearchTag string  `json:"pr_comment_search_tag,omitempty" yaml:"pr_comment_search_tag,omitempty"`
	PresignExpiry      int     `json:"presign_expiry,omitempty" yaml:"presign_expiry,omitempty"`
	JobTimeout         int     `json:"job_timeout,omitempty" yaml:"job_timeout,omitempty"`
	// NoSecrets is set by the engine (never by a caller's body) for runs that must not receive
	// secrets, such as pull requests from forks.
	NoSecrets bool `json:"no_secrets,omitempty" yaml:"-"`
	// BaseDir is the folder local_path is relative to (the job file's folder); set by the CLI.
	BaseDir string `json:"base_dir,omitempty" yaml:"-"`
}

// Order is one unit of work: commands run in order in one working directory on one target.
type Order struct {
	Cmds               []string          `json:"cmds" yaml:"cmds"`
	Timeout            int               `json:"timeout" yaml:"timeout"`
	OrderName          string            `json:"order_name,omitempty" yaml:"order_name,omitempty"`
	QueueID            string            `json:"queue_id,omitempty" yaml:"queue_id,omitempty"`
	Dependencies       []string          `json:"dependencies,omitempty" yaml:"dependencies,omitempty"`
	MustSucceed        *bool             `json:"must_succeed,omitempty" yaml:"must_succeed,omitempty"`
	ExecutionTarget    Target            `json:"execution_target,omitempty" yaml:"execution_target,omitempty"`
	UseLambda          *bool             `json:"use_lambda,omitempty" yaml:"use_lambda,omitempty"`
	GitRepo            string            `json:"git_repo,omitempty" yaml:"git_repo,omitempty"`
	GitFolder          string            `json:"git_folder,omitempty" yaml:"git_folder,omitempty"`
	CommitHash         string            `json:"commit_hash,omitempty" yaml:"commit_hash,omitempty"`
	S3Location         string            `json:"s3_location,omitempty" yaml:"s3_location,omitempty"`
	LocalPath          string            `json:"local_path,omitempty" yaml:"local_path,omitempty"`
	EnvVars            map[string]string `json:"env_vars,omitempty" yaml:"env_vars,omitempty"`
	SSMPaths           []string          `json:"ssm_paths,omitempty" yaml:"ssm_paths,omitempty"`
	SecretManagerPaths []string          `json:"secret_manager_paths,omitempty" yaml:"secret_manager_paths,omitempty"`
	SopsKey            string            `json:"sops_key,omitempty" yaml:"sops_key,omitempty"`
	SSMTargets         *SSMTargets       `json:"ssm_targets,omitempty" yaml:"ssm_targets,omitempty"`
	SSMDocumentName    string            `json:"ssm_document_name,omitempty" yaml:"ssm_document_name,omitempty"`
	// WhenModified is used only by a repository's .iac-ci.yml: globs of changed files that select
	// the order for a pull request.
	WhenModified []string `json:"when_modified,omitempty" yaml:"when_modified,omitempty"`
}

// SSMTargets says which EC2 instances an ssm order runs on: instance ids or tags, not both.
type SSMTargets struct {
	InstanceIDs []string          `json:"instance_ids,omitempty" yaml:"instance_ids,omitempty"`
	Tags        map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
}

// Succeed reports the order's must_succeed, which defaults to true.
func (o Order) Succeed() bool { return o.MustSucceed == nil || *o.MustSucceed }
