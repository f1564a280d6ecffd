package domain

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"filippo.io/age"
)

// Problem is one thing wrong with a job: where, by the job's own field names
// ("orders[2].timeout", "username"; empty for the body as a whole), and a message that says what
// is wrong and how to fix it.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ErrInvalidJob is what every *ValidationError unwraps to, for callers that map errors onto
// answers (a rejected job is the caller's fault, not the engine's).
var ErrInvalidJob = errors.New("job rejected")

// ValidationError lists every problem of a rejected job, from decoding or from Validate. The
// problems of Validate come in the order of the job's fields, those of orders by order index
// and then in the order of the order's fields, so a job always gets the same message.
type ValidationError struct {
	Problems []Problem
	// Partial is set by DecodeJob when the body was read but some of its fields were not: the
	// job returned with the error holds the rest, and is worth validating too (JoinProblems).
	Partial bool `json:"-"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("job rejected: ")
	if len(e.Problems) == 1 {
		b.WriteString("1 problem:")
	} else {
		fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error { return ErrInvalidJob }

// JoinProblems reports every problem of a body at once: those of decoding it (a *ValidationError
// from DecodeJob) followed by those of validating the job decoded beside them (Validate's error,
// or nil). A problem of validation at or under a path decoding already reported is left out: a
// timeout written "60s" is not also "required". It returns nil when there is no problem, and an
// error other than a *ValidationError as it is.
func JoinProblems(decoded, validated error) error {
	var d, v *ValidationError
	if decoded != nil && !errors.As(decoded, &d) {
		return decoded
	}
	if validated != nil && !errors.As(validated, &v) {
		return validated
	}
	var out []Problem
	if d != nil {
		out = append(out, d.Problems...)
	}
	if v != nil {
		for _, p := range v.Problems {
			if !reported(d, p.Path) {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &ValidationError{Problems: out}
}

// reported reports whether decoding already said something at path or at a path holding it.
func reported(d *ValidationError, path string) bool {
	if d == nil {
		return false
	}
	for _, p := range d.Problems {
		if p.Path == "" || p.Path == path || strings.HasPrefix(path, p.Path) && (path[len(p.Path)] == '.' || path[len(p.Path)] == '[') {
			return true
		}
	}
	return false
}

// Normalize fills in the defaults of the job contract, in place; ssm is true for jobs posted as
// SSM work, whose flow label and execution target default to ssm. Only empty fields are filled,
// so Normalize is idempotent.
func (j *Job) Normalize(ssm bool) {
	if j.FlowLabel == "" {
		j.FlowLabel = DefaultFlowLabel
		if ssm {
			j.FlowLabel = DefaultSSMFlowLabel
		}
	}
	if j.PresignExpiry == 0 {
		// Long enough for the longest order: a default that silently capped timeouts would make
		// a job valid or not by a field its author never wrote. Timeouts past every target's
		// limit are left to Validate to report.
		j.PresignExpiry = DefaultPresignExpiry
		for _, o := range j.Orders {
			if o.Timeout > 0 {
				j.PresignExpiry = max(j.PresignExpiry, min(o.Timeout, MaxOrderTimeout)+PresignMargin)
			}
		}
	}
	if j.JobTimeout == 0 {
		j.JobTimeout = DefaultJobTimeout
	}

	// A derived order_name must not take a name given explicitly anywhere in the job, nor, since
	// it becomes the queue_id, a queue_id given explicitly to another order.
	names := map[string]bool{}
	queueIDs := map[string]bool{}
	for _, o := range j.Orders {
		if o.OrderName != "" {
			names[o.OrderName] = true
		}
		if o.QueueID != "" {
			queueIDs[o.QueueID] = true
		}
	}
	for i := range j.Orders {
		o := &j.Orders[i]
		if o.ExecutionTarget == "" {
			switch {
			case o.UseLambda != nil && *o.UseLambda:
				o.ExecutionTarget = TargetLambda
			case o.UseLambda != nil:
				o.ExecutionTarget = TargetCodeBuild
			case ssm:
				o.ExecutionTarget = TargetSSM
			default:
				o.ExecutionTarget = DefaultTarget
			}
		}
		if o.ExecutionTarget == TargetSSM && o.SSMDocumentName == "" {
			o.SSMDocumentName = DefaultSSMDocumentName
		}
		if o.GitFolder != "" && o.CommitHash == "" {
			o.CommitHash = j.CommitHash
		}
		if o.OrderName == "" {
			base := derivedOrderName(*o, i+1)
			name := base
			for n := 2; ; n++ {
				if !names[name] && (o.QueueID != "" || !queueIDs[name]) {
					break
				}
				name = base + "-" + strconv.Itoa(n)
			}
			o.OrderName = name
			names[name] = true
		}
		if o.QueueID == "" {
			o.QueueID = o.OrderName
		}
	}
}

// maxDerivedName bounds a name derived from a command, which can be long.
const maxDerivedName = 40

// derivedOrderName names an order that has no order_name: after the last segment of its
// git_folder, else its first command, else its position (n is 1-based).
func derivedOrderName(o Order, n int) string {
	if s := slug(path.Base(strings.TrimRight(o.GitFolder, "/"))); o.GitFolder != "" && s != "" {
		return s
	}
	if len(o.Cmds) > 0 {
		if s := slug(o.Cmds[0]); s != "" {
			return s
		}
	}
	return "order-" + strconv.Itoa(n)
}

// slug lower-cases s and turns every run of other characters than [a-z0-9] into one '-',
// trimmed at both ends, in at most maxDerivedName bytes.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	out := b.String()
	if len(out) > maxDerivedName {
		out = strings.TrimRight(out[:maxDerivedName], "-")
	}
	return out
}

// ReservedEnvVars are set by iac-ci in every order's environment; a job cannot set them.
var ReservedEnvVars = []string{"CALLBACK_URL", "TRACE_ID", "RUN_ID", "ORDER_ID", "ORDER_NUM", "FLOW_ID"}

var gitRepoPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$`)

// Validate checks a normalized job as a whole and returns nil or a *ValidationError with every
// problem found. It does no I/O: whether a secret or a git folder exists is learnt at intake.
// when_modified is left alone; it means something only in a repository's config, whose reader
// strips it.
func Validate(j Job) error {
	var v validator
	if len(j.Orders) == 0 {
		v.add("orders", "no orders: add at least one order with cmds and a timeout")
	}
	v.cycles(j.Orders)
	names := map[string]int{}
	for i, o := range j.Orders {
		if _, dup := names[o.OrderName]; !dup {
			names[o.OrderName] = i
		}
	}
	index := queueIndex(j.Orders)
	for i, o := range j.Orders {
		v.order(j, i, o, names, index)
	}

	v.nulBytes("", reflect.ValueOf(j), "orders")
	switch {
	case j.Username == "":
		v.add("username", "required: say who asks for this run (it becomes part of flow_id)")
	case strings.Contains(j.Username, ":"):
		v.add("username", fmt.Sprintf("%q contains ':', which separates the parts of flow_id: remove it", j.Username))
	}
	v.gitRepo("git_repo", j.GitRepo)
	v.issueNumber("pr_number", "pull request", j.PRNumber)
	v.issueNumber("issue_number", "issue", j.IssueNumber)
	v.secretLocation("git_token_location", j.GitTokenLocation)
	v.secretLocation("git_ssh_key_location", j.GitSSHKeyLocation)
	v.revision("commit_hash", j.CommitHash)
	switch {
	case j.PresignExpiry <= 0:
		v.add("presign_expiry", fmt.Sprintf("%d is not a positive number of seconds: leave it out for a default that fits the longest timeout", j.PresignExpiry))
	case j.PresignExpiry > MaxPresignExpiry:
		v.add("presign_expiry", fmt.Sprintf("%d exceeds %d (7 days), the longest an S3 presigned URL is valid: lower it, or leave it out for a default that fits the longest timeout", j.PresignExpiry, MaxPresignExpiry))
	default:
		for i, o := range j.Orders {
			// An order whose timeout is refused has its own problem; the URL's is not worth
			// another.
			if !timeoutWithinLimit(o) {
				continue
			}
			if need := o.Timeout + PresignMargin; j.PresignExpiry < need {
				v.add("presign_expiry", fmt.Sprintf("%d is too short for orders[%d] (%q), whose timeout is %d: its result URL must outlive it by %d s, so raise presign_expiry to at least %d, lower that timeout, or leave presign_expiry out",
					j.PresignExpiry, i, o.OrderName, o.Timeout, PresignMargin, need))
			}
		}
	}
	switch {
	case j.JobTimeout <= 0:
		v.add("job_timeout", fmt.Sprintf("%d is not a positive number of seconds: leave it out for the default of %d", j.JobTimeout, DefaultJobTimeout))
	case j.JobTimeout > MaxJobTimeout:
		v.add("job_timeout", fmt.Sprintf("%d exceeds the limit of %d seconds (7 days): give the run's deadline in seconds, at most %d", j.JobTimeout, MaxJobTimeout, MaxJobTimeout))
	}
	return v.err()
}

// timeoutWithinLimit reports whether an order's timeout is one Validate accepts.
func timeoutWithinLimit(o Order) bool {
	limit := o.ExecutionTarget.TimeoutLimit()
	if limit == 0 {
		limit = MaxOrderTimeout
	}
	return o.Timeout > 0 && o.Timeout <= limit
}

func (v *validator) issueNumber(p, noun string, n int) {
	switch {
	case n < 0:
		v.add(p, fmt.Sprintf("%d is negative: give the %s's number or leave it out", n, noun))
	case n > MaxIssueNumber:
		v.add(p, fmt.Sprintf("%d is past the largest %s number, %d: give the %s's number or leave it out", n, noun, MaxIssueNumber, noun))
	}
}

// nulMessage is the problem of a string holding a NUL byte: exec takes C strings, so no
// command, argument or variable can hold one, and no AWS API takes one either.
const nulMessage = `contains a NUL byte (\x00), which no command, variable or name can hold: remove it`

// nulBytes adds a problem for every string under rv that holds a NUL byte, by the wire names of
// the job contract. skip names a field of a struct that is checked on its own (a job's orders).
func (v *validator) nulBytes(p string, rv reflect.Value, skip string) {
	switch rv.Kind() {
	case reflect.String:
		if strings.IndexByte(rv.String(), 0) >= 0 {
			v.add(p, nulMessage)
		}
	case reflect.Pointer:
		if !rv.IsNil() {
			v.nulBytes(p, rv.Elem(), "")
		}
	case reflect.Slice:
		for i := range rv.Len() {
			v.nulBytes(fmt.Sprintf("%s[%d]", p, i), rv.Index(i), "")
		}
	case reflect.Map:
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			kp := mapPath(p, k.String())
			if strings.IndexByte(k.String(), 0) >= 0 {
				v.add(kp, "the name "+nulMessage)
			}
			v.nulBytes(kp, rv.MapIndex(k), "")
		}
	case reflect.Struct:
		for _, f := range wireFields(rv.Type()) {
			if f.name != skip {
				v.nulBytes(joinPath(p, f.name), rv.Field(f.index), "")
			}
		}
	}
}

type wireField struct {
	name  string
	index int
}

// wireFields lists the wire names of t's fields in the order they are declared.
func wireFields(t reflect.Type) []wireField {
	byName := jsonFields(t)
	fields := make([]wireField, 0, len(byName))
	for name, i := range byName {
		fields = append(fields, wireField{name, i})
	}
	slices.SortFunc(fields, func(a, b wireField) int { return a.index - b.index })
	return fields
}

// revisionPattern is what a commit hash or a branch or tag name is written with. It starts with
// neither '-' (git would read an option) nor '.' or '/'.
var revisionPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]*$`)

// maxRevision bounds a commit_hash: a SHA-256 commit hash is 64 hex digits, and git refuses ref
// names past 255 bytes on most file systems.
const maxRevision = 255

// revision checks a commit_hash: a commit hash or a branch or tag name git could fetch.
func (v *validator) revision(p, rev string) {
	if rev == "" {
		return
	}
	const fix = "give a commit hash (40 hex digits) or a branch or tag name"
	shown := strconv.Quote(rev)
	if len(rev) > 64 {
		shown = "the value"
	}
	switch {
	case strings.HasPrefix(rev, "-"):
		v.add(p, fmt.Sprintf("%s starts with '-', which git would read as an option: %s", shown, fix))
		return
	case len(rev) > maxRevision:
		v.add(p, fmt.Sprintf("%d bytes long, over %d: %s", len(rev), maxRevision, fix))
		return
	case !revisionPattern.MatchString(rev):
		v.add(p, fmt.Sprintf("%s is not a git revision (letters, digits, '.', '_', '/' and '-', starting with a letter, digit or '_'): %s", shown, fix))
		return
	}
	for _, part := range strings.Split(rev, "/") {
		if part == "" || strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") || strings.HasSuffix(part, ".") {
			v.add(p, fmt.Sprintf("%s is not a git revision (git refuses an empty part, a part starting or ending with '.', and '.lock' at a part's end): %s", shown, fix))
			return
		}
	}
	if strings.Contains(rev, "..") {
		v.add(p, fmt.Sprintf("%s contains '..', a range of commits and not one: %s", shown, fix))
	}
}

// graphProblems is the part of Validate that Plan needs: the orders can be told apart by
// queue_id and their dependencies form a graph that can run to the end.
func graphProblems(orders []Order) []Problem {
	var v validator
	if len(orders) == 0 {
		v.add("orders", "no orders: add at least one order with cmds and a timeout")
	}
	v.cycles(orders)
	index := queueIndex(orders)
	for i, o := range orders {
		p := fmt.Sprintf("orders[%d]", i)
		v.queueID(p, i, o, index)
		v.dependencies(p, o, index)
	}
	return v.problems
}

type validator struct{ problems []Problem }

func (v *validator) add(path, message string) {
	v.problems = append(v.problems, Problem{Path: path, Message: message})
}

func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

func (v *validator) cycles(orders []Order) {
	for _, c := range dependencyCycles(orders) {
		v.add("orders", fmt.Sprintf("dependency cycle %s (each depends on the next): none of them can start; remove one of these dependencies", strings.Join(c, " -> ")))
	}
}

// order checks one order, in the order of its fields.
func (v *validator) order(j Job, i int, o Order, names, queueIDs map[string]int) {
	p := fmt.Sprintf("orders[%d]", i)
	if len(o.Cmds) == 0 {
		v.add(p+".cmds", "no commands: list at least one shell command")
	}
	for k, c := range o.Cmds {
		if strings.TrimSpace(c) == "" {
			v.add(fmt.Sprintf("%s.cmds[%d]", p, k), "empty command: write the command or remove the entry")
		}
	}
	v.timeout(p, o)
	switch {
	case o.OrderName == "":
		v.add(p+".order_name", "empty: name the order")
	case names[o.OrderName] != i:
		v.add(p+".order_name", fmt.Sprintf("%q is also the name of orders[%d]: give each order a unique order_name", o.OrderName, names[o.OrderName]))
	}
	v.queueID(p, i, o, queueIDs)
	v.dependencies(p, o, queueIDs)
	v.target(p, o)
	v.codeSource(p, j, o)
	v.revision(p+".commit_hash", o.CommitHash)
	v.environment(p, o)
	v.sopsKey(p+".sops_key", o.SopsKey)
	v.ssmTargets(p, o)
	v.nulBytes(p, reflect.ValueOf(o), "")
}

// NativeAgeRecipient reports whether r is an X25519 (age1...) or hybrid post-quantum
// (age1pq1...) age recipient. It is the one check of a recipient before sealing for it: anything
// else sops would also take is refused, since a plugin recipient ("age1name1...") makes sops run
// the program age-plugin-name from PATH, and a recipient can come from a caller's job (sops_key).
func NativeAgeRecipient(r string) bool {
	if _, err := age.ParseX25519Recipient(r); err == nil {
		return true
	}
	_, err := age.ParseHybridRecipient(r)
	return err == nil
}

// sopsKey checks that a sops_key is an age recipient the sealer takes: X25519 (age1...) or the
// hybrid post-quantum kind (age1pq1...). Plugin recipients are refused, since sops would run a
// program named after them. The key is never repeated: it may be a private one pasted by mistake.
func (v *validator) sopsKey(p, key string) {
	if key == "" {
		return
	}
	if NativeAgeRecipient(key) {
		return
	}
	switch {
	case strings.HasPrefix(strings.ToUpper(key), "AGE-SECRET-KEY-"):
		v.add(p, "this is an age private key, not a recipient: give its public key (age1..., from age-keygen -y) and treat the private key as exposed")
	case strings.HasPrefix(key, "age1"):
		v.add(p, "not a valid age recipient (a character is wrong or missing, or it is a plugin recipient): copy the whole public key age-keygen -y prints, or leave sops_key out to seal with a per-run key")
	default:
		v.add(p, "not an age recipient: give an age public key (age1...), or leave sops_key out to seal with a per-run key")
	}
}

func (v *validator) timeout(p string, o Order) {
	limit := o.ExecutionTarget.TimeoutLimit()
	switch {
	case o.Timeout == 0 && limit > 0:
		v.add(p+".timeout", fmt.Sprintf("required: set timeout to the seconds the order may run (at most %d on %s)", limit, o.ExecutionTarget))
	case o.Timeout == 0:
		v.add(p+".timeout", "required: set timeout to the seconds the order may run")
	case o.Timeout < 0 && limit > 0:
		v.add(p+".timeout", fmt.Sprintf("%d is not a positive number of seconds: set timeout (at most %d on %s)", o.Timeout, limit, o.ExecutionTarget))
	case o.Timeout < 0:
		v.add(p+".timeout", fmt.Sprintf("%d is not a positive number of seconds: set timeout", o.Timeout))
	case limit == 0 && o.Timeout > MaxOrderTimeout:
		v.add(p+".timeout", fmt.Sprintf("%d exceeds the longest limit of any target, %d (ssm)", o.Timeout, MaxOrderTimeout))
	case limit > 0 && o.Timeout > limit:
		hint := map[Target]string{
			TargetLambda:    "use codebuild or ssm for longer runs",
			TargetCodeBuild: "use ssm for longer runs",
			TargetSSM:       "split the work into several orders",
		}[o.ExecutionTarget]
		v.add(p+".timeout", fmt.Sprintf("%d exceeds the %s limit of %d (%s)", o.Timeout, o.ExecutionTarget, limit, hint))
	}
}

func (v *validator) queueID(p string, i int, o Order, index map[string]int) {
	switch {
	case o.QueueID == "":
		v.add(p+".queue_id", "empty: give the order a queue_id, or an order_name for it to default to")
	case index[o.QueueID] != i:
		v.add(p+".queue_id", fmt.Sprintf("%q is also the queue_id of orders[%d]: give each order a unique queue_id (it defaults to order_name)", o.QueueID, index[o.QueueID]))
	}
}

func (v *validator) dependencies(p string, o Order, index map[string]int) {
	seen := map[string]bool{}
	for k, dep := range o.Dependencies {
		dp := fmt.Sprintf("%s.dependencies[%d]", p, k)
		_, known := index[dep]
		switch {
		case dep == o.QueueID:
			v.add(dp, fmt.Sprintf("the order depends on itself: remove %q", dep))
		case seen[dep]:
			v.add(dp, fmt.Sprintf("%q is listed twice: remove one", dep))
		case !known:
			msg := fmt.Sprintf("no order has queue_id %q", dep)
			// The ids are listed only here: listing them for every order made validating a
			// job of n orders take n² steps.
			ids := make([]string, 0, len(index))
			for id := range index {
				ids = append(ids, id)
			}
			if s := closest(dep, ids); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			v.add(dp, msg+": name another order's queue_id (it defaults to its order_name)")
		}
		seen[dep] = true
	}
}

func (v *validator) target(p string, o Order) {
	switch {
	case o.ExecutionTarget == "":
		v.add(p+".execution_target", "empty: use lambda, codebuild or ssm")
	case !o.ExecutionTarget.Valid():
		v.add(p+".execution_target", fmt.Sprintf("unknown target %q: use lambda, codebuild or ssm", o.ExecutionTarget))
	}
	if o.UseLambda != nil && *o.UseLambda != (o.ExecutionTarget == TargetLambda) {
		v.add(p+".use_lambda", fmt.Sprintf("%t disagrees with execution_target %q: remove use_lambda, the old spelling, and keep execution_target", *o.UseLambda, o.ExecutionTarget))
	}
}

func (v *validator) codeSource(p string, j Job, o Order) {
	var sources []string
	for _, s := range []struct{ name, value string }{
		{"git_folder", o.GitFolder}, {"s3_location", o.S3Location}, {"local_path", o.LocalPath},
	} {
		if s.value != "" {
			sources = append(sources, s.name)
		}
	}
	if len(sources) > 1 {
		v.add(p, fmt.Sprintf("more than one code source (%s): keep only one", strings.Join(sources, ", ")))
	}
	v.gitRepo(p+".git_repo", o.GitRepo)
	if o.GitFolder != "" {
		if o.GitRepo == "" && j.GitRepo == "" {
			v.add(p+".git_folder", "no git_repo to take it from: set git_repo (owner/name) on the order or the job")
		}
		if hasDotDot(o.GitFolder) {
			v.add(p+".git_folder", "contains '..': name a folder inside the repository")
		}
	}
	if o.S3Location != "" {
		if _, reason := parseS3Location(o.S3Location); reason != "" {
			v.add(p+".s3_location", reason)
		}
	}
	if o.LocalPath != "" {
		if strings.HasPrefix(o.LocalPath, "/") || strings.HasPrefix(o.LocalPath, `\`) || (len(o.LocalPath) > 1 && o.LocalPath[1] == ':') {
			v.add(p+".local_path", "is absolute: give a path relative to the job file's folder")
		}
		if hasDotDot(o.LocalPath) {
			v.add(p+".local_path", "contains '..': give a folder inside the job file's folder")
		}
	}
}

func hasDotDot(p string) bool {
	return slices.Contains(strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }), "..")
}

// environment checks env_vars and the secrets that become variables beside them. A secret and a
// variable of the same name would leave it to chance which one an order sees.
func (v *validator) environment(p string, o Order) {
	owner := map[string]string{} // variable name → what sets it
	for _, name := range slices.Sorted(maps.Keys(o.EnvVars)) {
		ep := mapPath(p+".env_vars", name)
		switch {
		case !envNamePattern.MatchString(name):
			v.add(ep, "not a valid variable name: use letters, digits and _, not starting with a digit")
		case slices.Contains(ReservedEnvVars, name):
			v.add(ep, fmt.Sprintf("%s is set by iac-ci: choose another name", name))
		}
		owner[name] = ep
	}
	secret := func(sp, ref, noun string) {
		name := SecretVarName(ref)
		switch {
		case name == "":
			v.add(sp, fmt.Sprintf("%q ends with a separator: name the %s itself", ref, noun))
			return
		case !envNamePattern.MatchString(name):
			v.add(sp, fmt.Sprintf("%q would become variable %q, not a valid name: rename the %s to letters, digits, '-', '.' and _", ref, name, noun))
			return
		case slices.Contains(ReservedEnvVars, name):
			v.add(sp, fmt.Sprintf("%q would become variable %s, which iac-ci sets: rename the %s", ref, name, noun))
			return
		}
		if other, taken := owner[name]; taken {
			v.add(sp, fmt.Sprintf("%q would become variable %s, as %s already does: remove one or rename the %s", ref, name, other, noun))
			return
		}
		owner[name] = sp
	}
	for k, sp := range o.SSMPaths {
		sp2 := fmt.Sprintf("%s.ssm_paths[%d]", p, k)
		if !strings.HasPrefix(sp, "/") {
			v.add(sp2, fmt.Sprintf("%q is not a full parameter path: start it with '/'", sp))
			continue
		}
		secret(sp2, sp, "parameter")
	}
	for k, name := range o.SecretManagerPaths {
		sp := fmt.Sprintf("%s.secret_manager_paths[%d]", p, k)
		if strings.TrimSpace(name) == "" {
			v.add(sp, "empty: give the secret's name or ARN, or remove the entry")
			continue
		}
		secret(sp, name, "secret")
	}
}

func (v *validator) ssmTargets(p string, o Order) {
	t := o.SSMTargets
	if o.ExecutionTarget != TargetSSM {
		if t != nil {
			v.add(p+".ssm_targets", fmt.Sprintf("only ssm orders run on instances: remove ssm_targets or set execution_target to ssm (it is %q)", o.ExecutionTarget))
		}
		return
	}
	const forms = `give {"instance_ids": ["i-..."]} or {"tags": {"key": "value"}}`
	switch {
	case t == nil || len(t.InstanceIDs) == 0 && len(t.Tags) == 0:
		v.add(p+".ssm_targets", "required for ssm orders: "+forms)
		return
	case len(t.InstanceIDs) > 0 && len(t.Tags) > 0:
		v.add(p+".ssm_targets", "both instance_ids and tags: "+forms+", not both")
		return
	}
	if len(t.InstanceIDs) > maxInstanceIDs {
		v.add(p+".ssm_targets.instance_ids", fmt.Sprintf("%d instances, over the %d one SSM command takes: split the order, or target the instances by tags", len(t.InstanceIDs), maxInstanceIDs))
	}
	for k, id := range t.InstanceIDs {
		ip := fmt.Sprintf("%s.ssm_targets.instance_ids[%d]", p, k)
		switch {
		case strings.TrimSpace(id) == "":
			v.add(ip, "empty: give an instance id or remove the entry")
		case !instanceIDPattern.MatchString(id):
			shown := strconv.Quote(id)
			if len(id) > 64 {
				shown = "the value"
			}
			v.add(ip, fmt.Sprintf("%s is not an instance id: give an EC2 instance id (i- and 8 or 17 hex digits, like i-0123456789abcdef0) or a managed node id (mi- and 17 hex digits)", shown))
		}
	}
	if len(t.Tags) > maxTargetTags {
		v.add(p+".ssm_targets.tags", fmt.Sprintf("%d tags, over the %d one SSM command takes: keep at most %d (an instance must match them all)", len(t.Tags), maxTargetTags, maxTargetTags))
	}
	for _, key := range slices.Sorted(maps.Keys(t.Tags)) {
		tp := mapPath(p+".ssm_targets.tags", key)
		switch {
		case strings.TrimSpace(key) == "":
			v.add(p+".ssm_targets.tags", "a tag has an empty key: name the tag")
			continue
		case utf8.RuneCountInString(key) > maxTagKey:
			v.add(tp, fmt.Sprintf("the tag key is %d characters, over the %d EC2 allows: name the tag as it is on the instances", utf8.RuneCountInString(key), maxTagKey))
		case !tagKeyPattern.MatchString(key):
			v.add(tp, "the tag key has a character SSM refuses in a target: use letters, digits, spaces and _ . : / = - @")
		}
		switch value := t.Tags[key]; {
		case value == "":
			v.add(tp, "empty value: SSM matches a tag by a value of 1 to 256 characters; give the tag's value")
		case utf8.RuneCountInString(value) > maxTagValue:
			v.add(tp, fmt.Sprintf("the value is %d characters, over the %d EC2 allows: give the tag's value", utf8.RuneCountInString(value), maxTagValue))
		}
	}
}

// Limits of SSM's SendCommand on whom a command goes to, and of EC2's tags.
const (
	maxInstanceIDs = 50
	maxTargetTags  = 5
	maxTagKey      = 128
	maxTagValue    = 256
)

var (
	// instanceIDPattern is an EC2 instance id (8 or 17 hex digits) or an SSM managed node id.
	instanceIDPattern = regexp.MustCompile(`^(i-([0-9a-f]{8}|[0-9a-f]{17})|mi-[0-9a-f]{17})$`)
	// tagKeyPattern is what SSM takes in a target's key (tag:<key>).
	tagKeyPattern = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=@-]+$`)
)

func (v *validator) gitRepo(p, repo string) {
	if repo == "" || gitRepoPattern.MatchString(repo) && !strings.HasSuffix(repo, "/.") && !strings.HasSuffix(repo, "/..") {
		return
	}
	msg := fmt.Sprintf("%q is not of the form owner/name", repo)
	// Callers often paste a clone URL; say what it should have been.
	short := repo
	for _, prefix := range []string{"https://github.com/", "http://github.com/", "git@github.com:", "github.com/"} {
		short = strings.TrimPrefix(short, prefix)
	}
	short = strings.TrimSuffix(strings.TrimSuffix(short, "/"), ".git")
	if short != repo && gitRepoPattern.MatchString(short) {
		v.add(p, fmt.Sprintf("%s: write %q", msg, short))
		return
	}
	v.add(p, msg+": write it like octo-org/infra")
}

func (v *validator) secretLocation(p, loc string) {
	if loc == "" {
		return
	}
	if _, reason := parseSecretLocation(loc); reason != "" {
		v.add(p, reason)
	}
}
