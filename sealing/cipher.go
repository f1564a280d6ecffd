package sealing

import (
	cryptoaes "crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"strings"

	"github.com/getsops/sops/v3/aes"
)

// ivSize is the length of the random IV sops gives every value it encrypts (the nonceSize of
// sops's aes.Cipher), and so the IV length of every value Seal writes.
const ivSize = 32

// stringCipher decrypts SOPS values as sops's aes.Cipher does, reading the common case, a
// string, without the regular expression sops reads every value with: on the short values of an
// order's environment that expression's backtracking was about 40% of the time it took to open a
// bundle. The decryption itself is the same AES-256-GCM open, with the value's path as
// additional data, so a value altered in any way still fails. Anything else (another type, an
// empty value, a value this reader does not recognise) goes to sops's own cipher, so the result
// is always the one sops would give. The sops-based open uses it for the documents the fast
// open leaves to sops.
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
	c, err := newValueCipher(key)
	if err != nil {
		return "", false
	}
	return c.decryptString(value, additionalData)
}

// valueCipher encrypts and decrypts the string values of SOPS documents with one data key
// exactly as sops's aes.Cipher does — AES-256-GCM, the value's path as additional data, the
// same "ENC[...]" text — but sets AES-GCM up once for all the values of a document, where sops
// sets it up again for every value.
type valueCipher struct {
	block cipher.Block
	// gcm takes the ivSize IVs sops writes; a value with an IV of another length (only a
	// hand-made document has one) gets a GCM of its own.
	gcm cipher.AEAD
}

// newValueCipher sets AES-GCM up for key. It fails only for a key AES refuses, never for the
// 32-byte data keys sops and a Sealer make.
func newValueCipher(key []byte) (valueCipher, error) {
	block, err := cryptoaes.NewCipher(key)
	if err != nil {
		return valueCipher{}, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, ivSize)
	if err != nil {
		return valueCipher{}, err
	}
	return valueCipher{block: block, gcm: gcm}, nil
}

// appendEncryptedString appends plain encrypted under iv (ivSize fresh random bytes) in the
// form aes.Cipher.Encrypt writes a string: the sealed data without the tag, the IV and the
// 16-byte tag, each in standard base64. The caller leaves an empty value empty, as sops does.
func (c valueCipher) appendEncryptedString(dst []byte, plain, additionalData string, iv []byte) []byte {
	sealed := c.gcm.Seal(nil, iv, []byte(plain), []byte(additionalData))
	data, tag := sealed[:len(sealed)-cryptoaes.BlockSize], sealed[len(sealed)-cryptoaes.BlockSize:]
	dst = append(dst, "ENC[AES256_GCM,data:"...)
	dst = base64.StdEncoding.AppendEncode(dst, data)
	dst = append(dst, ",iv:"...)
	dst = base64.StdEncoding.AppendEncode(dst, iv)
	dst = append(dst, ",tag:"...)
	dst = base64.StdEncoding.AppendEncode(dst, tag)
	return append(dst, ",type:str]"...)
}

// decryptString opens an encrypted string value (see parseEncryptedString); ok is false when
// the value has another shape or does not open.
func (c valueCipher) decryptString(value, additionalData string) (string, bool) {
	v, ok := parseEncryptedString(value)
	if !ok {
		return "", false
	}
	return c.decrypt(v, additionalData)
}

// decrypt opens v as sops opens the same parts: the base64 decoded, the tag appended to the
// data, AES-GCM with an IV of the length given; ok is false when it does not open.
func (c valueCipher) decrypt(v encryptedString, additionalData string) (string, bool) {
	data, err1 := base64.StdEncoding.DecodeString(v.data64)
	iv, err2 := base64.StdEncoding.DecodeString(v.iv64)
	tag, err3 := base64.StdEncoding.DecodeString(v.tag64)
	if err1 != nil || err2 != nil || err3 != nil {
		return "", false
	}
	gcm := c.gcm
	if len(iv) != ivSize {
		var err error
		if gcm, err = cipher.NewGCMWithNonceSize(c.block, len(iv)); err != nil {
			return "", false
		}
	}
	plain, err := gcm.Open(nil, iv, append(data, tag...), []byte(additionalData))
	if err != nil {
		return "", false
	}
	return string(plain), true
}

// encryptedString is an encrypted string value read in parts, still in base64.
type encryptedString struct {
	data64, iv64, tag64 string
}

// parseEncryptedString splits "ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:str]" into
// its three base64 parts, each non-empty and of the base64 alphabet alone. For such a value
// sops's own parser (a greedy regular expression) finds the very same parts, so whatever
// decrypting them gives, sops gives too; any other spelling is not recognised here and is left
// to sops.
func parseEncryptedString(value string) (encryptedString, bool) {
	rest, ok := strings.CutPrefix(value, "ENC[AES256_GCM,data:")
	if !ok {
		return encryptedString{}, false
	}
	rest, ok = strings.CutSuffix(rest, ",type:str]")
	if !ok {
		return encryptedString{}, false
	}
	data64, rest, ok := strings.Cut(rest, ",iv:")
	if !ok {
		return encryptedString{}, false
	}
	iv64, tag64, ok := strings.Cut(rest, ",tag:")
	if !ok || !isBase64(data64) || !isBase64(iv64) || !isBase64(tag64) {
		return encryptedString{}, false
	}
	return encryptedString{data64: data64, iv64: iv64, tag64: tag64}, true
}

// base64Alphabet marks the bytes of standard base64: its 64 digits and the padding '='.
var base64Alphabet = func() (alphabet [256]bool) {
	for _, b := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") {
		alphabet[b] = true
	}
	return alphabet
}()

// isBase64 reports whether s is non-empty and of standard base64's alphabet alone (no
// separator, no line break that the decoder would skip and sops's expression would not).
func isBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		if !base64Alphabet[s[i]] {
			return false
		}
	}
	return s != ""
}
