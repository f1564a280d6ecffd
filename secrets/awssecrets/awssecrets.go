// Package awssecrets holds the AWS adapters of the secrets port: secret values from SSM Parameter
// Store (decrypted SecureStrings) and Secrets Manager, and run keys as SecureString parameters
// named <prefix>/<run_id>.
//
// No error of this package holds a value: errors of requests that carried one (storing a run
// key) keep only the service's error code, since validation messages can quote the input.
package awssecrets

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/iac-ci/iac-ci/secrets"
)

// SSMAPI is what this package asks of an SSM client; *ssm.Client has it.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	DeleteParameter(ctx context.Context, in *ssm.DeleteParameterInput, optFns ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error)
}

// SecretsManagerAPI is what this package asks of a Secrets Manager client; *secretsmanager.Client
// has it.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Source fetches secret values from Parameter Store and Secrets Manager.
type Source struct {
	ssm SSMAPI
	sm  SecretsManagerAPI
}

var _ secrets.Source = (*Source)(nil)

// NewSource returns a source reading parameters through ssmClient and secrets through smClient.
func NewSource(ssmClient SSMAPI, smClient SecretsManagerAPI) *Source {
	return &Source{ssm: ssmClient, sm: smClient}
}

// Parameter returns a parameter's value, decrypted when it is a SecureString.
func (s *Source) Parameter(ctx context.Context, path string) (string, error) {
	out, err := s.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(path), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("ssm parameter %s: %w", path, mapError(err, false))
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", fmt.Errorf("ssm parameter %s: no value in the response: %w", path, secrets.ErrNotFound)
	}
	return *out.Parameter.Value, nil
}

// Secret returns a secret's current value: its SecretString, or its SecretBinary as a string.
func (s *Source) Secret(ctx context.Context, name string) (string, error) {
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("secrets manager secret %s: %w", name, mapError(err, false))
	}
	switch {
	case out.SecretString != nil:
		return *out.SecretString, nil
	case out.SecretBinary != nil:
		return string(out.SecretBinary), nil
	}
	return "", fmt.Errorf("secrets manager secret %s: no value in the response: %w", name, secrets.ErrNotFound)
}

// Keys keeps run keys as SecureString parameters <prefix>/<run_id>, encrypted with the account's
// default SSM key.
type Keys struct {
	ssm    SSMAPI
	prefix string
}

var _ secrets.Keys = (*Keys)(nil)

// prefixPattern is a Parameter Store hierarchy: '/'-separated segments of the characters the
// PutParameter API reference allows in a name (a-zA-Z0-9_.-).
var prefixPattern = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+)+$`)

// runIDPattern keeps a run id to one name segment, so a key stays under its prefix.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// NewKeys returns a run-key store under prefix, such as "/iac-ci/run-keys".
func NewKeys(ssmClient SSMAPI, prefix string) (*Keys, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	if !prefixPattern.MatchString(prefix) {
		return nil, fmt.Errorf("run key prefix %q: want a parameter path such as /iac-ci/run-keys", prefix)
	}
	return &Keys{ssm: ssmClient, prefix: prefix}, nil
}

// ParameterName is the name of the parameter that holds a run's key: what a worker outside the
// engine (a CodeBuild build, an SSM instance) is told, so that it fetches the key itself.
func (k *Keys) ParameterName(runID string) (string, error) { return k.name(runID) }

func (k *Keys) name(runID string) (string, error) {
	if !runIDPattern.MatchString(runID) {
		return "", fmt.Errorf("run id %q is not 1-128 letters, digits, '.', '_' or '-' (not starting with '.')", runID)
	}
	return k.prefix + "/" + runID, nil
}

// PutRunKey stores a run's key unless one is stored (secrets.ErrExists).
func (k *Keys) PutRunKey(ctx context.Context, runID, key string) error {
	name, err := k.name(runID)
	if err != nil {
		return fmt.Errorf("put run key: %w", err)
	}
	_, err = k.ssm.PutParameter(ctx, &ssm.PutParameterInput{
		Name:        aws.String(name),
		Value:       aws.String(key),
		Type:        ssmtypes.ParameterTypeSecureString,
		Overwrite:   aws.Bool(false),
		Description: aws.String("iac-ci run key: opens the sealed bundles of run " + runID),
	})
	if err != nil {
		return fmt.Errorf("put run key %s: %w", name, mapError(err, true))
	}
	return nil
}

// GetRunKey returns a run's key, or secrets.ErrNotFound.
func (k *Keys) GetRunKey(ctx context.Context, runID string) (string, error) {
	name, err := k.name(runID)
	if err != nil {
		return "", fmt.Errorf("get run key: %w", err)
	}
	out, err := k.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("get run key %s: %w", name, mapError(err, false))
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", fmt.Errorf("get run key %s: no value in the response: %w", name, secrets.ErrNotFound)
	}
	return *out.Parameter.Value, nil
}

// DeleteRunKey removes a run's key; a missing key is not an error.
func (k *Keys) DeleteRunKey(ctx context.Context, runID string) error {
	name, err := k.name(runID)
	if err != nil {
		return fmt.Errorf("delete run key: %w", err)
	}
	_, err = k.ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(name)})
	if err = mapError(err, false); err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return fmt.Errorf("delete run key %s: %w", name, err)
	}
	return nil
}

// errorCodes maps the AWS error codes the port gives a meaning to onto its sentinels.
var errorCodes = map[string]error{
	"ParameterNotFound":         secrets.ErrNotFound, // ssm
	"ParameterAlreadyExists":    secrets.ErrExists,   // ssm, a put without overwrite
	"ParameterVersionNotFound":  secrets.ErrNotFound, // ssm, a name:version that does not exist
	"ResourceNotFoundException": secrets.ErrNotFound, // secrets manager
}

// mapError is the one place AWS errors become the port's. sentValue says the request carried a
// secret: then only the error code is kept, since a service message may quote the input.
func mapError(err error, sentValue bool) error {
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return err // transport and SDK errors do not carry the request's body
	}
	if sentinel, ok := errorCodes[apiErr.ErrorCode()]; ok {
		return fmt.Errorf("%s: %w", apiErr.ErrorCode(), sentinel)
	}
	if sentValue {
		return &withheldError{code: apiErr.ErrorCode()}
	}
	return err
}

// withheldError is an AWS error whose message was dropped because the request held a secret.
type withheldError struct{ code string }

func (e *withheldError) Error() string {
	return e.code + " (the service's message is withheld: the request carried a secret)"
}

// withheldError is still a smithy.APIError, so callers can branch on its code as on the original.
var _ smithy.APIError = (*withheldError)(nil)

func (e *withheldError) ErrorCode() string             { return e.code }
func (e *withheldError) ErrorMessage() string          { return "" }
func (e *withheldError) ErrorFault() smithy.ErrorFault { return smithy.FaultUnknown }
