package awslaunch_test

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gopkg.in/yaml.v3"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/consumers/awslaunch"
)

// document is the part of an SSM Command document (schema 2.2) that iac-ci relies on.
type document struct {
	SchemaVersion string `yaml:"schemaVersion"`
	Parameters    map[string]struct {
		Type              string  `yaml:"type"`
		Default           *string `yaml:"default"`
		InterpolationType string  `yaml:"interpolationType"`
		AllowedPattern    string  `yaml:"allowedPattern"`
	} `yaml:"parameters"`
	MainSteps []struct {
		Action string `yaml:"action"`
		Inputs struct {
			TimeoutSeconds string   `yaml:"timeoutSeconds"`
			RunCommand     []string `yaml:"runCommand"`
		} `yaml:"inputs"`
	} `yaml:"mainSteps"`
}

func readDocument(t *testing.T) (doc document, text, script string) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "infra", "ssm")
	data, err := os.ReadFile(filepath.Join(dir, "iac-ci-run-commands.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("document: %v", err)
	}
	sh, err := os.ReadFile(filepath.Join(dir, "run-commands.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return doc, string(data), string(sh)
}

// TestDocumentEmbedsTheScript keeps run-commands.sh the one source of the document's script.
func TestDocumentEmbedsTheScript(t *testing.T) {
	t.Parallel()
	doc, _, script := readDocument(t)
	if doc.SchemaVersion != "2.2" || len(doc.MainSteps) != 1 || doc.MainSteps[0].Action != "aws:runShellScript" {
		t.Fatalf("document: schema %q with %d steps, want 2.2 with one aws:runShellScript step", doc.SchemaVersion, len(doc.MainSteps))
	}
	embedded := strings.Join(doc.MainSteps[0].Inputs.RunCommand, "\n")
	if embedded != script {
		t.Fatalf("infra/ssm/iac-ci-run-commands.yaml does not embed infra/ssm/run-commands.sh as it is: "+
			"copy the script into runCommand's block, indented by 10 spaces\n--- embedded ---\n%s\n--- file ---\n%s", embedded, script)
	}
	if got := doc.MainSteps[0].Inputs.TimeoutSeconds; got != "{{ "+awslaunch.ParamExecutionTimeout+" }}" {
		t.Fatalf("timeoutSeconds: got %q, want the %s parameter", got, awslaunch.ParamExecutionTimeout)
	}
}

// TestDocumentParameters checks the document takes exactly what the SSM launcher sends, and that
// a value can reach the script only as data.
func TestDocumentParameters(t *testing.T) {
	t.Parallel()
	doc, _, script := readDocument(t)
	sent := []string{awslaunch.ParamBundleURL, awslaunch.ParamCallbackURL, awslaunch.ParamLogURL,
		awslaunch.ParamRunKeyParameter, awslaunch.ParamExecutionTimeout}
	if got := slices.Sorted(maps.Keys(doc.Parameters)); !slices.Equal(got, slices.Sorted(slices.Values(sent))) {
		t.Fatalf("document parameters: got %v, want %v", got, slices.Sorted(slices.Values(sent)))
	}
	for _, name := range sent[:4] {
		p := doc.Parameters[name]
		if p.Type != "String" || p.InterpolationType != "ENV_VAR" || p.Default != nil {
			t.Fatalf("%s: type %q interpolation %q default %v, want a required String passed as ENV_VAR", name, p.Type, p.InterpolationType, p.Default)
		}
		// An older agent puts the value between single quotes: nothing in it may end them.
		for _, c := range []string{"'", `"`, " ", "\n", "`", `\`} {
			if regexp.MustCompile(p.AllowedPattern).MatchString("https://x/" + c) {
				t.Fatalf("%s: allowedPattern %q admits %q", name, p.AllowedPattern, c)
			}
		}
		if !strings.Contains(script, "${SSM_"+name+"+x}") || !strings.Contains(script, "'{{ "+name+" }}'") {
			t.Fatalf("the script does not read %s from SSM_%s, falling back to a quoted placeholder", name, name)
		}
	}
	timeout := regexp.MustCompile(doc.Parameters[awslaunch.ParamExecutionTimeout].AllowedPattern)
	for v, want := range map[string]bool{"1": true, "3660": true, "172800": true, "172801": false, "0": false, "60 ": false, "1;reboot": false} {
		if timeout.MatchString(v) != want {
			t.Fatalf("executionTimeout %q: allowed %v, want %v", v, !want, want)
		}
	}
	for _, timeout := range []int{1, 900, 28800, 172800} {
		if v := awslaunch.ExecutionSeconds(timeout); !regexp.MustCompile(doc.Parameters[awslaunch.ParamExecutionTimeout].AllowedPattern).MatchString(strconv.Itoa(v)) {
			t.Fatalf("ExecutionSeconds(%d) = %d, which the document refuses", timeout, v)
		}
	}
}

// TestDocumentAdmitsS3PresignedURLs checks the URL pattern against URLs S3's presigner makes,
// with a session token (as a Lambda function's or an instance role's credentials have).
func TestDocumentAdmitsS3PresignedURLs(t *testing.T) {
	t.Parallel()
	doc, _, _ := readDocument(t)
	pattern := regexp.MustCompile(doc.Parameters[awslaunch.ParamCallbackURL].AllowedPattern)
	client := s3.New(s3.Options{Region: "eu-west-3",
		Credentials: credentials.NewStaticCredentialsProvider("ASIAEXAMPLEEXAMPLE", "secret/with+odd=chars", "FwoGZXIvYXdzE+token/with=odd+chars==")})
	presign := s3.NewPresignClient(client)
	key := blobs.ResultKey("20260101T000000Z-0123456789abcdef", 7, 3)
	put, err := presign.PresignPutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("iac-ci-internal-123456789012"), Key: aws.String(key)},
		s3.WithPresignExpires(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	get, err := presign.PresignGetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("iac-ci-internal-123456789012"), Key: aws.String(blobs.ExecKey("r", 1))},
		s3.WithPresignExpires(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{put.URL, get.URL} {
		if !pattern.MatchString(u) {
			t.Fatalf("the document's URL pattern refuses an S3 presigned URL: %s", u)
		}
	}
}
