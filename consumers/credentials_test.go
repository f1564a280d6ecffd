package consumers_test

import (
	"slices"
	"testing"

	"github.com/iac-ci/iac-ci/consumers"
)

func TestWithoutCredentialsKeepsNoWayToTheWorkersRole(t *testing.T) {
	t.Parallel()
	env := []string{
		"PATH=/usr/bin", "AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=AKIA", "AWS_SECRET_ACCESS_KEY=s",
		"AWS_SESSION_TOKEN=t", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/x",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN=a",
		"AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/token", "AWS_ROLE_ARN=arn", "AWS_PROFILE=p", "AWS_SHARED_CREDENTIALS_FILE=/c",
		"AWS_ACCESS_KEY_ID_NOT=kept", "HOME=/root",
	}
	want := []string{"PATH=/usr/bin", "AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID_NOT=kept", "HOME=/root"}
	if got := consumers.WithoutCredentials(env); !slices.Equal(got, want) {
		t.Fatalf("WithoutCredentials:\n got %q\nwant %q", got, want)
	}
}
