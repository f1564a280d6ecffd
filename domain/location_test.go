package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSecretLocation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want SecretLocation
		frag string // of the error; empty when the location is good
	}{
		{in: "aws:::ssm:/ci/github-token", want: SecretLocation{Kind: SecretSSM, Ref: "/ci/github-token"}},
		{in: "aws:::ssm:plain-name", want: SecretLocation{Kind: SecretSSM, Ref: "plain-name"}},
		{in: "aws:::secretd:prod/git", want: SecretLocation{Kind: SecretsManager, Ref: "prod/git"}},
		{in: "aws:::secretd:arn:aws:secretsmanager:eu-west-1:123456789012:secret:git-AbCdEf", want: SecretLocation{Kind: SecretsManager, Ref: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:git-AbCdEf"}},
		{in: "env:GITHUB_TOKEN", want: SecretLocation{Kind: SecretEnv, Ref: "GITHUB_TOKEN"}},
		{in: "", frag: "empty"},
		{in: "ssm:/ci/token", frag: "not a secret location"},
		{in: "aws:::kms:/x", frag: "unknown store after aws:::"},
		{in: "aws:::ssm:", frag: `nothing after "aws:::ssm:"`},
		{in: "aws:::secretd:", frag: "name the secret name or ARN"},
		{in: "env:", frag: "name the variable"},
		{in: "aws:::ssm:/ci/my token", frag: "white space"},
		{in: "env:1TOKEN", frag: "variable name"},
		{in: "env:GIT-TOKEN", frag: "variable name"},
	}
	for _, tt := range tests {
		got, err := ParseSecretLocation(tt.in)
		if tt.frag == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseSecretLocation(%q): got %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() of %q: got %q", tt.in, s)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.frag) || !errors.Is(err, ErrSecretLocation) {
			t.Errorf("ParseSecretLocation(%q): got error %v, want one containing %q and wrapping ErrSecretLocation", tt.in, err, tt.frag)
		}
		if got != (SecretLocation{}) {
			t.Errorf("ParseSecretLocation(%q): got %+v with an error", tt.in, got)
		}
	}
}

func TestParseSecretLocationNeverEchoes(t *testing.T) {
	t.Parallel()
	const token = "ghp_0123456789abcdefSECRET"
	for _, loc := range []string{token, "aws:::" + token, "env:" + token + "-x", "aws:::ssm:" + token + " x"} {
		_, err := ParseSecretLocation(loc)
		if err == nil {
			t.Fatalf("ParseSecretLocation accepted %q", loc)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("error repeats the location: %v", err)
		}
	}
}

func TestSecretVarName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"/team/db-password", "DB_PASSWORD"},
		{"/a/b/api.key", "API_KEY"},
		{"token", "TOKEN"},
		{"prod/git-ssh.key", "GIT_SSH_KEY"},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:deploy-key-AbCdEf", "DEPLOY_KEY_ABCDEF"},
		{"/folder/", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := SecretVarName(tt.in); got != tt.want {
			t.Errorf("SecretVarName(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseS3Location(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want S3Location
		frag string
	}{
		{in: "s3://code-bucket/a.zip", want: S3Location{Bucket: "code-bucket", Key: "a.zip"}},
		{in: "s3://my.bucket.01/path/to/Code.ZIP", want: S3Location{Bucket: "my.bucket.01", Key: "path/to/Code.ZIP"}},
		{in: "https://code-bucket/a.zip", frag: "does not start with s3://"},
		{in: "s3://code-bucket", frag: "names no object"},
		{in: "s3://code-bucket/", frag: "names no object"},
		{in: "s3://code-bucket/a.tgz", frag: "not a .zip object"},
		{in: "s3:///a.zip", frag: "not a valid bucket name"},
		{in: "s3://ab/a.zip", frag: "not a valid bucket name"},
		{in: "s3://-bucket/a.zip", frag: "not a valid bucket name"},
		{in: "s3://Bucket/a.zip", frag: "not a valid bucket name"},
		{in: "s3://" + strings.Repeat("b", 64) + "/a.zip", frag: "not a valid bucket name"},
	}
	for _, tt := range tests {
		got, err := ParseS3Location(tt.in)
		if tt.frag == "" {
			if err != nil || got != tt.want || got.String() != tt.in {
				t.Errorf("ParseS3Location(%q): got %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.frag) || !errors.Is(err, ErrS3Location) {
			t.Errorf("ParseS3Location(%q): got error %v, want one containing %q and wrapping ErrS3Location", tt.in, err, tt.frag)
		}
	}
}
