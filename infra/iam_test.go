package infra_test

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/internal/awstest"
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

// iamMatch reports whether an IAM pattern (with * and ? wildcards) matches s.
func iamMatch(pattern, s string) bool {
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", "\x00"), strings.ReplaceAll(s, "/", "\x00"))
	return err == nil && ok
}

// denied reports whether p has a Deny statement for action on resource.
func denied(p policy, action, resource string) bool {
	for _, s := range p.Statement {
		if s.Effect != "Deny" {
			continue
		}
		for _, a := range s.Action {
			if !iamMatch(a, action) {
				continue
			}
			for _, r := range s.Resource {
				if iamMatch(r, resource) {
					return true
				}
			}
		}
	}
	return false
}

// orderRoleReaches lists what of iac-ci's the order role's own policy does not deny.
func orderRoleReaches(p policy, internalARN, runKeyARN string) []string {
	var out []string
	for _, c := range []struct{ action, resource string }{
		{"s3:GetObject", internalARN + "/exec/some-run/0001/exec.zip"},
		{"s3:GetObject", internalARN + "/requests/some-run.json"},
		{"s3:GetObject", internalARN + "/logs/some-run/0001/1.log"},
		{"s3:PutObject", internalARN + "/callbacks/some-run/0001/1/result.json"},
		{"ssm:GetParameter", runKeyARN},
	} {
		if !denied(p, c.action, c.resource) {
			out = append(out, c.action+" "+c.resource)
		}
	}
	return out
}

// The only role an order's commands are handed is the order role; whatever order_policy_arns
// allow, it may not read another run's bundle, request, log or key, nor forge a result: its own
// policy denies them, and the operator's policies are attached to it and to no role of iac-ci's.
func TestTheOrderRoleReachesNothingOfIacCi(t *testing.T) {
	t.Parallel()
	d := applied(t)
	policies := rolePolicies(t, d)
	order, ok := policies["aws_iam_role_policy.order"]
	if !ok {
		t.Fatalf("no inline policy of the order role among %d role policies", len(policies))
	}
	var internalARN string
	for _, r := range d.resources {
		if r.Type == "aws_s3_bucket" && r.Name == "internal" {
			internalARN = str(r.Values["arn"])
		}
	}
	if internalARN == "" {
		t.Fatal("no internal bucket in the applied state")
	}
	runKeyARN := "arn:aws:ssm:" + awstest.Region + ":123456789012:parameter/" + applyPrefix + "/run-keys/some-run"
	if reach := orderRoleReaches(order, internalARN, runKeyARN); len(reach) > 0 {
		t.Fatalf("the order role may:\n%s", strings.Join(reach, "\n"))
	}
	// The check sees a role that may: the order role without its denies.
	if reach := orderRoleReaches(policy{}, internalARN, runKeyARN); len(reach) != 5 {
		t.Fatalf("a role with no deny: the check found %v", reach)
	}
	for addr, r := range d.resources {
		if r.Type == "aws_iam_role_policy_attachment" && str(r.Values["role"]) != applyPrefix+"-order" {
			t.Errorf("%s attaches %s to %s: the operator's policies belong to the order role only", addr, str(r.Values["policy_arn"]), str(r.Values["role"]))
		}
	}
}
