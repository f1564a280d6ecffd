package sealing

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"time"

	"github.com/getsops/sops/v3/version"
)

// sealAt seals env as Seal does, with now as the document's last-modified time.
//
// It writes what `sops encrypt` writes (common.EncryptTree, then the JSON store's
// EmitEncryptedFile with an indent of 2) for a flat tree of strings under the rule
// encrypted_regex "^", which encrypts every value:
//   - each variable in name order, its value encrypted with the data key under a fresh random
//     32-byte IV, with "<name>:" (the value's path) as additional data; an empty value stays
//     empty, as aes.Cipher.Encrypt leaves it;
//   - the MAC: SHA-512 over the values in clear in the order they are written (an empty one adds
//     nothing), in upper-case hex, encrypted under a fresh IV with the last-modified time in
//     RFC 3339 as additional data;
//   - the "sops" metadata with its keys in sops's order (sorted by name): age, encrypted_regex,
//     lastmodified, mac, version.
//
// The IVs come from one read of crypto/rand, taken in the order sops draws them (each non-empty
// value in turn, then the MAC's), so from the same random bytes and time sops writes the very
// same document; the tests compare the two byte for byte.
func (s *Sealer) sealAt(env map[string]string, now time.Time) ([]byte, error) {
	names, err := sortedNames(env)
	if err != nil {
		return nil, err
	}
	cipher, err := newValueCipher(s.dataKey)
	if err != nil {
		return nil, fmt.Errorf("seal: encrypt values: %w", err)
	}
	encrypted := 1 // the MAC
	// Room for the whole document, so that it is not copied as it grows: each value grows by a
	// third in base64, and its IV, tag and framing add less than 128 bytes.
	size := len(s.metadataHead) + len(metadataTail) + 256
	for _, name := range names {
		if v := env[name]; v != "" {
			encrypted++
			size += len(name) + 4*len(v)/3 + 128
		}
	}
	ivs := make([]byte, encrypted*ivSize)
	rand.Read(ivs) // crypto/rand never fails: it crashes the program instead
	nextIV := func() []byte {
		iv := ivs[:ivSize]
		ivs = ivs[ivSize:]
		return iv
	}

	mac := sha512.New()
	doc := make([]byte, 0, size)
	doc = append(doc, "{\n"...)
	for _, name := range names {
		value := env[name]
		doc = append(doc, "  "...)
		doc = appendJSONString(doc, name)
		doc = append(doc, `: "`...)
		if value != "" {
			mac.Write([]byte(value))
			doc = cipher.appendEncryptedString(doc, value, name+":", nextIV())
		}
		doc = append(doc, "\",\n"...)
	}
	lastModified := now.UTC().Format(time.RFC3339)
	doc = append(doc, s.metadataHead...)
	doc = append(doc, lastModified...)
	doc = append(doc, "\",\n    \"mac\": \""...)
	doc = cipher.appendEncryptedString(doc, fmt.Sprintf("%X", mac.Sum(nil)), lastModified, nextIV())
	doc = append(doc, metadataTail...)
	return doc, nil
}

// metadataHead writes the part of a document's "sops" metadata that is the same in every
// document of a Sealer, up to the opening quote of the last-modified time: the age recipients,
// each with its keys in sops's order (enc, recipient), and the encryption rule.
func metadataHead(wrapped []wrappedKey) []byte {
	head := []byte("  \"sops\": {\n    \"age\": [\n")
	for i, k := range wrapped {
		head = append(head, "      {\n        \"enc\": "...)
		head = appendJSONString(head, k.enc)
		head = append(head, ",\n        \"recipient\": "...)
		head = appendJSONString(head, k.recipient)
		head = append(head, "\n      }"...)
		if i < len(wrapped)-1 {
			head = append(head, ',')
		}
		head = append(head, '\n')
	}
	head = append(head, "    ],\n    \"encrypted_regex\": "...)
	head = appendJSONString(head, everyKey)
	return append(head, ",\n    \"lastmodified\": \""...)
}

// metadataTail closes a document after its encrypted MAC: the sops version, as sops writes it.
var metadataTail = "\",\n    \"version\": " + string(appendJSONString(nil, version.Version)) + "\n  }\n}\n"

// appendJSONString appends s as a JSON string exactly as json.Marshal writes it, which is how
// sops's JSON store writes every key and value (json.Indent then changes no string). Most names
// need no escaping and are copied as they are; any other string goes through json.Marshal
// itself, with its HTML-safe escapes, U+2028 and U+2029 escaped and invalid UTF-8 replaced.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x80 || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
			quoted, _ := json.Marshal(s) // a string always marshals
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
