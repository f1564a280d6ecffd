package github

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/iac-ci/iac-ci/domain"
)

// ConfigPath is where a repository keeps its iac-ci configuration.
const ConfigPath = ".iac-ci.yml"

// repoConfig is a repository's .iac-ci.yml: the orders a pull request may run, each selected by
// the files it changes (when_modified), the job fields a repository may choose, and two switches
// that only the repository can turn on.
type repoConfig struct {
	AllowForks bool // run pull requests from forks (without secrets)
	DraftPRs   bool // run draft pull requests
	Job        domain.Job
	// Read is set when the file was read as a mapping of fields: Job then holds every field
	// that decoded, worth validating even beside problems, so that a typo hides no cycle.
	Read bool
}

// configJobFields are the job fields a config may set; the others (git_repo, pr_number,
// commit_hash, ...) come from the pull request.
var configJobFields = []string{"username", "orders", "job_timeout", "presign_expiry", "flow_label"}

// parseConfig reads a config with the strictness of domain.DecodeJob, whose decoder it reuses
// for everything but the two switches, and returns every problem found, each with its path.
func parseConfig(text []byte) (repoConfig, []domain.Problem) {
	var cfg repoConfig
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		return cfg, []domain.Problem{{Message: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return cfg, []domain.Problem{{Message: "the file is empty: list the orders to run under orders"}}
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return cfg, []domain.Problem{{Message: "want a mapping of fields (allow_forks, draft_prs, orders, ...) at the top"}}
	}

	var problems []domain.Problem
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} // the top level without the switches
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		var dst *bool
		switch k.Value {
		case "allow_forks":
			dst = &cfg.AllowForks
		case "draft_prs":
			dst = &cfg.DraftPRs
		case "git_repo", "pr_number", "issue_number", "commit_hash", "pr_comment_search_tag",
			"git_token_location", "git_ssh_key_location":
			problems = append(problems, domain.Problem{Path: k.Value, Message: fmt.Sprintf(
				"iac-ci sets this from the pull request: remove it (a config may set %s)", strings.Join(configJobFields, ", "))})
			continue
		default:
			rest.Content = append(rest.Content, k, v)
			continue
		}
		if seen[k.Value] {
			problems = append(problems, domain.Problem{Path: k.Value, Message: "given twice: keep one"})
			continue
		}
		seen[k.Value] = true
		if err := v.Decode(dst); err != nil || v.ShortTag() != "!!bool" {
			problems = append(problems, domain.Problem{Path: k.Value, Message: "want true or false"})
		}
	}

	body, err := yaml.Marshal(rest)
	if err != nil {
		// Only an alias whose anchor sat under a switch gets here.
		return cfg, append(problems, domain.Problem{Message: "cannot be read without allow_forks and draft_prs (an alias refers into them?): " + err.Error()})
	}
	job, _, err := domain.DecodeJob(body)
	var invalid *domain.ValidationError
	cfg.Read = err == nil || errors.As(err, &invalid) && invalid.Partial
	switch {
	case errors.As(err, &invalid):
		problems = append(problems, invalid.Problems...)
	case err != nil:
		problems = append(problems, domain.Problem{Message: err.Error()})
	}
	for i, o := range job.Orders {
		for k, glob := range o.WhenModified {
			if msg := checkGlob(glob); msg != "" {
				problems = append(problems, domain.Problem{Path: fmt.Sprintf("orders[%d].when_modified[%d]", i, k), Message: msg})
			}
		}
	}
	cfg.Job = job
	return cfg, problems
}

// selectOrders returns the indexes of the orders to run for a change of files: those with no
// when_modified, those with a glob matching a changed file, and every order these depend on,
// transitively. The orders must be normalized (queue_id set).
func selectOrders(orders []domain.Order, changed []string) []int {
	byQueueID := map[string]int{}
	for i, o := range orders {
		byQueueID[o.QueueID] = i
	}
	picked := make([]bool, len(orders))
	var pick func(i int)
	pick = func(i int) {
		if picked[i] {
			return
		}
		picked[i] = true
		for _, dep := range orders[i].Dependencies {
			if j, ok := byQueueID[dep]; ok {
				pick(j)
			}
		}
	}
	for i, o := range orders {
		if len(o.WhenModified) == 0 || slices.ContainsFunc(changed, func(file string) bool { return matchesAny(o.WhenModified, file) }) {
			pick(i)
		}
	}
	var out []int
	for i, p := range picked {
		if p {
			out = append(out, i)
		}
	}
	return out
}

func matchesAny(globs []string, file string) bool {
	return slices.ContainsFunc(globs, func(g string) bool { return matchGlob(g, file) })
}

// matchGlob matches a path of the repository against a when_modified glob. Globs are matched
// against the whole path from the repository root, segment by segment with path.Match, where
// a "**" segment matches any number of segments (none included), and a glob ending in "/"
// matches everything under that folder.
func matchGlob(glob, file string) bool {
	return matchSegments(globSegments(glob), strings.Split(strings.TrimPrefix(file, "/"), "/"))
}

func globSegments(glob string) []string {
	glob = strings.TrimPrefix(strings.TrimPrefix(glob, "./"), "/")
	if strings.HasSuffix(glob, "/") {
		glob += "**"
	}
	return strings.Split(glob, "/")
}

func matchSegments(glob, file []string) bool {
	for len(glob) > 0 {
		if glob[0] == "**" {
			for len(glob) > 1 && glob[1] == "**" {
				glob = glob[1:]
			}
			for skip := 0; skip <= len(file); skip++ {
				if matchSegments(glob[1:], file[skip:]) {
					return true
				}
			}
			return false
		}
		if len(file) == 0 {
			return false
		}
		if ok, _ := path.Match(glob[0], file[0]); !ok {
			return false
		}
		glob, file = glob[1:], file[1:]
	}
	return len(file) == 0
}

// checkGlob says what is wrong with a when_modified glob, or "".
func checkGlob(glob string) string {
	if strings.TrimSpace(glob) == "" {
		return "empty: give a glob of changed files, such as modules/**/*.tf"
	}
	for _, seg := range globSegments(glob) {
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return fmt.Sprintf("%q: ** matches whole folders and must be a segment of its own, as in modules/**/*.tf", glob)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Sprintf("%q is not a valid glob (an unclosed [ or a trailing \\?)", glob)
		}
	}
	return ""
}
