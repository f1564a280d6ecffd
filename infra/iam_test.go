package infra_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The roles' policies as Terraform wrote them (the applied state), read as IAM reads them.

type policy struct {
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                       `json:"Sid"`
	Effect    string                       `json:"Effect"`
	Action    stringList                   `json:"Action"`
	Resource  stringList                   `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition"`
}

// stringList is IAM's string-or-list.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = []string{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*l = many
	return err
}

// rolePolicies returns every inline role policy of the deployment by its address.
func rolePolicies(t *testing.T, d *deployed) map[string]policy {
	t.Helper()
	out := map[string]policy{}
	for addr, r := range d.resources {
		if r.Type != "aws_iam_role_policy" {
			continue
		}
		var p policy
		if err := json.Unmarshal([]byte(str(r.Values["policy"])), &p); err != nil {
			t.Fatalf("%s: policy: %v", addr, err)
		}
		out[addr] = p
	}
	if len(out) < 9 {
		t.Fatalf("role policies: got %d, want one per function, CodeBuild's and the scheduler's", len(out))
	}
	return out
}

// wildcards lists what a policy allows beyond named actions on named resources. An ARN that
// ends in a wildcard (objects under a prefix, a table's indexes) names its resources; a bare
// "*" names none, and only ecr:GetAuthorizationToken, which has no resource, may use it.
func wildcards(policies map[string]policy) []string {
	var out []string
	for addr, p := range policies {
		for _, s := range p.Statement {
			if s.Effect != "Allow" {
				continue
			}
			for _, a := range s.Action {
				if strings.Contains(a, "*") {
					out = append(out, addr+" "+s.Sid+": action "+a)
				}
			}
			if slices.Contains(s.Resource, "*") && !slices.Equal(s.Action, []string{"ecr:GetAuthorizationToken"}) {
				out = append(out, addr+" "+s.Sid+": resource * for "+strings.Join(s.Action, ", "))
			}
		}
	}
	return out
}

// untaggedSendCommand lists the statements that allow ssm:SendCommand on instances without the
// operator's tag as a condition.
func untaggedSendCommand(policies map[string]policy, tagKey, tagValue string) []string {
	var out []string
	for addr, p := range policies {
		for _, s := range p.Statement {
			if s.Effect != "Allow" || !slices.Contains(s.Action, "ssm:SendCommand") {
				continue
			}
			instances := slices.ContainsFunc(s.Resource, func(r string) bool {
				return strings.Contains(r, ":instance/") || strings.Contains(r, ":managed-instance/") || r == "*"
			})
			if instances && s.Condition["StringEquals"]["ssm:resourceTag/"+tagKey] != tagValue {
				out = append(out, addr+" "+s.Sid)
			}
		}
	}
	return out
}

func TestRolesGrantNoWildcards(t *testing.T) {
	t.Parallel()
	policies := rolePolicies(t, applied(t))
	if w := wildcards(policies); len(w) > 0 {
		t.Fatalf("wildcards granted:\n%s", strings.Join(w, "\n"))
	}
	// The check sees one: widen the webhook's queue statement to every queue.
	addr := `aws_iam_role_policy.function["webhook"]`
	p := policies[addr]
	p.Statement = append(slices.Clone(p.Statement), statement{Sid: "Widened", Effect: "Allow", Action: stringList{"sqs:SendMessage"}, Resource: stringList{"*"}},
		statement{Sid: "AnyS3", Effect: "Allow", Action: stringList{"s3:*"}, Resource: stringList{"arn:aws:s3:::b/*"}})
	if w := wildcards(map[string]policy{addr: p}); len(w) != 2 {
		t.Fatalf("a resource * and an action s3:*: the check found %v", w)
	}
}

func TestSendCommandReachesOnlyTaggedInstances(t *testing.T) {
	t.Parallel()
	policies := rolePolicies(t, applied(t))
	const key, value = "iac-ci:allowed", "true" // ssm_instance_tag's default
	if u := untaggedSendCommand(policies, key, value); len(u) > 0 {
		t.Fatalf("ssm:SendCommand to instances without the tag condition: %v", u)
	}
	launcher := `aws_iam_role_policy.function["launcher"]`
	p := policies[launcher]
	var found bool
	stripped := policy{}
	for _, s := range p.Statement {
		if slices.Contains(s.Action, "ssm:SendCommand") && s.Condition != nil {
			found = true
			s.Condition = nil
		}
		stripped.Statement = append(stripped.Statement, s)
	}
	if !found {
		t.Fatalf("the launcher's policy has no conditioned ssm:SendCommand: %+v", p)
	}
	if u := untaggedSendCommand(map[string]policy{launcher: stripped}, key, value); len(u) != 1 {
		t.Fatalf("without its condition, the check found %v", u)
	}
}
