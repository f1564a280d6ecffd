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
		requireSopsDecrypts(t, doc, name, k.Identity, env)
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
	requireSopsDecrypts(t, doc, "the hybrid identity", id.String(), env)
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

// requireSopsDecrypts checks that sops's own decrypt, given identity as SOPS_AGE_KEY, opens doc
// to env; what names the identity in failures.
func requireSopsDecrypts(t *testing.T, doc []byte, what, identity string, env map[string]string) {
	t.Helper()
	t.Setenv("SOPS_AGE_KEY", identity)
	plain, err := decrypt.Data(doc, "json")
	if err != nil {
		t.Fatalf("sops decrypt with %s: %v", what, err)
	}
	var got map[string]string
	if err := json.Unmarshal(plain, &got); err != nil || !maps.Equal(got, env) {
		t.Errorf("sops decrypt with %s: got %v (%v), want %v", what, keysOf(got), err, keysOf(env))
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

// sopsMeta is the part of a document's "sops" metadata the Sealer tests compare.
type sopsMeta struct {
	Age []struct {
		Recipient string `json:"recipient"`
		Enc       string `json:"enc"`
	} `json:"age"`
	MAC string `json:"mac"`
}

func parseDoc(t *testing.T, doc []byte) (map[string]string, sopsMeta) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		t.Fatalf("sealed document is not JSON: %v", err)
	}
	var meta sopsMeta
	if err := json.Unmarshal(top["sops"], &meta); err != nil {
		t.Fatalf("sops metadata: %v", err)
	}
	values := map[string]string{}
	for name, raw := range top {
		if name == "sops" {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("variable %s is not a JSON string: %v", name, err)
		}
		values[name] = v
	}
	return values, meta
}

func newSealer(t testing.TB, recipients ...string) *sealing.Sealer {
	t.Helper()
	s, err := sealing.NewSealer(recipients...)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func sealWith(t testing.TB, s *sealing.Sealer, env map[string]string) []byte {
	t.Helper()
	doc, err := s.Seal(env)
	if err != nil {
		t.Fatalf("Sealer.Seal: %v", err)
	}
	return doc
}

// Each document of one Sealer opens to its own values, with Open and with an Opener, for every
// recipient.
func TestSealerDocumentsOpen(t *testing.T) {
	t.Parallel()
	run, caller := newKey(t), newKey(t)
	s := newSealer(t, run.Recipient, caller.Recipient)
	opener := sealing.NewOpener(16)
	for i := range 5 {
		env := sampleEnv()
		env["ORDER_NUM"] = fmt.Sprintf("%04d", i+1)
		doc := sealWith(t, s, env)
		assertNoSecrets(t, string(doc), env, run.Identity, caller.Identity)
		for name, k := range map[string]sealing.Key{"run key": run, "caller's sops_key": caller} {
			got, err := sealing.Open(doc, k.Identity)
			if err != nil {
				t.Fatalf("document %d: Open with %s: %v", i, name, err)
			}
			if !maps.Equal(got, env) {
				t.Errorf("document %d: Open with %s: got %v, want %v", i, name, keysOf(got), keysOf(env))
			}
			got, err = opener.Open(doc, k.Identity)
			if err != nil {
				t.Fatalf("document %d: Opener.Open with %s: %v", i, name, err)
			}
			if !maps.Equal(got, env) || got["ORDER_NUM"] != env["ORDER_NUM"] {
				t.Errorf("document %d: Opener.Open with %s: got ORDER_NUM %q, want %q", i, name, got["ORDER_NUM"], env["ORDER_NUM"])
			}
		}
	}
	if got := s.Recipients(); len(got) != 2 || got[0] != run.Recipient || got[1] != caller.Recipient {
		t.Errorf("Recipients: got %v, want the run's and the caller's", got)
	}
	// Two identities, one wrapped key each (the documents share them): two of each kept.
	if ids, keys := sealing.OpenerLen(opener); ids != 2 || keys != 2 {
		t.Errorf("Opener keeps %d identities and %d data keys, want 2 and 2", ids, keys)
	}
}

// The documents of one Sealer carry the same wrapped data key, but their values and MACs are
// encrypted afresh: equal values do not give equal ciphertexts.
func TestSealerSharesWrappedKeyNotCiphertexts(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	s := newSealer(t, k.Recipient)
	env := sampleEnv()
	values1, meta1 := parseDoc(t, sealWith(t, s, env))
	values2, meta2 := parseDoc(t, sealWith(t, s, env))
	if len(meta1.Age) != 1 || len(meta2.Age) != 1 || meta1.Age[0].Enc == "" {
		t.Fatalf("sops.age: got %d and %d entries, want one wrapped key each", len(meta1.Age), len(meta2.Age))
	}
	if meta1.Age[0] != meta2.Age[0] {
		t.Errorf("two documents of one Sealer carry different wrapped keys")
	}
	if meta1.MAC == meta2.MAC {
		t.Errorf("two documents of one Sealer carry the same encrypted MAC")
	}
	for name, v := range values1 {
		if v != "" && v == values2[name] {
			t.Errorf("variable %s: same ciphertext in two documents of one Sealer", name)
		}
	}

	// A document of another Sealer (or of Seal) for the same recipient has a key of its own.
	_, other := parseDoc(t, sealWith(t, newSealer(t, k.Recipient), env))
	doc, err := sealing.Seal(env, k.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	_, oneOff := parseDoc(t, doc)
	if other.Age[0].Enc == meta1.Age[0].Enc || oneOff.Age[0].Enc == meta1.Age[0].Enc {
		t.Errorf("another Sealer reused the first one's wrapped key")
	}
}

// An order with its own sops_key is sealed by a Sealer of its own: the sops_key holder can open
// it, but not the documents of the run's Sealer, and the two carry different wrapped keys even
// for the run's recipient. (producers tests check the same of intake.)
func TestSealerForExtraRecipientIsSeparate(t *testing.T) {
	t.Parallel()
	run, caller := newKey(t), newKey(t)
	runSealer := newSealer(t, run.Recipient)
	own := newSealer(t, run.Recipient, caller.Recipient)
	runDoc, ownDoc := sealWith(t, runSealer, sampleEnv()), sealWith(t, own, sampleEnv())
	_, runMeta := parseDoc(t, runDoc)
	_, ownMeta := parseDoc(t, ownDoc)
	if runMeta.Age[0].Recipient != ownMeta.Age[0].Recipient || runMeta.Age[0].Enc == ownMeta.Age[0].Enc {
		t.Errorf("the sops_key order's document shares the run's wrapped key")
	}
	if _, err := sealing.Open(ownDoc, caller.Identity); err != nil {
		t.Errorf("Open the sops_key order with its key: %v", err)
	}
	if _, err := sealing.Open(runDoc, caller.Identity); !errors.Is(err, sealing.ErrWrongKey) {
		t.Errorf("Open a run order with the sops_key: got %v, want ErrWrongKey", err)
	}
}

func TestSealerOpensWithSOPSDecrypt(t *testing.T) {
	run, caller := newKey(t), newKey(t)
	s := newSealer(t, run.Recipient, caller.Recipient)
	for i := range 2 {
		env := sampleEnv()
		env["I"] = fmt.Sprint(i)
		doc := sealWith(t, s, env)
		for name, k := range map[string]sealing.Key{"run key": run, "caller's sops_key": caller} {
			requireSopsDecrypts(t, doc, fmt.Sprintf("document %d, %s", i, name), k.Identity, env)
		}
	}
}

func TestNewSealerRefusesBadRecipients(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	if _, err := sealing.NewSealer(); err == nil {
		t.Errorf("NewSealer without recipients: got nil error")
	}
	for _, r := range []string{k.Identity, "age1" + strings.Repeat("q", 20) + "secretish", plugin.EncodeRecipient("iacciprobe", []byte{1})} {
		_, err := sealing.NewSealer(k.Recipient, r)
		if !errors.Is(err, sealing.ErrRecipient) {
			t.Errorf("NewSealer with a bad recipient: got %v, want ErrRecipient", err)
			continue
		}
		if !strings.Contains(err.Error(), "recipient 2") {
			t.Errorf("NewSealer error %q does not say which recipient", err)
		}
		assertNoSecrets(t, err.Error(), nil, k.Identity, r)
	}
	s := newSealer(t, k.Recipient)
	for _, name := range []string{"sops", ""} {
		if _, err := s.Seal(map[string]string{name: "v"}); err == nil {
			t.Errorf("Sealer.Seal with a variable named %q: got nil error", name)
		}
	}
	// A refused document does not spoil the Sealer.
	if doc, err := s.Seal(map[string]string{"A": "value-a"}); err != nil {
		t.Errorf("Sealer.Seal after a refusal: %v", err)
	} else if got, err := sealing.Open(doc, k.Identity); err != nil || got["A"] != "value-a" {
		t.Errorf("Open after a refusal: %v", err)
	}
}

// A kept data key spares the unwrapping only: a tampered document still fails its MAC.
func TestOpenerTamperedAfterCacheHitFails(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	s := newSealer(t, k.Recipient)
	opener := sealing.NewOpener(8)
	doc := sealWith(t, s, map[string]string{"A": "value-a", "B": "value-b"})
	if _, err := opener.Open(doc, k.Identity); err != nil {
		t.Fatalf("Opener.Open: %v", err)
	}
	if _, keys := sealing.OpenerLen(opener); keys != 1 {
		t.Fatalf("Opener keeps %d data keys, want 1", keys)
	}
	tamper := map[string]func(top map[string]any){
		"values swapped":   func(top map[string]any) { top["A"], top["B"] = top["B"], top["A"] },
		"variable removed": func(top map[string]any) { delete(top, "B") },
		"variable added": func(top map[string]any) {
			// A value sealed under the same data key, for another document's name.
			var other map[string]any
			if err := json.Unmarshal(sealWith(t, s, map[string]string{"C": "value-c"}), &other); err != nil {
				t.Fatal(err)
			}
			top["C"] = other["C"]
		},
		"mac of another document": func(top map[string]any) {
			var other map[string]any
			if err := json.Unmarshal(sealWith(t, s, map[string]string{"A": "value-x"}), &other); err != nil {
				t.Fatal(err)
			}
			top["A"] = other["A"]
		},
	}
	for name, change := range tamper {
		var top map[string]any
		if err := json.Unmarshal(doc, &top); err != nil {
			t.Fatal(err)
		}
		change(top)
		bad, _ := json.Marshal(top)
		if _, err := opener.Open(bad, k.Identity); !errors.Is(err, sealing.ErrMalformed) {
			t.Errorf("Opener.Open with %s: got %v, want ErrMalformed", name, err)
		}
		if _, err := sealing.Open(bad, k.Identity); !errors.Is(err, sealing.ErrMalformed) {
			t.Errorf("Open with %s: got %v, want ErrMalformed", name, err)
		}
	}
	// The untouched document still opens from the kept key.
	if got, err := opener.Open(doc, k.Identity); err != nil || got["A"] != "value-a" {
		t.Errorf("Opener.Open after the tampered ones: %v", err)
	}
}

// A data key is only handed to the identity that unwrapped it.
func TestOpenerWrongKeyDespiteCachedKey(t *testing.T) {
	t.Parallel()
	run, caller, stranger := newKey(t), newKey(t), newKey(t)
	opener := sealing.NewOpener(8)
	for _, recipients := range [][]sealing.Key{{run}, {run, caller}} {
		rs := make([]string, len(recipients))
		for i, k := range recipients {
			rs[i] = k.Recipient
		}
		doc := sealWith(t, newSealer(t, rs...), sampleEnv())
		for _, k := range recipients {
			if _, err := opener.Open(doc, k.Identity); err != nil {
				t.Fatalf("Opener.Open with a recipient: %v", err)
			}
		}
		for range 2 {
			got, err := opener.Open(doc, stranger.Identity)
			if !errors.Is(err, sealing.ErrWrongKey) || got != nil {
				t.Fatalf("Opener.Open with an identity that is no recipient: got %d variables, err %v, want ErrWrongKey", len(got), err)
			}
			assertNoSecrets(t, err.Error(), sampleEnv(), run.Identity, caller.Identity, stranger.Identity)
		}
	}
	// Bad identities fail as with Open, and are not kept.
	doc := sealWith(t, newSealer(t, run.Recipient), sampleEnv())
	for _, bad := range []string{"", run.Recipient, run.Identity[:len(run.Identity)-4] + "QQQQ"} {
		_, err := opener.Open(doc, bad)
		if !errors.Is(err, sealing.ErrIdentity) {
			t.Errorf("Opener.Open with a bad identity: got %v, want ErrIdentity", err)
		} else if bad != "" {
			assertNoSecrets(t, err.Error(), nil, run.Identity, bad)
		}
	}
	if _, err := opener.Open([]byte(`{"A": "plain"}`), run.Identity); !errors.Is(err, sealing.ErrMalformed) {
		t.Errorf("Opener.Open a document without sops metadata: got %v, want ErrMalformed", err)
	}
	if ids, _ := sealing.OpenerLen(opener); ids != 3 {
		t.Errorf("Opener keeps %d identities, want 3 (run, caller, stranger)", ids)
	}
	// The identity's spelling around it does not matter, as with Open.
	if _, err := opener.Open(doc, "\n"+run.Identity+"\n"); err != nil {
		t.Errorf("Opener.Open with the identity between newlines: %v", err)
	}
}

func TestOpenerStaysWithinMaxKeys(t *testing.T) {
	t.Parallel()
	const maxKeys = 3
	opener := sealing.NewOpener(maxKeys)
	k := newKey(t)
	for i := range 10 {
		env := map[string]string{"I": fmt.Sprint(i)}
		got, err := opener.Open(sealWith(t, newSealer(t, k.Recipient), env), k.Identity)
		if err != nil || got["I"] != env["I"] {
			t.Fatalf("document %d: Opener.Open: got %v, %v", i, got, err)
		}
		if ids, keys := sealing.OpenerLen(opener); ids > maxKeys || keys > maxKeys {
			t.Fatalf("after %d documents the Opener keeps %d identities and %d data keys, over %d", i+1, ids, keys, maxKeys)
		}
	}
	for i := range 10 {
		o := newKey(t)
		if _, err := opener.Open(sealWith(t, newSealer(t, o.Recipient), nil), o.Identity); err != nil {
			t.Fatalf("identity %d: Opener.Open: %v", i, err)
		}
		if ids, keys := sealing.OpenerLen(opener); ids > maxKeys || keys > maxKeys {
			t.Fatalf("after %d identities the Opener keeps %d identities and %d data keys, over %d", i+1, ids, keys, maxKeys)
		}
	}

	// Keeping nothing, or a nil Opener, opens as Open does.
	doc := sealWith(t, newSealer(t, k.Recipient), map[string]string{"A": "value-a"})
	for name, o := range map[string]*sealing.Opener{"NewOpener(0)": sealing.NewOpener(0), "nil": nil} {
		if got, err := o.Open(doc, k.Identity); err != nil || got["A"] != "value-a" {
			t.Errorf("%s: Open: got %v, %v", name, got, err)
		}
		if _, err := o.Open(doc, newKey(t).Identity); !errors.Is(err, sealing.ErrWrongKey) {
			t.Errorf("%s: Open with another key: got %v, want ErrWrongKey", name, err)
		}
	}
	if ids, keys := sealing.OpenerLen(sealing.NewOpener(0)); ids != 0 || keys != 0 {
		t.Errorf("NewOpener(0) keeps something")
	}
}

// Many workers seal and open at once with shared Sealers and one Opener small enough to evict;
// each sees its own values and only its own run's documents open.
func TestSealerOpenerConcurrent(t *testing.T) {
	t.Parallel()
	const runs, orders = 4, 24
	keys := make([]sealing.Key, runs)
	sealers := make([]*sealing.Sealer, runs)
	for r := range runs {
		keys[r] = newKey(t)
		sealers[r] = newSealer(t, keys[r].Recipient)
	}
	opener := sealing.NewOpener(2)
	var wg sync.WaitGroup
	errs := make(chan error, runs*orders)
	for r := range runs {
		for i := range orders {
			wg.Go(func() {
				env := map[string]string{"RUN": fmt.Sprint(r), "ORDER": fmt.Sprint(i)}
				doc, err := sealers[r].Seal(env)
				if err != nil {
					errs <- err
					return
				}
				got, err := opener.Open(doc, keys[r].Identity)
				if err != nil {
					errs <- fmt.Errorf("run %d order %d: %w", r, i, err)
					return
				}
				if !maps.Equal(got, env) {
					errs <- fmt.Errorf("run %d order %d opened %v", r, i, got)
				}
				other := keys[(r+1)%runs]
				if _, err := opener.Open(doc, other.Identity); !errors.Is(err, sealing.ErrWrongKey) {
					errs <- fmt.Errorf("run %d order %d opened with run %d's key: %v", r, i, (r+1)%runs, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ids, keys := sealing.OpenerLen(opener); ids > 2 || keys > 2 {
		t.Errorf("Opener keeps %d identities and %d data keys, over 2", ids, keys)
	}
}

func BenchmarkSealerSeal(b *testing.B) {
	s := newSealer(b, newKey(b).Recipient)
	env := benchEnv()
	for b.Loop() {
		if _, err := s.Seal(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenerOpen opens documents of one Sealer, as a worker opens a run's orders; each
// iteration opens another document, so nothing but the data key is reused.
func BenchmarkOpenerOpen(b *testing.B) {
	k := newKey(b)
	s := newSealer(b, k.Recipient)
	docs := make([][]byte, 64)
	for i := range docs {
		docs[i] = sealWith(b, s, benchEnv())
	}
	opener := sealing.NewOpener(1024)
	i := 0
	for b.Loop() {
		if _, err := opener.Open(docs[i%len(docs)], k.Identity); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
