package secrets

import (
	"context"
	"errors"
	"fmt"

	"github.com/iac-ci/iac-ci/domain"
)

// ErrEnvUnavailable: an env: location where the engine's environment may not be read (the aws
// mode passes no getenv, since a Lambda's environment is the deployment's, not the caller's).
var ErrEnvUnavailable = errors.New("env: locations are only available when running embedded; use aws:::ssm:<path> or aws:::secretd:<name>")

// Resolve returns the value a secret location points at. getenv reads env: locations; pass nil
// where they are not allowed. An unset or empty variable is ErrNotFound. The adapters of this
// repository name the path in their errors; Resolve adds the variable name for env:. No error
// holds a value.
func Resolve(ctx context.Context, src Source, loc domain.SecretLocation, getenv func(string) string) (string, error) {
	switch loc.Kind {
	case domain.SecretSSM:
		return src.Parameter(ctx, loc.Ref)
	case domain.SecretsManager:
		return src.Secret(ctx, loc.Ref)
	case domain.SecretEnv:
		if getenv == nil {
			return "", fmt.Errorf("%s: %w", loc, ErrEnvUnavailable)
		}
		v := getenv(loc.Ref)
		if v == "" {
			return "", fmt.Errorf("%s: not set in iac-ci's environment: %w", loc, ErrNotFound)
		}
		return v, nil
	}
	return "", fmt.Errorf("unknown secret store %q", loc.Kind)
}

// FetchOrderSecrets fetches an order's ssm_paths (Parameter) and secret_manager_paths (Secret),
// each under the variable name domain.SecretVarName gives it. The first failure stops the fetch;
// its error names the field, and the source's error the path; neither holds a value.
func FetchOrderSecrets(ctx context.Context, src Source, o domain.Order) (map[string]string, error) {
	env := make(map[string]string, len(o.SSMPaths)+len(o.SecretManagerPaths))
	fetch := func(field string, paths []string, get func(context.Context, string) (string, error)) error {
		for i, p := range paths {
			name := domain.SecretVarName(p)
			if _, dup := env[name]; dup {
				// Validation rejects this; refusing here too keeps a bypass from picking a winner.
				return fmt.Errorf("%s[%d] %s: variable %s is already set by another secret", field, i, p, name)
			}
			v, err := get(ctx, p)
			if err != nil {
				return fmt.Errorf("%s[%d]: %w", field, i, err) // the source's error names the path
			}
			env[name] = v
		}
		return nil
	}
	if err := fetch("ssm_paths", o.SSMPaths, src.Parameter); err != nil {
		return nil, err
	}
	if err := fetch("secret_manager_paths", o.SecretManagerPaths, src.Secret); err != nil {
		return nil, err
	}
	return env, nil
}
