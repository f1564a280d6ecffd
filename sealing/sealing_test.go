package sealing_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"filippo.io/age/plugin"
	"github.com/getsops/sops/v3/decrypt"

	"github.com/iac-ci/iac-ci/sealing"
)

func newKey(t testing.TB) sealing.Key {
	t.Helper()
	k, err := sealing.NewKey()
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	return k
}

func sampleEnv() map[string]string {
	return map[string]string{
		"DB_PASSWORD":    "hunter2-correct-horse",
		"API_TOKEN":      "tok_0123456789abcdef",
		"CALLBACK_URL":   "https://example.invalid/cb?sig=abc",
		"TRACE_ID":       "a1b2c3d4e5",
		"MULTILINE":      "line one\nline two\n",
		"UNICODE":        "pässwörd ✓",
		"EMPTY":          "",
		"X_unencrypted":  "still-secret-value",
		"QUOTES":         `he said "hi" \ bye`,
		"LOOKS_LIKE_ENC": "ENC[AES256_GCM,data:xx,iv:yy,tag:zz,type:str]",
	}
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	a, b := newKey(t), newKey(t)
	if !strings.HasPrefix(a.Identity, "AGE-SECRET-KEY-1") {
		t.Errorf("identity prefix: got %.16q, want AGE-SECRET-KEY-1", a.Identity)
	}
	if !strings.HasPrefix(a.Recipient, "age1") {
		t.Errorf("recipient: got %q, want age1...", a.Recipient)
	}
	if a.Identity == b.Identity || a.Recipient == b.Recipient {
		t.Errorf("two NewKey calls returned the same key")
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	env := sampleEnv()
	doc, err := sealing.Seal(env, k.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	got, err := sealing.Open(doc, k.Identity)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !maps.Equal(got, env) {
		t.Fatalf("Open: got %d variables %v, want %v", len(got), keysOf(got), keysOf(env))
	}
}

func TestRoundTripEmpty(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	doc, err := sealing.Seal(nil, k.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	got, err := sealing.Open(doc, k.Identity)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("Open: got %d variables, want 0", len(got))
	}
}

func TestWrongIdentityFails(t *testing.T) {
	t.Parallel()
	k, other := newKey(t), newKey(t)
	doc, err := sealing.Seal(sampleEnv(), k.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	got, err := sealing.Open(doc, other.Identity)
	if !errors.Is(err, sealing.ErrWrongKey) {
		t.Fatalf("Open with another identity: got err %v, want ErrWrongKey", err)
	}
	if got != nil {
		t.Fatalf("Open with another identity returned %d variables", len(got))
	}
	assertNoSecrets(t, err.Error(), sampleEnv(), k.Identity, other.Identity)
}

func TestTwoRecipientsBothOpen(t *testing.T) {
	t.Parallel()
	run, caller := newKey(t), newKey(t)
	env := sampleEnv()
	doc, err := sealing.Seal(env, run.Recipient, caller.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	for name, k := range map[string]sealing.Key{"run key": run, "caller's sops_key": caller} {
		got, err := sealing.Open(doc, k.Identity)
		if err != nil {
			t.Fatalf("Open with %s: %v", name, err)
		}
		if !maps.Equal(got, env) {
			t.Errorf("Open with %s: got %v, want %v", name, keysOf(got), keysOf(env))
		}
	}
}

// The document is what `sops -d` reads: sops's stable decrypt API, which finds identities the
// way the command does (SOPS_AGE_KEY), must open it to the same variables.
func TestOpensWithSOPSDecrypt(t *testing.T) {
	run, caller := newKey(t), newKey(t)
	env := sampleEnv()
	doc, err := sealing.Seal(env, run.Recipient, caller.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	for name, k := range map[string]sealing.Key{"run key": run, "caller's sops_key": caller} {
		t.Setenv("SOPS_AGE_KEY", k.Identity)
		plain, err := decrypt.Data(doc, "json")
		if err != nil {
			t.Fatalf("sops decrypt with %s: %v", name, err)
		}
		var got map[string]string
		if err := json.Unmarshal(plain, &got); err != nil {
			t.Fatalf("sops decrypt output is not a JSON object of strings: %v", err)
		}
		if !maps.Equal(got, env) {
			t.Errorf("sops decrypt with %s: got %v, want %v", name, keysOf(got), keysOf(env))
		}
	}
	t.Setenv("SOPS_AGE_KEY", newKey(t).Identity)
	if _, err := decrypt.Data(doc, "json"); err == nil {
		t.Errorf("sops decrypt with a key that is no recipient: got nil error")
	}
}

func TestSealedDocumentShape(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	env := sampleEnv()
	doc, err := sealing.Seal(env, k.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	assertNoSecrets(t, string(doc), env, k.Identity)

	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		t.Fatalf("sealed bundle is not JSON: %v", err)
	}
	for name := range env {
		raw, ok := top[name]
		if !ok {
			t.Errorf("variable %s: name not in clear at the top level", name)
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("variable %s: value is not a JSON string: %v", name, err)
			continue
		}
		if env[name] == "" {
			// SOPS leaves an empty value empty (aes.Cipher.Encrypt); its emptiness is all it shows.
			if v != "" {
				t.Errorf("variable %s: empty value sealed as %.20q", name, v)
			}
			continue
		}
		if !strings.HasPrefix(v, "ENC[AES256_GCM,") {
			t.Errorf("variable %s: value %.20s... is not a SOPS ciphertext", name, raw)
		}
	}
	var meta struct {
		Age []struct {
			Recipient string `json:"recipient"`
			Enc       string `json:"enc"`
		} `json:"age"`
		MAC string `json:"mac"`
	}
	if err := json.Unmarshal(top["sops"], &meta); err != nil {
		t.Fatalf("sops metadata: %v", err)
	}
	if len(meta.Age) != 1 || meta.Age[0].Recipient != k.Recipient || meta.Age[0].Enc == "" {
		t.Errorf("sops.age: got %+v, want one entry for %s with an encrypted data key", meta.Age, k.Recipient)
	}
	if !strings.HasPrefix(meta.MAC, "ENC[AES256_GCM,") {
		t.Errorf("sops.mac: got %q, want an encrypted MAC", meta.MAC)
	}
	if len(top) != len(env)+1 {
		t.Errorf("top-level keys: got %d, want %d variables + sops", len(top), len(env))
	}
}

func TestTamperedDocumentFails(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	doc, err := sealing.Seal(map[string]string{"A": "value-a", "B": "value-b"}, k.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	// Swapping two ciphertexts keeps every value decryptable on its own only if the cipher ignored
	// the path; SOPS binds each value to its key, so this and the MAC both catch it.
	var top map[string]any
	if err := json.Unmarshal(doc, &top); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	top["A"], top["B"] = top["B"], top["A"]
	swapped, _ := json.Marshal(top)
	if _, err := sealing.Open(swapped, k.Identity); !errors.Is(err, sealing.ErrMalformed) {
		t.Errorf("Open swapped values: got %v, want ErrMalformed", err)
	}

	var original map[string]any
	if err := json.Unmarshal(doc, &original); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	delete(original, "B")
	dropped, _ := json.Marshal(original)
	if _, err := sealing.Open(dropped, k.Identity); !errors.Is(err, sealing.ErrMalformed) {
		t.Errorf("Open with a variable removed: got %v, want ErrMalformed (MAC mismatch)", err)
	}

	if _, err := sealing.Open([]byte(`{"A": "plain"}`), k.Identity); !errors.Is(err, sealing.ErrMalformed) {
		t.Errorf("Open a document without sops metadata: got %v, want ErrMalformed", err)
	}
}

func TestBadKeysNeverEchoed(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	env := sampleEnv()

	_, err := sealing.Seal(env, k.Identity) // a private key where a public key belongs
	if !errors.Is(err, sealing.ErrRecipient) {
		t.Errorf("Seal with an identity as recipient: got %v, want ErrRecipient", err)
	} else {
		assertNoSecrets(t, err.Error(), env, k.Identity)
	}
	_, err = sealing.Seal(env, "age1"+strings.Repeat("q", 20)+"secretish")
	if !errors.Is(err, sealing.ErrRecipient) {
		t.Errorf("Seal with a malformed recipient: got %v, want ErrRecipient", err)
	}
	if _, err := sealing.Seal(env); err == nil {
		t.Errorf("Seal without recipients: got nil error")
	}

	doc, err := sealing.Seal(env, k.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	bad := k.Identity[:len(k.Identity)-4] + "QQQQ"
	_, err = sealing.Open(doc, bad)
	if !errors.Is(err, sealing.ErrIdentity) {
		t.Errorf("Open with a corrupted identity: got %v, want ErrIdentity", err)
	} else {
		assertNoSecrets(t, err.Error(), env, k.Identity, bad)
	}
}

// A plugin recipient would make sops run age-plugin-<name> from PATH while sealing; a caller's
// sops_key must not be able to choose a program to run.
func TestPluginRecipientRefused(t *testing.T) {
	t.Parallel()
	r := plugin.EncodeRecipient("iacciprobe", []byte{1, 2, 3, 4})
	if _, err := sealing.Seal(sampleEnv(), newKey(t).Recipient, r); !errors.Is(err, sealing.ErrRecipient) {
		t.Fatalf("Seal with plugin recipient %s: got %v, want ErrRecipient", r, err)
	}
}

// A caller may give a post-quantum sops_key; they open the bundle with sops, not with Open.
func TestHybridRecipientOpensWithSOPS(t *testing.T) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatalf("GenerateHybridIdentity: %v", err)
	}
	env := sampleEnv()
	doc, err := sealing.Seal(env, newKey(t).Recipient, id.Recipient().String())
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	t.Setenv("SOPS_AGE_KEY", id.String())
	plain, err := decrypt.Data(doc, "json")
	if err != nil {
		t.Fatalf("sops decrypt with the hybrid identity: %v", err)
	}
	var got map[string]string
	if err := json.Unmarshal(plain, &got); err != nil || !maps.Equal(got, env) {
		t.Fatalf("sops decrypt with the hybrid identity: got %v (%v), want %v", keysOf(got), err, keysOf(env))
	}
}

func TestReservedNames(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	for _, name := range []string{"sops", ""} {
		if _, err := sealing.Seal(map[string]string{name: "v"}, k.Recipient); err == nil {
			t.Errorf("Seal with a variable named %q: got nil error", name)
		}
	}
}

// Many runs open their bundles at once, each with its own key; none may see another's.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			k, err := sealing.NewKey()
			if err != nil {
				errs <- err
				return
			}
			env := map[string]string{"RUN": fmt.Sprint(i)}
			doc, err := sealing.Seal(env, k.Recipient)
			if err != nil {
				errs <- err
				return
			}
			got, err := sealing.Open(doc, k.Identity)
			if err != nil {
				errs <- err
				return
			}
			if got["RUN"] != env["RUN"] {
				errs <- fmt.Errorf("run %d opened RUN=%q", i, got["RUN"])
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func assertNoSecrets(t *testing.T, s string, env map[string]string, keys ...string) {
	t.Helper()
	for name, v := range env {
		if len(v) >= 3 && strings.Contains(s, v) {
			t.Errorf("the value of %s appears in %.40q...", name, s)
		}
	}
	for _, k := range keys {
		if strings.Contains(s, k) {
			t.Errorf("a private key appears in %.40q...", s)
		}
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func benchEnv() map[string]string {
	env := make(map[string]string, 10)
	for i := range 10 {
		env[fmt.Sprintf("VAR_%02d", i)] = string(bytes.Repeat([]byte{'a' + byte(i)}, 40))
	}
	return env
}

func BenchmarkSeal(b *testing.B) {
	k := newKey(b)
	env := benchEnv()
	for b.Loop() {
		if _, err := sealing.Seal(env, k.Recipient); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := newKey(b)
	doc, err := sealing.Seal(benchEnv(), k.Recipient)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := sealing.Open(doc, k.Identity); err != nil {
			b.Fatal(err)
		}
	}
}
