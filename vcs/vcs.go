// Package vcs reports runs on pull requests, independently of the hosting provider: it renders a
// run as one comment body (RenderComment) that always fits a provider's size limit and stays valid
// markdown whatever the logs contain, and it paces publishing (Coalescer) so that a run whose
// orders change state many times a second still costs at most one provider call per interval.
// Provider adapters live in sub-packages (vcs/github) and report failures with the sentinel
// errors below, so callers never import a provider's client.
package vcs

import (
	"errors"

	"github.com/iac-ci/iac-ci/domain"
)

// Errors callers branch on. Each adapter maps its provider's errors onto these in one place.
var (
	// ErrNotFound: the repository, pull request, file or comment does not exist (or the token
	// cannot see it).
	ErrNotFound = errors.New("not found at the provider")
	// ErrDenied: the token is missing, invalid or lacks a permission.
	ErrDenied = errors.New("denied by the provider")
	// ErrRateLimited: the provider asked to slow down; retrying later may succeed.
	ErrRateLimited = errors.New("rate limited by the provider")
	// ErrUnavailable: the provider could not be reached or failed; retrying later may succeed.
	ErrUnavailable = errors.New("provider unavailable")
	// ErrRejected: the provider refused the request as invalid; retrying will not help.
	ErrRejected = errors.New("rejected by the provider")
	// ErrBadEvent: a webhook event body could not be read.
	ErrBadEvent = errors.New("malformed event")
)

// RunView is what a run's comment and commit status show.
type RunView struct {
	Run    domain.Run
	Orders []domain.OrderRecord
	// StatusURL links to the run's status page.
	StatusURL string
}
