package consumers_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/domain"
)

// pemKey is a made-up private key, shaped like a real one.
const pemKey = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDz1k0Qd4H2G9Tq3LxXjT3nqF0lYkz0f5f8u6vVw2bJ8wAAAJj0sW6b9LFu
mwAAAAtzc2gtZWQyNTUxOQAAACDz1k0Qd4H2G9Tq3LxXjT3nqF0lYkz0f5f8u6vVw2bJ8w
-----END OPENSSH PRIVATE KEY-----`

// special is a secret whose URL and JSON forms differ from it.
const special = `p@ss w/rd&x=1+2?<ok>"`

// The stored log and the log tail mask a multi-line secret line by line and every secret in
// base64, URL-encoded and JSON-escaped, as real tools print them: coreutils base64 (alone,
// inside a longer stream, and wrapped), and Python's json and urllib.
func TestExecuteMasksEveryFormOfASecret(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed to print secrets the way another language does: install it (apt-get install python3)")
	}
	env := map[string]string{"DB_PASSWORD": dbPassword, "PEM_KEY": pemKey, "SPECIAL": special}
	o := execute(t, setup{order: order{env: env, secretNames: []string{"DB_PASSWORD", "PEM_KEY", "SPECIAL"}, cmds: []string{
		"seq 1 1500", // longer than the tail: the log is stored whole and the tail is its end
		`printf '%s\n' "$PEM_KEY" | sed 's/^/        /'`,
		`printf 'b64=%s\n' "$(printf %s "$DB_PASSWORD" | base64)"`,
		`printf 'stream=%s\n' "$(printf 'xy%s!' "$DB_PASSWORD" | base64 -w0)"`,
		`printf %s "$PEM_KEY" | base64`,
		`python3 -c 'import os, json, urllib.parse as u; s = os.environ["SPECIAL"]; p = os.environ["PEM_KEY"]; print("json=" + json.dumps(s), "pemjson=" + json.dumps({"key": p}), "q=" + u.quote_plus(s), "path=" + u.quote(s, safe=""), sep="\n")'`,
		"echo done",
	}}})
	if o.res.Status != domain.OrderSucceeded {
		t.Fatalf("status %s (%s), log:\n%s", o.res.Status, o.res.Reason, o.log)
	}
	if o.res.LogKey == "" || len(o.stored) == 0 {
		t.Fatalf("the log was not stored")
	}
	// What must not show, each form made by the standard library rather than the masker.
	jsonOf := func(v string) string {
		b, _ := json.Marshal(v)
		return strings.Trim(string(b), `"`)
	}
	leaks := map[string]string{
		"DB_PASSWORD base64":   base64.StdEncoding.EncodeToString([]byte(dbPassword))[:24],
		"DB_PASSWORD stream":   base64.StdEncoding.EncodeToString([]byte("xy" + dbPassword))[4:28],
		"SPECIAL query-escape": url.QueryEscape(special),
		"SPECIAL escaped":      strings.ReplaceAll(url.QueryEscape(special), "+", "%20"),
		"SPECIAL JSON":         `p@ss w/rd&x=1+2?<ok>\"`,
		"PEM_KEY JSON":         jsonOf(pemKey)[:60],
		"PEM_KEY base64 line":  base64.StdEncoding.EncodeToString([]byte(pemKey))[:76],
	}
	for i, line := range strings.Split(pemKey, "\n") {
		leaks["PEM_KEY line "+string(rune('0'+i))] = line
	}
	for where, text := range map[string]string{"stored log": string(o.stored), "log tail": o.res.LogTail} {
		for what, leak := range leaks {
			if strings.Contains(text, leak) {
				t.Errorf("%s shows %s (%q):\n%s", where, what, leak, text[max(0, len(text)-2500):])
			}
		}
		for _, want := range []string{"        ***\n", "b64=***", "stream=", "json=\"***\"", "q=***", "path=***", "pemjson={\"key\": \"***\"}", "done"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", where, want, text[max(0, len(text)-2500):])
			}
		}
	}
	checkNoSecrets(t, o)
}
