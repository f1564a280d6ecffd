package awssecrets_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/secrets"
	"github.com/iac-ci/iac-ci/secrets/awssecrets"
	"github.com/iac-ci/iac-ci/secrets/secretstest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

type clients struct {
	ssm *ssm.Client
	sm  *secretsmanager.Client
}

func setup(t *testing.T) clients {
	t.Helper()
	cfg := awstest.Config(t)
	return clients{ssm: ssm.NewFromConfig(cfg), sm: secretsmanager.NewFromConfig(cfg)}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	c := setup(t)
	secretstest.Run(t, secretstest.Harness{
		OpenKeys: func(t *testing.T) secrets.Keys {
			k, err := awssecrets.NewKeys(c.ssm, "/iac-ci/run-keys")
			if err != nil {
				t.Fatalf("NewKeys: %v", err)
			}
			return k
		},
		OpenSource: func(t *testing.T, params, secretValues map[string]string) secrets.Source {
			for path, v := range params {
				_, err := c.ssm.PutParameter(t.Context(), &ssm.PutParameterInput{
					Name: aws.String(path), Value: aws.String(v), Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true),
				})
				if err != nil {
					t.Fatalf("seed parameter %s: %v", path, err)
				}
			}
			for name, v := range secretValues {
				if _, err := c.sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
					Name: aws.String(name), SecretString: aws.String(v),
				}); err != nil {
					t.Fatalf("seed secret %s: %v", name, err)
				}
			}
			return awssecrets.NewSource(c.ssm, c.sm)
		},
	})
}

func TestRunKeyIsSecureStringUnderPrefix(t *testing.T) {
	t.Parallel()
	c := setup(t)
	prefix := "/iac-ci-" + randomHex(4) + "/run-keys"
	k, err := awssecrets.NewKeys(c.ssm, prefix+"/") // a trailing slash is forgiven
	if err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	const run = "20260101T000000Z-0123456789abcdef"
	if err := k.PutRunKey(t.Context(), run, "AGE-SECRET-KEY-1SECRETSECRET"); err != nil {
		t.Fatalf("PutRunKey: %v", err)
	}
	out, err := c.ssm.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String(prefix + "/" + run)})
	if err != nil {
		t.Fatalf("the key is not at %s/%s: %v", prefix, run, err)
	}
	if out.Parameter.Type != ssmtypes.ParameterTypeSecureString {
		t.Errorf("run key parameter type: got %s, want SecureString", out.Parameter.Type)
	}
}

func TestSecretBinary(t *testing.T) {
	t.Parallel()
	c := setup(t)
	name := "iac-ci-test/binary-" + randomHex(4)
	want := "binary\x00value-" + randomHex(4)
	if _, err := c.sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretBinary: []byte(want),
	}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	got, err := awssecrets.NewSource(c.ssm, c.sm).Secret(t.Context(), name)
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if got != want {
		t.Errorf("Secret of a SecretBinary: got %q, want %q", got, want)
	}
}

func TestSecretByARN(t *testing.T) {
	t.Parallel()
	c := setup(t)
	name := "iac-ci-test/by-arn-" + randomHex(4)
	want := "arn-value-" + randomHex(4)
	out, err := c.sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(want)})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	got, err := awssecrets.NewSource(c.ssm, c.sm).Secret(t.Context(), aws.ToString(out.ARN))
	if err != nil {
		t.Fatalf("Secret(%s): %v", aws.ToString(out.ARN), err)
	}
	if got != want {
		t.Errorf("Secret by ARN: got a different value")
	}
}

func TestNewKeysRejectsBadPrefix(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "iac-ci/run-keys", "/", "/a//b", "/with space"} {
		if _, err := awssecrets.NewKeys(nil, p); err == nil {
			t.Errorf("NewKeys(%q): got nil error", p)
		}
	}
}

func TestKeysRejectUnsafeRunIDs(t *testing.T) {
	t.Parallel()
	k, err := awssecrets.NewKeys(failingSSM{}, "/iac-ci/run-keys")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "..", "a/b", "../../other", ".x", "sp ace"} {
		if err := k.PutRunKey(t.Context(), id, "k"); err == nil || strings.Contains(err.Error(), "ValidationException") {
			t.Errorf("PutRunKey(%q): got %v, want a run id error before any request", id, err)
		}
	}
}

// failingSSM answers every call with a validation error that quotes the request's value, as AWS
// validation messages may.
type failingSSM struct{}

func (failingSSM) fail(value string) error {
	return &smithy.GenericAPIError{Code: "ValidationException", Message: "Value '" + value + "' at 'value' failed to satisfy constraint"}
}

func (f failingSSM) GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	return nil, f.fail("")
}

func (f failingSSM) PutParameter(_ context.Context, in *ssm.PutParameterInput, _ ...func(*ssm.Options)) (*ssm.PutParameterOutput, error) {
	return nil, f.fail(aws.ToString(in.Value))
}

func (f failingSSM) DeleteParameter(context.Context, *ssm.DeleteParameterInput, ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error) {
	return nil, f.fail("")
}

func TestPutErrorWithholdsServiceMessage(t *testing.T) {
	t.Parallel()
	k, err := awssecrets.NewKeys(failingSSM{}, "/iac-ci/run-keys")
	if err != nil {
		t.Fatal(err)
	}
	const key = "AGE-SECRET-KEY-1MUSTNOTLEAK"
	err = k.PutRunKey(t.Context(), "run-1", key)
	if err == nil {
		t.Fatal("PutRunKey: got nil error")
	}
	if strings.Contains(err.Error(), key) {
		t.Fatalf("PutRunKey error holds the key: %q", err)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationException" {
		t.Errorf("PutRunKey error: got %v, want one that still carries the code ValidationException", err)
	}
	if err := k.DeleteRunKey(t.Context(), "run-1"); err == nil || errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("DeleteRunKey on a service error: got %v, want the error", err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
