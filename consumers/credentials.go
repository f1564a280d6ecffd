package consumers

import (
	"context"
	"strings"
	"time"
)

// OrderCredentials are the AWS credentials an order's commands run with: those of an order role
// the operator chose, never the worker's own (which read every run's bundle and key). A worker
// without OrderCredentials gives its orders no AWS credentials at all.
type OrderCredentials interface {
	// Env returns the variables of credentials valid for at least validFor:
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
	Env(ctx context.Context, validFor time.Duration) ([]string, error)
}

// credentialVariables are the variables through which a process finds AWS credentials, or the
// endpoint that hands them out (CodeBuild's and ECS's container credentials, web identity, a
// profile). A worker's own are in its environment: none of them may reach an order's.
var credentialVariables = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
}

// WithoutCredentials returns env without the variables that carry AWS credentials or say where
// to get them (credentialVariables).
func WithoutCredentials(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !isCredentialVariable(name) {
			out = append(out, kv)
		}
	}
	return out
}

func isCredentialVariable(name string) bool {
	for _, v := range credentialVariables {
		if name == v {
			return true
		}
	}
	return false
}
