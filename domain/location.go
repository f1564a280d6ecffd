package domain

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// SecretKind says which store a secret location points into.
type SecretKind string

const (
	SecretSSM      SecretKind = "ssm"     // SSM Parameter Store: "aws:::ssm:<path>"
	SecretsManager SecretKind = "secretd" // Secrets Manager: "aws:::secretd:<name or ARN>"
	SecretEnv      SecretKind = "env"     // the engine's own environment: "env:<NAME>"
)

// SecretLocation says where a secret lives, such as a git token: a store and a reference in it.
// SecretEnv is meant for the embedded mode only; the domain cannot know the mode, so the secrets
// adapters of the aws mode refuse it rather than Validate.
type SecretLocation struct {
	Kind SecretKind
	Ref  string // parameter path, secret name or ARN, or variable name
}

// String gives the location back in the form ParseSecretLocation reads.
func (l SecretLocation) String() string {
	if l.Kind == SecretEnv {
		return "env:" + l.Ref
	}
	return "aws:::" + string(l.Kind) + ":" + l.Ref
}

// ErrSecretLocation is wrapped by every error of ParseSecretLocation.
var ErrSecretLocation = errors.New("malformed secret location")

// ErrS3Location is wrapped by every error of ParseS3Location.
var ErrS3Location = errors.New("malformed s3 location")

const secretLocationForms = "write aws:::ssm:<path>, aws:::secretd:<name> or env:<NAME>"

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseSecretLocation reads "aws:::ssm:<path>", "aws:::secretd:<name>" or "env:<NAME>". Its
// errors never repeat the location: a caller who pasted the token itself where its location
// belongs must not see it echoed into a log.
func ParseSecretLocation(loc string) (SecretLocation, error) {
	l, reason := parseSecretLocation(loc)
	if reason != "" {
		return SecretLocation{}, fmt.Errorf("%s: %w", reason, ErrSecretLocation)
	}
	return l, nil
}

// parseSecretLocation returns the location, or a reason that says what is wrong and how to fix it.
func parseSecretLocation(loc string) (SecretLocation, string) {
	if loc == "" {
		return SecretLocation{}, "empty: " + secretLocationForms
	}
	var l SecretLocation
	switch {
	case strings.HasPrefix(loc, "aws:::ssm:"):
		l = SecretLocation{Kind: SecretSSM, Ref: strings.TrimPrefix(loc, "aws:::ssm:")}
	case strings.HasPrefix(loc, "aws:::secretd:"):
		l = SecretLocation{Kind: SecretsManager, Ref: strings.TrimPrefix(loc, "aws:::secretd:")}
	case strings.HasPrefix(loc, "env:"):
		l = SecretLocation{Kind: SecretEnv, Ref: strings.TrimPrefix(loc, "env:")}
	case strings.HasPrefix(loc, "aws:::"):
		return SecretLocation{}, "unknown store after aws::: (want ssm or secretd): " + secretLocationForms
	default:
		return SecretLocation{}, "not a secret location: " + secretLocationForms
	}
	switch {
	case l.Ref == "":
		return SecretLocation{}, fmt.Sprintf("nothing after %q: name the %s", l.String(), refNoun(l.Kind))
	case strings.ContainsAny(l.Ref, " \t\r\n"):
		return SecretLocation{}, fmt.Sprintf("the %s contains white space: remove it", refNoun(l.Kind))
	case l.Kind == SecretEnv && !envNamePattern.MatchString(l.Ref):
		return SecretLocation{}, "env: wants a variable name of letters, digits and _ not starting with a digit: write env:GITHUB_TOKEN"
	}
	return l, ""
}

func refNoun(k SecretKind) string {
	switch k {
	case SecretSSM:
		return "parameter path"
	case SecretsManager:
		return "secret name or ARN"
	}
	return "variable"
}

// SecretVarName is the variable a fetched secret becomes in an order's environment: the last
// segment of its path or name, upper-cased, with '-' and '.' turned into '_'
// ("/team/db-password" → "DB_PASSWORD"). A Secrets Manager ARN ends in "secret:<name>", so ':'
// separates segments too; no parameter path or secret name may contain one.
func SecretVarName(pathOrName string) string {
	last := pathOrName[strings.LastIndexAny(pathOrName, "/:")+1:]
	return strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(last))
}

// S3Location is an order's code in S3: a zip object.
type S3Location struct {
	Bucket string
	Key    string
}

// String gives the location back as s3://bucket/key.
func (l S3Location) String() string { return "s3://" + l.Bucket + "/" + l.Key }

// bucketNamePattern follows the general purpose bucket naming rules in the Amazon S3 user guide
// ("Bucket naming rules"): 3 to 63 lower-case letters, digits, dots and hyphens, beginning and
// ending with a letter or digit.
var bucketNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseS3Location reads "s3://bucket/key.zip".
func ParseS3Location(loc string) (S3Location, error) {
	l, reason := parseS3Location(loc)
	if reason != "" {
		return S3Location{}, fmt.Errorf("%s: %w", reason, ErrS3Location)
	}
	return l, nil
}

func parseS3Location(loc string) (S3Location, string) {
	const form = "write s3://bucket/path/to/code.zip"
	rest, ok := strings.CutPrefix(loc, "s3://")
	if !ok {
		return S3Location{}, fmt.Sprintf("%q does not start with s3://: %s", loc, form)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	switch {
	case !bucketNamePattern.MatchString(bucket):
		return S3Location{}, fmt.Sprintf("%q is not a valid bucket name (3-63 of a-z, 0-9, '.', '-'): %s", bucket, form)
	case key == "":
		return S3Location{}, fmt.Sprintf("%q names no object: %s", loc, form)
	case !strings.HasSuffix(strings.ToLower(key), ".zip"):
		return S3Location{}, fmt.Sprintf("%q is not a .zip object: zip the code and %s", loc, form)
	}
	return S3Location{Bucket: bucket, Key: key}, ""
}
