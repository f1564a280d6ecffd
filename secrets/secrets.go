// Package secrets is the secrets port: fetching secret values from where a job says they live,
// and keeping each run's private sealing key until the run is finalized. The embedded adapters
// use a local secrets file and 0600 key files under the data folder (secrets/localsecrets); the
// AWS adapters use SSM Parameter Store and Secrets Manager (secrets/awssecrets). Sealing itself
// (SOPS with age) is the same on both and lives in package sealing.
package secrets

import (
	"context"
	"errors"
)

// Errors callers branch on.
var (
	// ErrNotFound: no such secret, parameter or run key.
	ErrNotFound = errors.New("secret not found")
	// ErrExists: a run key is stored already (PutRunKey never replaces one).
	ErrExists = errors.New("run key exists")
)

// Source fetches secret values. Values must never be logged or put into an error.
type Source interface {
	// Parameter returns the value of a Parameter Store path (ssm_paths; SecureStrings decrypted).
	Parameter(ctx context.Context, path string) (string, error)
	// Secret returns the value of a Secrets Manager secret by name or ARN (secret_manager_paths).
	Secret(ctx context.Context, name string) (string, error)
}

// Keys keeps each run's private age key.
type Keys interface {
	// PutRunKey stores a run's private key unless one is stored for it already; then it
	// returns ErrExists and the stored key stays. Two intakes of one run racing each other so
	// end up sealing with the same key, whichever stored it.
	PutRunKey(ctx context.Context, runID, key string) error
	// GetRunKey returns a run's private key, or ErrNotFound.
	GetRunKey(ctx context.Context, runID string) (string, error)
	// DeleteRunKey removes a run's key; a missing key is not an error.
	DeleteRunKey(ctx context.Context, runID string) error
}
