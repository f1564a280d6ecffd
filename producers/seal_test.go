package producers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/sealing"
)

// The orders of a run are sealed with one data key, wrapped once for the run key; an order that
// names its own sops_key gets a data key of its own, so its holder cannot open the others.
func TestIntakeSopsKeyOrderHasItsOwnDataKey(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	caller, err := sealing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	job := fmt.Sprintf(`{"username": "tester", "orders": [
	  {"order_name": "plan", "timeout": 60, "cmds": ["echo plan"], "env_vars": {"WHO": "plan"}},
	  {"order_name": "lint", "timeout": 60, "cmds": ["echo lint"], "env_vars": {"WHO": "lint"}},
	  {"order_name": "mine", "timeout": 60, "cmds": ["echo mine"], "env_vars": {"WHO": "mine"}, "sops_key": %q}
	]}`, caller.Recipient)
	acc, msg := s.accept(t, job, false)
	if err := s.intake.Handle(t.Context(), msg); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	runKey := s.runKey(t, acc.RunID)
	stranger, err := sealing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	opener := sealing.NewOpener(8)
	wrapped := map[string]map[string]string{} // order name → recipient → wrapped data key
	for name, o := range s.orders(t, acc.RunID) {
		if o.Status != domain.OrderQueued {
			t.Fatalf("order %s: %s %q, want queued", name, o.Status, o.Reason)
		}
		_, sealed, err := bundle.Unpack(s.blob(t, blobs.ExecKey(acc.RunID, o.OrderNum)), t.TempDir(), bundle.DefaultLimits)
		if err != nil {
			t.Fatalf("order %s: Unpack: %v", name, err)
		}
		var doc struct {
			SOPS struct {
				Age []struct {
					Recipient string `json:"recipient"`
					Enc       string `json:"enc"`
				} `json:"age"`
			} `json:"sops"`
		}
		if err := json.Unmarshal(sealed, &doc); err != nil {
			t.Fatalf("order %s: sealed document: %v", name, err)
		}
		wrapped[name] = map[string]string{}
		for _, a := range doc.SOPS.Age {
			wrapped[name][a.Recipient] = a.Enc
		}
		for _, open := range []func([]byte, string) (map[string]string, error){sealing.Open, opener.Open} {
			env, err := open(sealed, runKey)
			if err != nil || env["WHO"] != name {
				t.Errorf("order %s: open with the run key: WHO=%q, %v", name, env["WHO"], err)
			}
			env, err = open(sealed, caller.Identity)
			if name == "mine" && (err != nil || env["WHO"] != name) {
				t.Errorf("order mine: open with its sops_key: WHO=%q, %v", env["WHO"], err)
			}
			if name != "mine" && !errors.Is(err, sealing.ErrWrongKey) {
				t.Errorf("order %s: open with another order's sops_key: got %v, want ErrWrongKey", name, err)
			}
			if _, err := open(sealed, stranger.Identity); !errors.Is(err, sealing.ErrWrongKey) {
				t.Errorf("order %s: open with a stranger's key: got %v, want ErrWrongKey", name, err)
			}
		}
	}
	if len(wrapped["plan"]) != 1 || len(wrapped["lint"]) != 1 || len(wrapped["mine"]) != 2 {
		t.Fatalf("recipients per order: plan %d, lint %d, mine %d; want 1, 1, 2",
			len(wrapped["plan"]), len(wrapped["lint"]), len(wrapped["mine"]))
	}
	var runRecipient string
	for r := range wrapped["plan"] {
		runRecipient = r
	}
	if _, ok := wrapped["mine"][caller.Recipient]; !ok {
		t.Errorf("order mine is not sealed for its sops_key")
	}
	if enc := wrapped["lint"][runRecipient]; enc == "" || enc != wrapped["plan"][runRecipient] {
		t.Errorf("orders plan and lint carry different wrapped keys: the run's orders should share one")
	}
	if enc := wrapped["mine"][runRecipient]; enc == "" || enc == wrapped["plan"][runRecipient] {
		t.Errorf("order mine shares the run's wrapped data key (or is not sealed for the run key)")
	}
}
