package infra_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/internal/awstest"
)

// Terraform itself checks the stacks: `terraform fmt`, `init` from a local mirror of the AWS
// provider (never the network), `validate` of every stage, `plan` of 02-deploy against this
// binary's moto_server, and `apply` of what moto accepts. Each stage runs in a copy of infra/ in
// a folder of this test binary, so the source tree gets no .terraform folder and no state; the
// copy keeps the committed .terraform.lock.hcl, which init may read but not change.

// envPluginDir names the folder holding registry.terraform.io/hashicorp/aws/<version>/<os_arch>;
// without it the tests look in the usual places.
const envPluginDir = "IAC_CI_TERRAFORM_PLUGIN_DIR"

// stages are the Terraform stacks, applied in this order.
var stages = []string{"00-bootstrap", "01-ecr", "02-deploy"}

// scratch is this test binary's folder for Terraform working copies.
var scratch string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "iac-ci-infra-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "scratch folder:", err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	awstest.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// terraformTool is the terraform binary and the provider mirror, found once.
var terraformTool = sync.OnceValues(func() (tool, error) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		return tool{}, fmt.Errorf("terraform is not on PATH: install Terraform 1.11 or later " +
			"(https://developer.hashicorp.com/terraform/install, or apt-get install terraform from HashiCorp's apt repository)")
	}
	dir, err := pluginDir()
	if err != nil {
		return tool{}, err
	}
	// An empty CLI configuration: no credentials, no provider installation rules of the machine's.
	rc := filepath.Join(scratch, "terraformrc")
	if err := os.WriteFile(rc, nil, 0o600); err != nil {
		return tool{}, err
	}
	return tool{bin: bin, plugins: dir, rc: rc}, nil
})

type tool struct{ bin, plugins, rc string }

// pluginDir finds the provider mirror: $IAC_CI_TERRAFORM_PLUGIN_DIR, else a folder up to two
// levels below the root, or the user's plugin folder, that holds hashicorp/aws.
func pluginDir() (string, error) {
	const provider = "registry.terraform.io/hashicorp/aws"
	has := func(dir string) bool {
		entries, err := os.ReadDir(filepath.Join(dir, provider))
		return err == nil && len(entries) > 0
	}
	if dir := os.Getenv(envPluginDir); dir != "" {
		if !has(dir) {
			return "", fmt.Errorf("%s=%s holds no %s/<version>/<os_arch>: point it at a provider mirror "+
				"(make one with `terraform providers mirror DIR` in infra/02-deploy on a machine with network)", envPluginDir, dir, provider)
		}
		return dir, nil
	}
	var candidates []string
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".terraform.d", "plugins"))
	}
	for _, pattern := range []string{"/*", "/*/*"} {
		m, _ := filepath.Glob(pattern + "/registry.terraform.io")
		for _, p := range m {
			candidates = append(candidates, filepath.Dir(p))
		}
	}
	for _, dir := range candidates {
		if has(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no mirror of the hashicorp/aws provider found (a folder holding %s/<version>/<os_arch> "+
		"up to two levels below /, or in ~/.terraform.d/plugins): set %s to one, made with "+
		"`terraform providers mirror DIR` in infra/02-deploy on a machine with network", provider, envPluginDir)
}

// tf is one working copy of one stage.
type tf struct {
	tool tool
	dir  string   // the stage's folder in the copy
	env  []string // added to the process's environment
}

// terraform runs a terraform command in w's stage and returns its standard output; a failure
// fails the test with both outputs.
func (w *tf) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := w.try(args...)
	if err != nil {
		t.Fatalf("terraform %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (w *tf) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.tool.bin, append([]string{"-chdir=" + w.dir}, args...)...)
	cmd.Env = append(terraformEnv(w.tool), w.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s\n%s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// terraformEnv is the environment without the machine's Terraform and AWS settings, with no
// version check (checkpoint) and no prompts.
func terraformEnv(tl tool) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TF_") || strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "TF_CLI_CONFIG_FILE="+tl.rc, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0")
}

// copies counts working copies, so that each gets a folder of its own.
var copies struct {
	sync.Mutex
	n int
}

// workingCopy copies infra/ (every stage shares infra/ssm) into a fresh folder, writes the
// override files given, and inits the stage from the mirror with the committed lock file.
func workingCopy(t *testing.T, stage string, overrides map[string]string) *tf {
	t.Helper()
	tl, err := terraformTool()
	if err != nil {
		t.Fatal(err)
	}
	copies.Lock()
	copies.n++
	root := filepath.Join(scratch, fmt.Sprintf("copy%d", copies.n))
	copies.Unlock()
	if err := copyTerraform(".", root); err != nil {
		t.Fatalf("copy infra: %v", err)
	}
	dir := filepath.Join(root, stage)
	for name, content := range overrides {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w := &tf{tool: tl, dir: dir}
	w.run(t, "init", "-backend=false", "-plugin-dir="+tl.plugins, "-lockfile=readonly", "-no-color")
	return w
}

// copyTerraform copies the .tf, .hcl and infra/ssm files of src into dst, and nothing a local
// init or apply may have left (.terraform, state, backend.tf, tfvars).
func copyTerraform(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if d.Name() == ".terraform" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		name := d.Name()
		keep := strings.HasSuffix(name, ".tf") && name != "backend.tf" || name == ".terraform.lock.hcl" ||
			strings.HasPrefix(rel, "ssm"+string(filepath.Separator))
		if !keep {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
}

func TestTerraformIsFormatted(t *testing.T) {
	t.Parallel()
	tl, err := terraformTool()
	if err != nil {
		t.Fatal(err)
	}
	w := &tf{tool: tl, dir: "."}
	if out, err := w.try("fmt", "-check", "-recursive", "-diff", "-no-color"); err != nil {
		t.Fatalf("terraform fmt would change files (run `terraform fmt -recursive infra`): %v\n%s", err, out)
	}
}

func TestEveryStageValidates(t *testing.T) {
	t.Parallel()
	for _, stage := range stages {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(filepath.Join(stage, ".terraform.lock.hcl")); err != nil {
				t.Fatalf("%s has no .terraform.lock.hcl: run `terraform init -backend=false` there and commit it", stage)
			}
			w := workingCopy(t, stage, nil)
			out := w.run(t, "validate", "-json", "-no-color")
			var v struct {
				Valid        bool `json:"valid"`
				WarningCount int  `json:"warning_count"`
				Diagnostics  []struct {
					Severity, Summary, Detail string
				} `json:"diagnostics"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("validate -json: %v\n%s", err, out)
			}
			if !v.Valid || v.WarningCount > 0 {
				t.Fatalf("%s: valid %v, diagnostics %+v", stage, v.Valid, v.Diagnostics)
			}
		})
	}
}

// motoProvider points the AWS provider at the emulator: path-style buckets (the emulator has no
// wildcard DNS) and no real account behind the test credentials.
const motoProvider = `provider "aws" {
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true
}
`

// motoEnv is what a terraform run against the emulator needs.
func motoEnv(t *testing.T) []string {
	return []string{"AWS_ENDPOINT_URL=" + awstest.Endpoint(t), "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_REGION=" + awstest.Region, "AWS_EC2_METADATA_DISABLED=true"}
}

// deployVars are 02-deploy's required variables, for a deployment named prefix.
func deployVars(prefix string) []string {
	return []string{
		"-var", "prefix=" + prefix, "-var", "region=" + awstest.Region,
		"-var", "ecr_repository_url=123456789012.dkr.ecr." + awstest.Region + ".amazonaws.com/" + prefix,
		"-var", "image_tag=test", "-var", "webhook_secret_parameter=/" + prefix + "/webhook-secret",
		"-var", "deletion_protection=false",
	}
}

// planPrefix names the planned deployment; it is never applied, so it may share the emulator.
const planPrefix = "iac-ci"

// plannedResource is one resource change of `terraform show -json` of a plan, with its planned
// values.
type plannedResource struct {
	Address string         `json:"address"`
	Mode    string         `json:"mode"`
	Type    string         `json:"type"`
	Name    string         `json:"name"`
	Index   any            `json:"index"`
	Values  map[string]any `json:"-"`
	// Unknown marks the values known only after apply (ARNs, ids): true, or a structure of them.
	Unknown map[string]any `json:"-"`
}

// planOnce is 02-deploy planned against the emulator, once per test binary: the planned
// resources (managed ones) by address, or why there are none.
var planOnce struct {
	sync.Once
	resources map[string]plannedResource
	failed    string
}

// planned returns the resources of the 02-deploy plan by address.
func planned(t *testing.T) map[string]plannedResource {
	t.Helper()
	planOnce.Do(func() {
		// Plan in a subtest-free helper: a failure is kept and reported to every caller.
		defer func() {
			if planOnce.resources == nil && planOnce.failed == "" {
				planOnce.failed = "the plan did not finish"
			}
		}()
		res, err := makePlan(t)
		if err != nil {
			planOnce.failed = err.Error()
			return
		}
		planOnce.resources = res
	})
	if planOnce.failed != "" {
		t.Fatal(planOnce.failed)
	}
	return planOnce.resources
}

func makePlan(t *testing.T) (map[string]plannedResource, error) {
	w := workingCopy(t, "02-deploy", map[string]string{"moto_override.tf": motoProvider})
	w.env = motoEnv(t)
	args := append([]string{"plan", "-no-color", "-input=false", "-out=plan.bin"}, deployVars(planPrefix)...)
	if _, err := w.try(args...); err != nil {
		return nil, fmt.Errorf("terraform plan of 02-deploy against moto_server: %w", err)
	}
	out, err := w.try("show", "-json", "plan.bin")
	if err != nil {
		return nil, err
	}
	var p struct {
		ResourceChanges []struct {
			plannedResource
			Change struct {
				After        map[string]any `json:"after"`
				AfterUnknown map[string]any `json:"after_unknown"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, fmt.Errorf("show -json: %w", err)
	}
	res := map[string]plannedResource{}
	for _, rc := range p.ResourceChanges {
		if rc.Mode == "managed" {
			r := rc.plannedResource
			r.Values, r.Unknown = rc.Change.After, rc.Change.AfterUnknown
			res[r.Address] = r
		}
	}
	return res, nil
}
