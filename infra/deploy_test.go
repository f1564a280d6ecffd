package infra_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gopkg.in/yaml.v3"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/producers"
)

// The deployment Terraform made: 02-deploy applied to the emulator, and iac-ci run on exactly
// those resources (not aws-setup's), so that the names, the redrive policies, the result
// notification and the functions' variables are shown to agree with the code.

// applyPrefix names the applied deployment.
const applyPrefix = "tfapply"

// motoWorkarounds stand in, in the applied copy only, for what the emulator refuses: a CodeBuild
// project without a source location; redrive-allow policies (the provider waits forever for
// moto to report the policy back as written); the buckets' policies, whose denial of plain HTTP
// moto enforces, while the emulator speaks nothing else; and the event source mappings, with
// which moto tries to run the function's image on every message sent (the test plays Lambda's
// part instead).
const motoWorkarounds = `resource "aws_codebuild_project" "worker" {
  source {
    type      = "S3"
    location  = "emulator/no-source.zip"
    buildspec = "version: 0.2"
  }
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  for_each = {}
}

resource "aws_s3_bucket_policy" "bucket" {
  for_each = {}
}

resource "aws_lambda_event_source_mapping" "queue" {
  for_each = {}
}
`

// deployed is the applied state: every managed resource by address, with its values.
type deployed struct {
	resources map[string]plannedResource
}

func (d *deployed) get(t *testing.T, address string) plannedResource {
	t.Helper()
	r, ok := d.resources[address]
	if !ok {
		t.Fatalf("the applied state has no %s", address)
	}
	return r
}

// stackInUse is held by a test that consumes the applied deployment's queues, so that no other
// takes its messages meanwhile.
var stackInUse sync.Mutex

// useStack holds the applied deployment's queues until the test and its cleanups end.
func useStack(t *testing.T) {
	stackInUse.Lock()
	t.Cleanup(stackInUse.Unlock)
}

var applyOnce struct {
	sync.Once
	d      *deployed
	failed string
}

// applied applies 02-deploy to the emulator once per test binary.
func applied(t *testing.T) *deployed {
	t.Helper()
	applyOnce.Do(func() {
		defer func() {
			if applyOnce.d == nil && applyOnce.failed == "" {
				applyOnce.failed = "the apply did not finish"
			}
		}()
		w := workingCopy(t, "02-deploy", map[string]string{"moto_override.tf": motoProvider, "moto_workarounds_override.tf": motoWorkarounds})
		w.env = motoEnv(t)
		args := append([]string{"apply", "-auto-approve", "-no-color", "-input=false", "-parallelism=10"}, deployVars(applyPrefix)...)
		if _, err := w.try(args...); err != nil {
			applyOnce.failed = "terraform apply of 02-deploy against moto_server: " + err.Error()
			return
		}
		out, err := w.try("show", "-json")
		if err != nil {
			applyOnce.failed = err.Error()
			return
		}
		var st struct {
			Values struct {
				RootModule struct {
					Resources []struct {
						plannedResource
						Values map[string]any `json:"values"`
					} `json:"resources"`
				} `json:"root_module"`
			} `json:"values"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			applyOnce.failed = "show -json: " + err.Error()
			return
		}
		d := &deployed{resources: map[string]plannedResource{}}
		for _, r := range st.Values.RootModule.Resources {
			if r.Mode == "managed" {
				p := r.plannedResource
				p.Values = r.Values
				d.resources[p.Address] = p
			}
		}
		applyOnce.d = d
	})
	if applyOnce.failed != "" {
		t.Fatal(applyOnce.failed)
	}
	return applyOnce.d
}

// functionEnv is the environment Terraform gave a function, with the emulator's endpoint and
// credentials added.
func (d *deployed) functionEnv(t *testing.T, name string) map[string]string {
	t.Helper()
	fn := d.get(t, fmt.Sprintf("aws_lambda_function.fn[%q]", name))
	envs, _ := fn.Values["environment"].([]any)
	if len(envs) != 1 {
		t.Fatalf("function %s: no environment", name)
	}
	vars, _ := envs[0].(map[string]any)["variables"].(map[string]any)
	env := map[string]string{}
	for k, v := range vars {
		env[k] = str(v)
	}
	for _, kv := range motoEnv(t) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// iacCIBinary builds cmd/iac-ci once per test binary.
var iacCIBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(scratch, "iac-ci")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/iac-ci")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build iac-ci: %w\n%s", err, out)
	}
	return bin, nil
})

const webhookSecret = "infra-test-webhook-secret"

// lockedBuffer is a bytes.Buffer safe for a process's output and a test reading it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveOn starts `iac-ci serve --backend aws` with env and returns its URL; it is stopped (by
// its PID) when the test ends.
func serveOn(t *testing.T, env map[string]string) (string, *lockedBuffer) {
	t.Helper()
	bin, err := iacCIBinary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve", "--backend", "aws", "--aws-serialize", "--addr", addr, "--data", t.TempDir(),
		"--webhook-secret", webhookSecret, "--api-token", apiToken, "--log-format", "json", "--sweep-interval", "2s")
	cmd.Env = terraformEnv(tool{})
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("iac-ci serve --backend aws on Terraform's resources ended at start:\n%s", logs.String())
		default:
		}
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, logs
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("iac-ci serve did not answer /healthz:\n%s", logs.String())
	return "", nil
}

// diamondJob is examples/diamond.yaml with its local code moved to a zip in a code bucket, as a
// job on AWS takes it.
func diamondJob(t *testing.T, bucket string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", "diamond.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	if err := yaml.Unmarshal(data, &job); err != nil {
		t.Fatal(err)
	}
	cfg := awstest.Config(t)
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create code bucket: %v", err)
	}
	orders, _ := job["orders"].([]any)
	for _, o := range orders {
		order := o.(map[string]any)
		dir, ok := order["local_path"].(string)
		if !ok {
			continue
		}
		delete(order, "local_path")
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		entries, err := os.ReadDir(filepath.Join("..", "examples", dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			content, err := os.ReadFile(filepath.Join("..", "examples", dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			w, _ := zw.Create(e.Name())
			w.Write(content)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		key := dir + ".zip"
		if _, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: bytes.NewReader(buf.Bytes())}); err != nil {
			t.Fatalf("upload code: %v", err)
		}
		order["s3_location"] = "s3://" + bucket + "/" + key
	}
	out, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apiToken is the API token the test servers are started with.
const apiToken = "infra-test-api-token"

// runView is the part of GET /runs/{id} these tests read.
type runView struct {
	Status domain.RunStatus `json:"status"`
	Orders []struct {
		OrderName string             `json:"order_name"`
		Status    domain.OrderStatus `json:"status"`
	} `json:"orders"`
}

func TestDiamondRunsOnTheResourcesTerraformMade(t *testing.T) {
	t.Parallel()
	d := applied(t)
	useStack(t)
	// The server is every function at once: the orchestrator's variables name every resource.
	env := d.functionEnv(t, "orchestrator")
	for _, k := range []string{"IAC_CI_FUNCTION", "IAC_CI_PUBLIC_URL", "HOME"} {
		delete(env, k)
	}
	builds := startCodeBuild(t, d)
	env["AWS_ENDPOINT_URL_CODEBUILD"] = builds.url
	url, logs := serveOn(t, env)
	body := diamondJob(t, applyPrefix+"-code-serve")
	req, _ := http.NewRequest(http.MethodPost, url+"/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", producers.Sign([]byte(webhookSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var acc struct {
		RunID string `json:"run_id"`
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(data, &acc) != nil || acc.RunID == "" {
		t.Fatalf("POST /webhook: %d %s\n%s", resp.StatusCode, data, logs.String())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var last runView
	for ctx.Err() == nil && !last.Status.Terminal() {
		time.Sleep(300 * time.Millisecond)
		req, _ := http.NewRequest(http.MethodGet, url+"/runs/"+acc.RunID, nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			_ = json.Unmarshal(data, &last)
		}
	}
	if last.Status != domain.RunSucceeded || len(last.Orders) != 4 {
		t.Fatalf("diamond on Terraform's resources: run %q, orders %+v\n%s\nbuilds:\n%s", last.Status, last.Orders, logs.String(), builds.out.String())
	}
	for _, o := range last.Orders {
		if o.Status != domain.OrderSucceeded {
			t.Fatalf("order %s: %s\n%s", o.OrderName, o.Status, logs.String())
		}
	}
	if builds.started() != 2 {
		t.Fatalf("CodeBuild started %d builds, want one per codebuild order (lint, test)", builds.started())
	}
}
