package sealing

import (
	"bytes"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// fastOpens counts the documents opened on the fast path, so that the tests can tell it is
// taken: its results are meant to be indistinguishable from sops's.
var fastOpens atomic.Uint64

// sealedDoc is a document of the shape Seal writes, read without sops: sops's JSON store and
// its metadata decoding (mapstructure's reflection) took most of the time Open spent on a
// document. parseSealed accepts only documents that sops reads in one obvious way, so opening
// one here gives what sops gives.
type sealedDoc struct {
	// names and values are the variables in document order, which the MAC follows; a value is
	// the zero encryptedString when it is empty, which sops leaves unencrypted.
	names  []string
	values []encryptedString
	// recipients are the age entries, in the order sops tries them.
	recipients []wrappedKey
	// lastModified is the last-modified time as sops formats it after parsing it: the MAC's
	// additional data.
	lastModified string
	mac          encryptedString
}

// parseSealed reads doc if it has exactly the shape Seal writes, and reports whether it has:
//   - a JSON object and nothing after it but white space;
//   - every member but "sops" a string, empty or encrypted as a string (parseEncryptedString);
//   - one "sops" object with exactly the members age, encrypted_regex, lastmodified, mac and
//     version: age a non-empty list of objects with exactly the members recipient and enc, both
//     strings; encrypted_regex "^"; lastmodified a time in RFC 3339; mac an encrypted string;
//     version a string.
//
// No other key source (kms, pgp, ...), no key groups or Shamir threshold, no other encryption
// rule, no number, boolean, null, list or object value: anything else is left to sops, whatever
// it makes of it.
//
// It reads what encoding/json (which sops's JSON store reads with) reads from the same text:
// the same strings, the members in the same order, the last of two members of one name in an
// object. It takes no more of JSON than this shape needs, and has encoding/json unquote every
// string that is not plain (see docReader.string); the tests hold it to a reading with
// encoding/json's own decoder.
func parseSealed(doc []byte) (sealedDoc, bool) {
	r := docReader{doc: doc}
	if !r.consume('{') {
		return sealedDoc{}, false
	}
	var d sealedDoc
	metadata := false
	for more := !r.consume('}'); more; {
		name, ok := r.memberName()
		if !ok {
			return sealedDoc{}, false
		}
		if name == "sops" {
			if metadata || !r.metadata(&d) {
				return sealedDoc{}, false
			}
			metadata = true
		} else {
			value, ok := r.string()
			if !ok {
				return sealedDoc{}, false
			}
			var v encryptedString
			if value != "" {
				if v, ok = parseEncryptedString(value); !ok {
					return sealedDoc{}, false
				}
			}
			// A name given twice stays twice, as in sops's tree: both values count in the
			// MAC, and the last one is the variable's value.
			d.names = append(d.names, name)
			d.values = append(d.values, v)
		}
		if more, ok = r.next('}'); !ok {
			return sealedDoc{}, false
		}
	}
	r.skipSpace()
	return d, metadata && r.pos == len(doc)
}

// The members of the "sops" object parseSealed takes, each a bit of a set.
const (
	hasAge = 1 << iota
	hasEncryptedRegex
	hasLastModified
	hasMAC
	hasVersion
	hasAllMetadata = hasAge | hasEncryptedRegex | hasLastModified | hasMAC | hasVersion
)

// metadata reads the "sops" object into d if it has the shape parseSealed describes.
func (r *docReader) metadata(d *sealedDoc) bool {
	if !r.consume('{') || r.consume('}') {
		return false
	}
	has := 0
	var regex, lastModified, mac string
	for more := true; more; {
		name, ok := r.memberName()
		if !ok {
			return false
		}
		switch name {
		case "age":
			d.recipients, ok = r.ageEntries()
			has |= hasAge
		case "encrypted_regex":
			regex, ok = r.string()
			has |= hasEncryptedRegex
		case "lastmodified":
			lastModified, ok = r.string()
			has |= hasLastModified
		case "mac":
			mac, ok = r.string()
			has |= hasMAC
		case "version":
			_, ok = r.string()
			has |= hasVersion
		default:
			return false
		}
		if !ok {
			return false
		}
		if more, ok = r.next('}'); !ok {
			return false
		}
	}
	if has != hasAllMetadata || regex != everyKey {
		return false
	}
	var ok bool
	if d.mac, ok = parseEncryptedString(mac); !ok {
		return false
	}
	// sops keeps the time it parsed and formats it again for the MAC's additional data.
	t, err := time.Parse(time.RFC3339, lastModified)
	if err != nil {
		return false
	}
	d.lastModified = t.Format(time.RFC3339)
	return true
}

// ageEntries reads the list of sops.age: at least one object of exactly a recipient and an enc.
func (r *docReader) ageEntries() ([]wrappedKey, bool) {
	if !r.consume('[') || r.consume(']') {
		return nil, false
	}
	var entries []wrappedKey
	for more := true; more; {
		if !r.consume('{') || r.consume('}') {
			return nil, false
		}
		const hasRecipient, hasEnc = 1, 2
		has := 0
		var k wrappedKey
		for more := true; more; {
			name, ok := r.memberName()
			if !ok {
				return nil, false
			}
			switch name {
			case "recipient":
				k.recipient, ok = r.string()
				has |= hasRecipient
			case "enc":
				k.enc, ok = r.string()
				has |= hasEnc
			default:
				return nil, false
			}
			if !ok {
				return nil, false
			}
			if more, ok = r.next('}'); !ok {
				return nil, false
			}
		}
		if has != hasRecipient|hasEnc {
			return nil, false
		}
		entries = append(entries, k)
		var ok bool
		if more, ok = r.next(']'); !ok {
			return nil, false
		}
	}
	return entries, true
}

// docReader reads the part of JSON (RFC 8259) that parseSealed takes: objects, lists and
// strings, with white space between them.
type docReader struct {
	doc []byte
	pos int
}

// skipSpace skips JSON's white space.
func (r *docReader) skipSpace() {
	for r.pos < len(r.doc) {
		switch r.doc[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// consume skips white space and then b, reporting whether b was there; if it was not, nothing
// but the white space is read.
func (r *docReader) consume(b byte) bool {
	r.skipSpace()
	if r.pos < len(r.doc) && r.doc[r.pos] == b {
		r.pos++
		return true
	}
	return false
}

// next reads what follows a member of an object or an item of a list: a comma, and more is
// true, or the closing bracket, and more is false. ok is false for anything else.
func (r *docReader) next(closing byte) (more, ok bool) {
	if r.consume(',') {
		return true, true
	}
	return false, r.consume(closing)
}

// memberName reads an object member's name and the colon after it.
func (r *docReader) memberName() (string, bool) {
	name, ok := r.string()
	return name, ok && r.consume(':')
}

// string reads a JSON string. A plain one (no escape, no control character, valid UTF-8), such
// as every name and value Seal writes, is taken as it stands, which is what encoding/json makes
// of it; any other goes through encoding/json itself, so that its escapes, and any invalid
// UTF-8 in it, come out as sops reads them. ok is false where there is no valid JSON string.
func (r *docReader) string() (string, bool) {
	if !r.consume('"') {
		return "", false
	}
	start := r.pos
	if end := bytes.IndexByte(r.doc[start:], '"'); end >= 0 {
		content := r.doc[start : start+end]
		if bytes.IndexByte(content, '\\') < 0 && !hasControl(content) && utf8.Valid(content) {
			r.pos = start + end + 1
			return string(content), true
		}
	}
	// Find the closing quote, stepping over what each backslash escapes (never a string's end),
	// and have encoding/json read the string.
	for ; r.pos < len(r.doc); r.pos++ {
		switch r.doc[r.pos] {
		case '"':
			r.pos++
			var s string
			if err := json.Unmarshal(r.doc[start-1:r.pos], &s); err != nil {
				return "", false
			}
			return s, true
		case '\\':
			r.pos++
		}
	}
	return "", false
}

// hasControl reports whether b holds a control character, which a JSON string may hold only
// escaped.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// dataKey unwraps the document's data key with keys, trying the age entries in turn as sops
// does (GetDataKeyWithKeyServices): the first that unwraps to a key gives it.
func (d sealedDoc) dataKey(keys keyUnwrapper) ([]byte, bool) {
	for _, k := range d.recipients {
		if key, err := keys.unwrapDataKey(k.recipient, []byte(k.enc)); err == nil && key != nil {
			return key, true
		}
	}
	return nil, false
}

// open decrypts the values, recomputes the MAC over them as sops's Tree.Decrypt does and
// compares it with the document's, and returns the variables; its errors are those of the
// sops-based open, at the same steps.
func (d sealedDoc) open(cipher valueCipher) (map[string]string, error) {
	mac := sha512.New()
	env := make(map[string]string, len(d.names))
	for i, name := range d.names {
		var value string
		if d.values[i] != (encryptedString{}) {
			var ok bool
			if value, ok = cipher.decrypt(d.values[i], name+":"); !ok {
				return nil, fmt.Errorf("open bundle: decrypt values: %w", ErrMalformed)
			}
		}
		mac.Write([]byte(value))
		env[name] = value
	}
	stored, ok := cipher.decrypt(d.mac, d.lastModified)
	if !ok {
		return nil, fmt.Errorf("open bundle: decrypt mac: %w", ErrMalformed)
	}
	if subtle.ConstantTimeCompare([]byte(stored), fmt.Appendf(nil, "%X", mac.Sum(nil))) != 1 {
		return nil, fmt.Errorf("open bundle: mac mismatch: %w", ErrMalformed)
	}
	return env, nil
}
