package sealing

import (
	"bytes"
	"strings"
	"testing"

	"github.com/getsops/sops/v3/aes"
)

// stringCipher reads what sops's cipher wrote exactly as sops reads it, and refuses whatever sops
// would refuse.
func TestStringCipherAgreesWithSops(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	sopsCipher := aes.NewCipher()
	ours := stringCipher{aes.NewCipher()}
	const ad = "DB_PASSWORD:"
	for _, plain := range []any{"s3cr3t", "with,commas,iv:and,tag:inside]", "ünïcödé ✓", strings.Repeat("x", 5000), 42, true, 1.5} {
		enc, err := sopsCipher.Encrypt(plain, key, ad)
		if err != nil {
			t.Fatal(err)
		}
		want, wantErr := aes.NewCipher().Decrypt(enc, key, ad)
		got, err := ours.Decrypt(enc, key, ad)
		if err != nil || wantErr != nil || got != want {
			t.Errorf("Decrypt(%v): got %v (%v), sops gives %v (%v)", plain, got, err, want, wantErr)
		}
		if _, isString := plain.(string); isString {
			if _, ok := decryptString(enc, key, ad); !ok {
				t.Errorf("a string (%d bytes) was not read by the fast path", len(plain.(string)))
			}
		}
		// Any change is refused, as sops refuses it: another path, another key, a bit flipped.
		other := bytes.Repeat([]byte{8}, 32)
		flipped := []byte(enc)
		flipped[len("ENC[AES256_GCM,data:")] ^= 1
		for name, try := range map[string]func() (any, error){
			"other path": func() (any, error) { return ours.Decrypt(enc, key, "OTHER:") },
			"other key":  func() (any, error) { return ours.Decrypt(enc, other, ad) },
			"flipped":    func() (any, error) { return ours.Decrypt(string(flipped), key, ad) },
		} {
			if v, err := try(); err == nil {
				t.Errorf("%v with %s: opened as %v, want an error", plain, name, v)
			}
		}
	}
	if v, err := ours.Decrypt("", key, ad); err != nil || v != "" {
		t.Errorf(`Decrypt(""): %v, %v; want "" as sops gives`, v, err)
	}
}
