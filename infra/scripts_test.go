package infra_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// script runs one of the deploy scripts with only env set (and PATH) and returns its exit code
// and output.
func script(t *testing.T, path string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join("..", path)}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run %s: %v", path, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func TestGenerateTfvarsNamesWhatIsMissingAndQuotesWhatIsGiven(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "terraform.tfvars")
	code, msg := script(t, "scripts/generate_tfvars.sh", []string{"AWS_REGION=eu-west-1", "IAC_CI_IMAGE_TAG=abc"}, "--out", out)
	for _, missing := range []string{"IAC_CI_ECR_REPOSITORY_URL is not set", "IAC_CI_WEBHOOK_SECRET_PARAMETER is not set"} {
		if code != 2 || !strings.Contains(msg, missing) {
			t.Fatalf("without required variables: got exit %d %q, want 2 naming %q", code, msg, missing)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("without required variables: a file was written")
	}

	env := []string{"AWS_REGION=eu-west-1", "IAC_CI_IMAGE_TAG=abc", "IAC_CI_PREFIX=team-ci",
		"IAC_CI_ECR_REPOSITORY_URL=123456789012.dkr.ecr.eu-west-1.amazonaws.com/team-ci",
		"IAC_CI_WEBHOOK_SECRET_PARAMETER=/team-ci/webhook-secret", "IAC_CI_WORKER_MEMORY_MB=3008",
		`IAC_CI_GITHUB_API_URL=https://ghe.example/${x}"`, "IAC_CI_CODE_BUCKET_ARNS=arn:aws:s3:::a, arn:aws:s3:::b"}
	if code, msg := script(t, "scripts/generate_tfvars.sh", env, "--out", out); code != 0 {
		t.Fatalf("generate: exit %d: %s", code, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	vars, err := (&parser{src: []rune(string(data)), file: out}).body(true)
	if err != nil {
		t.Fatalf("the tfvars do not read as HCL: %v\n%s", err, data)
	}
	want := map[string]string{
		"region": `"eu-west-1"`, "prefix": `"team-ci"`, "image_tag": `"abc"`,
		"ecr_repository_url":       `"123456789012.dkr.ecr.eu-west-1.amazonaws.com/team-ci"`,
		"webhook_secret_parameter": `"/team-ci/webhook-secret"`, "worker_memory_mb": "3008",
		"github_api_url":   `"https://ghe.example/$${x}\""`,
		"code_bucket_arns": `["arn:aws:s3:::a", "arn:aws:s3:::b"]`,
	}
	for k, w := range want {
		if got := vars.attrs[k]; got != w {
			t.Fatalf("%s: got %s, want %s", k, got, w)
		}
	}
	if len(vars.attrs) != len(want) {
		t.Fatalf("tfvars: got %v, want exactly %v", vars.attrs, want)
	}
	// Every name it writes is a variable of the stack.
	s := load(t, "02-deploy")
	for k := range vars.attrs {
		found := false
		for _, v := range s.root.all("variable") {
			found = found || v.labels[0] == k
		}
		if !found {
			t.Fatalf("tfvars sets %s, which 02-deploy does not declare", k)
		}
	}
	if code, msg := script(t, "scripts/generate_tfvars.sh", append(env, "IAC_CI_WORKER_MEMORY_MB=lots"), "--out", out); code != 2 || !strings.Contains(msg, "IAC_CI_WORKER_MEMORY_MB") {
		t.Fatalf("a number that is not: got exit %d %q, want 2 naming IAC_CI_WORKER_MEMORY_MB", code, msg)
	}
}

func TestGenerateBackendWritesTheStateLocation(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "backend.tf")
	code, msg := script(t, "scripts/generate_backend.sh", []string{"IAC_CI_PREFIX=team-ci"},
		"--bucket", "team-ci-tfstate-123456789012", "--region", "eu-west-1", "--out", out, "01-ecr")
	if code != 0 {
		t.Fatalf("generate: exit %d: %s", code, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	b, err := (&parser{src: []rune(string(data)), file: out}).body(true)
	if err != nil {
		t.Fatalf("backend.tf does not read as HCL: %v", err)
	}
	tf, _ := b.one("terraform")
	s3, err := tf.one("backend")
	if err != nil || s3.labels[0] != "s3" {
		t.Fatalf("backend: got %v (%v), want s3", s3, err)
	}
	want := map[string]string{"bucket": `"team-ci-tfstate-123456789012"`, "key": `"team-ci/01-ecr/terraform.tfstate"`,
		"region": `"eu-west-1"`, "use_lockfile": "true", "encrypt": "true"}
	for k, w := range want {
		if got := s3.attrs[k]; got != w {
			t.Fatalf("backend %s: got %s, want %s", k, got, w)
		}
	}
	if _, ok := s3.attrs["dynamodb_table"]; ok {
		t.Fatalf("backend: sets the deprecated dynamodb_table, want use_lockfile only")
	}
	// Without the values and without an applied bootstrap, it says which to give.
	code, msg = script(t, "scripts/generate_backend.sh", []string{"IAC_CI_BOOTSTRAP_DIR=" + t.TempDir()}, "--out", out)
	if code != 2 || !strings.Contains(msg, "IAC_CI_STATE_BUCKET") {
		t.Fatalf("without a bucket: got exit %d %q, want 2 naming IAC_CI_STATE_BUCKET", code, msg)
	}
	code, msg = script(t, "scripts/generate_backend.sh", nil, "--bucket", "Not_A_Bucket", "--region", "eu-west-1", "--out", out)
	if code != 2 || !strings.Contains(msg, "not an S3 bucket name") {
		t.Fatalf("a bad bucket name: got exit %d %q, want 2", code, msg)
	}
}

func TestSmokeTestRefusesToRunWithoutItsInputs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, nil, "Usage: tests/smoke/test_deploy.sh BASE_URL"},
		{nil, []string{"http://127.0.0.1:1"}, "IAC_CI_WEBHOOK_SECRET is not set"},
		{[]string{"IAC_CI_WEBHOOK_SECRET=s"}, []string{"127.0.0.1:1"}, "BASE_URL must start with http"},
	} {
		code, msg := script(t, "tests/smoke/test_deploy.sh", tc.env, tc.args...)
		if code != 2 || !strings.Contains(msg, tc.want) {
			t.Fatalf("%v: got exit %d %q, want 2 saying %q", tc.args, code, msg, tc.want)
		}
	}
}

// docs/deploy.md tells teams to configure 02-deploy through generate_tfvars.sh: every variable
// is one of its environment variables, or named in its help as set by hand.
func TestGenerateTfvarsCoversEveryVariable(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "scripts", "generate_tfvars.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script := string(data)
	byHand := script[strings.Index(script, "# Set by hand"):]
	byHand = byHand[:strings.Index(byHand, "\nset -euo")]
	for _, v := range load(t, "02-deploy").root.all("variable") {
		name := v.labels[0]
		if !strings.Contains(script, " "+name+" string ") && !strings.Contains(script, " "+name+" number ") &&
			!strings.Contains(script, " "+name+" list ") && !strings.Contains(byHand, " "+name) {
			t.Errorf("02-deploy variable %s: generate_tfvars.sh neither writes it nor names it as set by hand", name)
		}
	}
}
