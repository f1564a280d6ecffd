package infra_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/iac-ci/iac-ci/domain"
)

// codeBuild plays CodeBuild's StartBuild for the project Terraform made: moto accepts a build
// but runs nothing (and answers in a form the SDK cannot read), and a CodeBuild container
// cannot run here. It answers as CodeBuild does and runs what the buildspec says, `iac-ci
// worker`, with the build's environment overrides, as a local process.
type codeBuild struct {
	t       *testing.T
	project string
	env     []string
	url     string

	mu     sync.Mutex
	builds int
	out    lockedBuffer
	wg     sync.WaitGroup
}

func startCodeBuild(t *testing.T, d *deployed) *codeBuild {
	t.Helper()
	bin, err := iacCIBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &codeBuild{t: t, project: str(d.get(t, "aws_codebuild_project.worker").Values["name"]), env: terraformEnv(tool{})}
	c.env = append(c.env, motoEnv(t)...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, bin) }))
	c.url = srv.URL
	t.Cleanup(func() { srv.Close(); c.wg.Wait() })
	return c
}

func (c *codeBuild) serve(w http.ResponseWriter, r *http.Request, bin string) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(typ, msg string) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Header.Get("X-Amz-Target") != "CodeBuild_20161006.StartBuild" {
		fail("InvalidInputException", "this stand-in plays StartBuild only")
		return
	}
	var in struct {
		ProjectName string `json:"projectName"`
		Env         []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"environmentVariablesOverride"`
		Buildspec string `json:"buildspecOverride"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fail("InvalidInputException", err.Error())
		return
	}
	if in.ProjectName != c.project {
		fail("ResourceNotFoundException", "Project cannot be found: "+in.ProjectName)
		return
	}
	if !strings.Contains(in.Buildspec, "iac-ci worker") {
		fail("InvalidInputException", "the buildspec does not run iac-ci worker")
		return
	}
	cmd := exec.Command(bin, "worker", "--log-format", "json")
	cmd.Env = append([]string{}, c.env...)
	for _, v := range in.Env {
		cmd.Env = append(cmd.Env, v.Name+"="+v.Value)
	}
	cmd.Stdout, cmd.Stderr = &c.out, &c.out
	if err := cmd.Start(); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": "InternalFailure", "message": err.Error()})
		return
	}
	c.mu.Lock()
	c.builds++
	c.mu.Unlock()
	c.wg.Add(1)
	go func() { defer c.wg.Done(); _ = cmd.Wait() }()
	_ = json.NewEncoder(w).Encode(map[string]any{"build": map[string]any{
		"id": c.project + ":" + domain.NewTraceID(), "projectName": c.project, "buildStatus": "IN_PROGRESS"}})
}

func (c *codeBuild) started() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.builds
}
