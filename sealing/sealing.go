// Package sealing seals an order's environment into a SOPS document encrypted for age recipients,
// and opens it again with an age identity.
//
// A sealed bundle is a standard SOPS JSON document: variable names stay in clear, every value is
// encrypted, and the "sops" metadata lists the age recipients and the MAC. Anyone holding one of
// the recipients' identities can open it with the sops command (`SOPS_AGE_KEY=... sops -d`).
//
// A Sealer seals many documents for the same recipients with one wrapped data key, and an
// Opener opens many documents keeping the data keys it unwrapped: wrapping and unwrapping (age's
// X25519) are most of the cost of Seal and Open.
//
// Seal writes its documents itself, byte for byte as sops writes them, and Open reads the
// documents of that shape itself, to the result sops gives: sops's tree, JSON store and
// metadata decoding were most of what remained of the cost. Open leaves every document of
// another shape to sops.
//
// Open (and an Opener) never reads identities from the process environment or the disk: it uses
// only the identity it is given, so many runs can open their bundles at once. No error of this
// package contains a value of the environment or an identity.
//
// This is the only package of iac-ci that imports SOPS, which is slow to compile; keep it so.
package sealing

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	sopsjson "github.com/getsops/sops/v3/stores/json"

	"github.com/iac-ci/iac-ci/domain"
)

var (
	// ErrRecipient: a recipient is not an age public key.
	ErrRecipient = errors.New("not an age X25519 or post-quantum public key (age1...); plugin and ssh recipients are refused")
	// ErrIdentity: an identity is not an age secret key.
	ErrIdentity = errors.New("not an age secret key (AGE-SECRET-KEY-1...)")
	// ErrWrongKey: the identity is not one of the bundle's recipients.
	ErrWrongKey = errors.New("the identity is not a recipient of the bundle")
	// ErrMalformed: the document is not a SOPS document this package can open, or it was
	// tampered with (its MAC does not match).
	ErrMalformed = errors.New("malformed or tampered bundle")
)

// Key is an age key pair: Identity (AGE-SECRET-KEY-1...) opens what was sealed for Recipient
// (age1...).
type Key struct {
	Identity  string
	Recipient string
}

// NewKey generates a fresh X25519 age key pair.
func NewKey() (Key, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return Key{}, fmt.Errorf("generate age key: %w", err)
	}
	return Key{Identity: id.String(), Recipient: id.Recipient().String()}, nil
}

// everyKey is an encrypted_regex that matches every name. Stating a rule explicitly matters:
// a document without one is read by sops as if it said unencrypted_suffix "_unencrypted", which
// would leave a variable named FOO_unencrypted unreadable (sops would take its ciphertext for
// its value and fail the MAC) — and sealing with that default would leave it in clear.
const everyKey = "^"

// Seal encrypts env for every recipient (age public keys); any one recipient's identity opens
// the result. Variables are written in name order. It wraps a fresh data key for this document
// alone: to seal many documents for the same recipients, use a Sealer.
func Seal(env map[string]string, recipients ...string) ([]byte, error) {
	s, err := NewSealer(recipients...)
	if err != nil {
		return nil, err
	}
	return s.Seal(env)
}

// Sealer seals documents for a fixed set of recipients with one SOPS data key, generated and
// wrapped for the recipients once, in NewSealer. Each document it makes is a standard SOPS
// document on its own (its metadata carries the wrapped data key; its values get fresh IVs and
// it gets its own MAC), but wrapping the key is the costly part of sealing (age's X25519), and a
// Sealer does it once instead of once per document.
//
// Seal writes each document itself rather than through sops's tree and JSON store, which spent
// most of a document's time reflecting over the metadata: byte for byte what `sops encrypt`
// writes for the same values, IVs and time (sops's JSON layout with an indent of 2, the values
// encrypted and the MAC computed and encrypted as sops's Tree.Encrypt does), so sops and Open
// read it as any other SOPS document. There is no case it leaves to sops.
//
// Every document of one Sealer shares its data key: whoever can open one of them can open all
// of them, and the data key of one opened document decrypts the values of every other. Use one
// Sealer only for documents meant for exactly the same recipients — such as the orders of one
// run that add no sops_key of their own — and a Sealer of its own for a document that one more
// recipient may open.
//
// A Sealer is safe for concurrent use.
type Sealer struct {
	dataKey []byte
	// wrapped holds each recipient with the data key wrapped for it, in the order NewSealer was
	// given them.
	wrapped []wrappedKey
	// metadataHead is the start of every document's "sops" metadata, the same for all of them:
	// the age recipients with their wrapped keys, the encryption rule, and the key of the
	// last-modified time (see sealAt).
	metadataHead []byte
}

// wrappedKey is a data key wrapped for an age recipient: one entry of a document's sops.age.
type wrappedKey struct {
	recipient string
	enc       string
}

// NewSealer validates the recipients (age public keys) as Seal does, generates one data key and
// wraps it for every recipient.
func NewSealer(recipients ...string) (*Sealer, error) {
	if len(recipients) == 0 {
		return nil, errors.New("seal: at least one recipient is needed")
	}
	group := make(sops.KeyGroup, 0, len(recipients))
	for i, r := range recipients {
		// Never echo r: a caller may have pasted a secret key where a public key belongs.
		if !domain.NativeAgeRecipient(r) {
			return nil, fmt.Errorf("seal: recipient %d: %w", i+1, ErrRecipient)
		}
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return nil, fmt.Errorf("seal: recipient %d: %w", i+1, ErrRecipient)
		}
		group = append(group, mk)
	}
	// The same step as `sops encrypt` (cmd/sops/encrypt.go in github.com/getsops/sops/v3): a
	// random data key wrapped for each recipient. Wrapping needs only public keys, so sops's
	// local key service serves.
	tree := sops.Tree{Metadata: sops.Metadata{KeyGroups: []sops.KeyGroup{group}}}
	dataKey, errs := tree.GenerateDataKey()
	if len(errs) > 0 {
		return nil, fmt.Errorf("seal: wrap data key: %w", errors.Join(errs...))
	}
	s := &Sealer{dataKey: dataKey, wrapped: make([]wrappedKey, len(group))}
	for i, k := range group {
		mk := k.(*sopsage.MasterKey)
		if mk.EncryptedKey == "" {
			return nil, fmt.Errorf("seal: recipient %d: the data key was not wrapped", i+1)
		}
		s.wrapped[i] = wrappedKey{recipient: mk.Recipient, enc: mk.EncryptedKey}
	}
	s.metadataHead = metadataHead(s.wrapped)
	return s, nil
}

// Recipients returns the recipients s seals for, in the order NewSealer was given them.
func (s *Sealer) Recipients() []string {
	rs := make([]string, len(s.wrapped))
	for i, k := range s.wrapped {
		rs[i] = k.recipient
	}
	return rs
}

// Seal encrypts env with the Sealer's data key into a document that any of its recipients'
// identities opens. Variables are written in name order.
func (s *Sealer) Seal(env map[string]string) ([]byte, error) {
	return s.sealAt(env, time.Now())
}

// sortedNames returns the names of env in the order Seal writes them, refusing the names a SOPS
// document cannot carry as a variable.
func sortedNames(env map[string]string) ([]string, error) {
	names := make([]string, 0, len(env))
	for name := range env {
		switch name {
		case "":
			return nil, errors.New("seal: a variable has an empty name")
		case "sops":
			return nil, errors.New(`seal: a variable may not be named "sops", which SOPS reserves for its metadata`)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Open decrypts a bundle made by Seal (or any flat SOPS JSON document sealed for age) with one
// age identity, checks its MAC, and returns the variables. Numbers and booleans a person may
// have written into a document by hand come back in their JSON spelling. To open many bundles,
// use an Opener, which keeps what it unwrapped.
//
// A document of the shape Seal writes (which is also what `sops encrypt` writes for a flat
// document of strings under encrypted_regex "^") is read and decrypted on a fast path, without
// sops's JSON store and its metadata decoding; any other, with any other key source, rule,
// value type or spelling, goes to sops (see parseSealed). Either way the result and the error
// are the ones sops gives.
func Open(doc []byte, identity string) (map[string]string, error) {
	id, err := parseIdentity(identity)
	if err != nil {
		return nil, err
	}
	return open(doc, identityService{ids: sopsage.ParsedIdentities{id}})
}

func parseIdentity(identity string) (*age.X25519Identity, error) {
	id, err := age.ParseX25519Identity(strings.TrimSpace(identity))
	if err != nil {
		// age's message may quote the input; the identity must never reach an error.
		return nil, fmt.Errorf("open bundle: %w", ErrIdentity)
	}
	return id, nil
}

// open opens doc with the data key keys unwraps: on the fast path when doc has the shape Seal
// writes (see parseSealed), and with sops otherwise. Whichever path it takes, the values are
// decrypted and the MAC checked here, so a document that was tampered with fails alike.
func open(doc []byte, keys keyUnwrapper) (map[string]string, error) {
	sealed, ok := parseSealed(doc)
	if !ok {
		return openSops(doc, keys)
	}
	dataKey, ok := sealed.dataKey(keys)
	if !ok {
		return nil, fmt.Errorf("open bundle: %w", ErrWrongKey)
	}
	cipher, err := newValueCipher(dataKey)
	if err != nil {
		// Not an AES key, which no Sealer makes: sops says how such a document fails.
		return openSops(doc, keys)
	}
	fastOpens.Add(1)
	return sealed.open(cipher)
}

// openSops opens doc with sops's JSON store and tree, with the data key svc unwraps: the path
// for every document that is not of the shape Seal writes, whose reading is left to sops.
func openSops(doc []byte, svc keyservice.KeyServiceClient) (map[string]string, error) {
	tree, err := jsonStore().LoadEncryptedFile(doc)
	if err != nil {
		// The loader may quote parts of the document; a hand-made document may hold cleartext.
		return nil, fmt.Errorf("open bundle: read SOPS document: %w", ErrMalformed)
	}
	dataKey, err := tree.Metadata.GetDataKeyWithKeyServices([]keyservice.KeyServiceClient{svc}, nil)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", ErrWrongKey)
	}
	cipher := stringCipher{aes.NewCipher()}
	mac, err := tree.Decrypt(dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("open bundle: decrypt values: %w", ErrMalformed)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey,
		tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("open bundle: decrypt mac: %w", ErrMalformed)
	}
	storedMAC, ok := stored.(string)
	if !ok || subtle.ConstantTimeCompare([]byte(storedMAC), []byte(mac)) != 1 {
		return nil, fmt.Errorf("open bundle: mac mismatch: %w", ErrMalformed)
	}

	if len(tree.Branches) != 1 {
		return nil, fmt.Errorf("open bundle: %d documents, want 1: %w", len(tree.Branches), ErrMalformed)
	}
	env := make(map[string]string, len(tree.Branches[0]))
	for _, item := range tree.Branches[0] {
		name, ok := item.Key.(string)
		if !ok {
			continue // a comment; JSON has none, but a hand-edited document might
		}
		v, ok := scalar(item.Value)
		if !ok {
			return nil, fmt.Errorf("open bundle: variable %q is not a string, number or boolean: %w", name, ErrMalformed)
		}
		env[name] = v
	}
	return env, nil
}

func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int:
		return strconv.Itoa(v), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

func jsonStore() *sopsjson.Store {
	return sopsjson.NewStore(&config.JSONStoreConfig{Indent: 2})
}
