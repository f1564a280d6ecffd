package sealing

import (
	"bytes"
	cryptoaes "crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"math/rand/v2"
	"regexp"
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

// sopsValueRE is sops's own reading of an encrypted value (encre in its aes/cipher.go).
var sopsValueRE = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)

// Whatever parseEncryptedString recognises, sops reads as the same three parts of a string, so
// decrypting them gives what sops gives. Values are built at random in the shape of an encrypted
// value, each part mostly of base64 but now and then of a piece that could mislead one reader
// or the other.
func TestParseEncryptedStringAgreesWithSops(t *testing.T) {
	t.Parallel()
	base64Pieces := []string{"QUJD", "AA==", "+/", "="}
	decoys := []string{",iv:", ",tag:", ",type:str]", ",", ":", "]", "[", "\n", " ", "é", ""}
	suffixes := []string{",type:str]", ",type:int]", ",type:str]x", ",type:str", "]"}
	rng := rand.New(rand.NewPCG(1, 2))
	part := func() string {
		var b strings.Builder
		for range 1 + rng.IntN(3) {
			if rng.IntN(10) < 7 {
				b.WriteString(base64Pieces[rng.IntN(len(base64Pieces))])
			} else {
				b.WriteString(decoys[rng.IntN(len(decoys))])
			}
		}
		return b.String()
	}
	recognised := 0
	for range 100_000 {
		value := "ENC[AES256_GCM,data:" + part() + ",iv:" + part() + ",tag:" + part() + suffixes[rng.IntN(len(suffixes))]
		v, ok := parseEncryptedString(value)
		if !ok {
			continue
		}
		recognised++
		m := sopsValueRE.FindStringSubmatch(value)
		if m == nil || m[1] != v.data64 || m[2] != v.iv64 || m[3] != v.tag64 || m[4] != "str" {
			t.Fatalf("%q: read as %+v; sops reads %q", value, v, m)
		}
	}
	if recognised < 1000 {
		t.Fatalf("only %d values were recognised: the test tries too few", recognised)
	}
}

// A value with an IV of another length than sops writes (only a hand-made document has one)
// opens as sops opens it.
func TestValueCipherOtherIVLengths(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	c, err := newValueCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	block, err := cryptoaes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	const ad = "NAME:"
	for _, ivLen := range []int{1, 12, 16, ivSize, 64} {
		gcm, err := cipher.NewGCMWithNonceSize(block, ivLen)
		if err != nil {
			t.Fatal(err)
		}
		iv := bytes.Repeat([]byte{byte(ivLen)}, ivLen)
		sealed := gcm.Seal(nil, iv, []byte("secret"), []byte(ad))
		value := "ENC[AES256_GCM,data:" + base64.StdEncoding.EncodeToString(sealed[:len(sealed)-16]) +
			",iv:" + base64.StdEncoding.EncodeToString(iv) + ",tag:" + base64.StdEncoding.EncodeToString(sealed[len(sealed)-16:]) + ",type:str]"
		want, wantErr := aes.NewCipher().Decrypt(value, key, ad)
		got, ok := c.decryptString(value, ad)
		if wantErr != nil || !ok || got != want {
			t.Errorf("a %d-byte IV: got %q (%v), sops gives %v (%v)", ivLen, got, ok, want, wantErr)
		}
		if _, ok := c.decryptString(value, "OTHER:"); ok {
			t.Errorf("a %d-byte IV: opened with another path", ivLen)
		}
	}
	// A key AES refuses sets nothing up; the sops-based open then fails as sops does.
	if _, err := newValueCipher(key[:31]); err == nil {
		t.Errorf("newValueCipher with a 31-byte key: got nil error")
	}
}
