package sealing

import (
	cryptoaes "crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"strings"

	"github.com/getsops/sops/v3/aes"
)

// stringCipher decrypts SOPS values as sops's aes.Cipher does, reading the common case, a
// string, without the regular expression sops reads every value with: on the short values of an
// order's environment that expression's backtracking was about 40% of the time it took to open a
// bundle. The decryption itself is the same AES-256-GCM open, with the value's path as
// additional data, so a value altered in any way still fails. Anything else (another type, an
// empty value, a value this reader does not recognise) goes to sops's own cipher, so the result
// is always the one sops would give.
type stringCipher struct{ aes.Cipher }

func (c stringCipher) Decrypt(ciphertext string, key []byte, additionalData string) (any, error) {
	if plain, ok := decryptString(ciphertext, key, additionalData); ok {
		return plain, nil
	}
	return c.Cipher.Decrypt(ciphertext, key, additionalData)
}

// decryptString opens "ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:str]"; ok is false
// when the value has another shape or does not open (the caller then lets sops say why).
func decryptString(value string, key []byte, additionalData string) (string, bool) {
	rest, ok := strings.CutPrefix(value, "ENC[AES256_GCM,data:")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, ",type:str]")
	if !ok {
		return "", false
	}
	data64, rest, ok := strings.Cut(rest, ",iv:")
	if !ok {
		return "", false
	}
	iv64, tag64, ok := strings.Cut(rest, ",tag:")
	if !ok || strings.Contains(tag64, ",") {
		return "", false
	}
	data, err1 := base64.StdEncoding.DecodeString(data64)
	iv, err2 := base64.StdEncoding.DecodeString(iv64)
	tag, err3 := base64.StdEncoding.DecodeString(tag64)
	if err1 != nil || err2 != nil || err3 != nil || len(data) == 0 || len(iv) == 0 {
		return "", false
	}
	block, err := cryptoaes.NewCipher(key)
	if err != nil {
		return "", false
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return "", false
	}
	plain, err := gcm.Open(nil, iv, append(data, tag...), []byte(additionalData))
	if err != nil {
		return "", false
	}
	return string(plain), true
}
