package domain

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Envelope carries the optional fields of the seed system's envelope form,
// {"job_parameters_b64": ..., "trace_id", "run_id", "done_endpt"}. It is empty when the body was
// a plain job or the envelope left the fields out.
type Envelope struct {
	TraceID      string
	RunID        string
	DoneEndpoint string
}

const envelopeJobField = "job_parameters_b64"

// maxNesting bounds how deep a body may nest; a job needs four levels.
const maxNesting = 32

// DecodeJob reads a job from JSON or YAML (a body whose first non-space byte is '{' is read as
// JSON, and as a YAML flow mapping only if it is not JSON), or from the envelope form whose
// job_parameters_b64 holds the job JSON in base64. Decoding is strict: an unknown field, a
// duplicate key or a value of the wrong type is a problem naming its path. Every error is a
// *ValidationError listing all such problems.
//
// When the body was read but some of its fields did not decode, the error's Partial is set and
// the returned job (and envelope) hold every field that did: a caller should still normalize and
// validate that job and report its problems with these (JoinProblems), so that a typo does not
// hide a cycle. A body that cannot be read as a job at all returns an empty job.
//
// The body cannot set Job.NoSecrets or Job.BaseDir; the engine sets them. DecodeJob fills no
// defaults: call Normalize, then Validate.
func DecodeJob(body []byte) (Job, Envelope, error) {
	if len(body) > MaxBodyBytes {
		return Job{}, Envelope{}, reject("", fmt.Sprintf("the body is %d bytes, over the limit of %d: split the job into smaller jobs", len(body), MaxBodyBytes))
	}
	root, isYAML, err := parseBody(body)
	if err != nil {
		return Job{}, Envelope{}, reject("", err.Error())
	}
	if root.kind == kindObject && root.has(envelopeJobField) {
		return decodeEnvelope(root, isYAML)
	}
	d := jobDecoder{yaml: isYAML}
	var j Job
	d.decode("", root, reflect.ValueOf(&j).Elem())
	return j, Envelope{}, d.partial()
}

// partial is the error of a body that was read but did not decode whole, or nil.
func (d *jobDecoder) partial() error {
	if len(d.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: d.problems, Partial: true}
}

func decodeEnvelope(root value, isYAML bool) (Job, Envelope, error) {
	d := jobDecoder{yaml: isYAML}
	var env Envelope
	var inner []byte
	seen := map[string]bool{}
	for _, m := range root.fields {
		if seen[m.key] {
			d.add(m.key, "given twice: keep one")
			continue
		}
		seen[m.key] = true
		var dst *string
		switch m.key {
		case envelopeJobField:
			var b64 string
			if d.decode(m.key, m.value, reflect.ValueOf(&b64).Elem()) {
				b, err := decodeBase64(b64)
				if err != nil {
					d.add(m.key, "not valid base64: encode the job JSON with standard base64")
					continue
				}
				inner = b
			}
			continue
		case "trace_id":
			dst = &env.TraceID
		case "run_id":
			dst = &env.RunID
		case "done_endpt":
			dst = &env.DoneEndpoint
		default:
			d.add(m.key, "unknown field: an envelope holds only job_parameters_b64, trace_id, run_id and done_endpt; put job fields inside the encoded job")
			continue
		}
		d.decode(m.key, m.value, reflect.ValueOf(dst).Elem())
	}
	// The envelope's own problems do not stop the job inside it from being read: they are
	// reported with the job's.
	unread := func(message string) (Job, Envelope, error) {
		d.add(envelopeJobField, message)
		return Job{}, Envelope{}, &ValidationError{Problems: d.problems}
	}
	switch {
	case !seen[envelopeJobField] || len(d.problems) > 0 && inner == nil:
		return Job{}, Envelope{}, &ValidationError{Problems: d.problems}
	case len(bytes.TrimSpace(inner)) == 0:
		return unread("the encoded job is empty: base64-encode the job JSON")
	}
	tree, err := parseJSON(inner)
	if err != nil {
		return unread("the encoded job is not valid JSON: " + err.Error())
	}
	// Paths inside the encoded job are the job's own field names, as Validate reports them.
	d.yaml = false
	var j Job
	d.decode("", tree, reflect.ValueOf(&j).Elem())
	return j, env, d.partial()
}

// decodeBase64 accepts the standard and URL alphabets, padded or not, and ignores line breaks,
// which base64 tools insert every 76 characters.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

func reject(path, message string) *ValidationError {
	return &ValidationError{Problems: []Problem{{Path: path, Message: message}}}
}

// kind is the shape of a value in a body, whichever syntax it came in.
type kind int

const (
	kindNull kind = iota
	kindString
	kindNumber
	kindBool
	kindObject
	kindList
)

// value is a body parsed but not yet typed. JSON and YAML both parse into it, so one typed
// decoder gives both syntaxes the same strictness and the same error paths. Objects keep their
// keys in body order so problems are reported in the order the author wrote them.
type value struct {
	kind   kind
	text   string // a string's value; a number or boolean as written
	fields []member
	items  []value
}

type member struct {
	key   string
	value value
}

func (v value) has(key string) bool {
	for _, m := range v.fields {
		if m.key == key {
			return true
		}
	}
	return false
}

// parseBody parses JSON or YAML and reports which it was.
func parseBody(body []byte) (v value, isYAML bool, err error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a byte order mark some editors write
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return value{}, false, errors.New("the body is empty: send a job as JSON or YAML")
	}
	if trimmed[0] == '{' {
		if v, err = parseJSON(body); err == nil {
			return v, false, nil
		}
		// A YAML flow mapping ({username: ana, ...}) starts the same way.
		if y, yerr := parseYAML(body); yerr == nil {
			return y, true, nil
		}
		return value{}, false, fmt.Errorf("not valid JSON: %w", err)
	}
	if v, err = parseYAML(body); err != nil {
		return value{}, true, fmt.Errorf("not valid YAML: %w", err)
	}
	return v, true, nil
}

func parseJSON(body []byte) (value, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	v, err := readJSON(dec, 0)
	if err == nil {
		if _, err = dec.Token(); err == io.EOF {
			return v, nil
		}
		if err == nil {
			err = errors.New("more data after the job object")
		}
	}
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		line, col := lineColumn(body, syntax.Offset)
		return value{}, fmt.Errorf("line %d, column %d: %w", line, col, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return value{}, errors.New("the JSON ends before the job does")
	}
	return value{}, err
}

func readJSON(dec *json.Decoder, depth int) (value, error) {
	if depth > maxNesting {
		return value{}, fmt.Errorf("nested deeper than %d levels", maxNesting)
	}
	tok, err := dec.Token()
	if err != nil {
		return value{}, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			v := value{kind: kindObject}
			for dec.More() {
				keyTok, err := dec.Token()
				if err != nil {
					return value{}, err
				}
				elem, err := readJSON(dec, depth+1)
				if err != nil {
					return value{}, err
				}
				v.fields = append(v.fields, member{key: keyTok.(string), value: elem})
			}
			_, err := dec.Token() // the closing brace
			return v, err
		}
		v := value{kind: kindList}
		for dec.More() {
			elem, err := readJSON(dec, depth+1)
			if err != nil {
				return value{}, err
			}
			v.items = append(v.items, elem)
		}
		_, err := dec.Token()
		return v, err
	case string:
		return value{kind: kindString, text: t}, nil
	case json.Number:
		return value{kind: kindNumber, text: t.String()}, nil
	case bool:
		return value{kind: kindBool, text: strconv.FormatBool(t)}, nil
	}
	return value{kind: kindNull}, nil
}

func lineColumn(body []byte, offset int64) (line, col int) {
	if offset > int64(len(body)) {
		offset = int64(len(body))
	}
	before := body[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	// The offset counts the bytes read before the offending one; columns count from 1.
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

func parseYAML(body []byte) (value, error) {
	dec := yaml.NewDecoder(bytes.NewReader(body))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return value{}, errors.New("the body holds no document")
		}
		return value{}, err
	}
	var next yaml.Node
	if err := dec.Decode(&next); err != io.EOF {
		if err != nil {
			return value{}, err
		}
		return value{}, errors.New("more than one document: send one job per body")
	}
	// Aliases are expanded, so a small body could otherwise stand for a huge tree; no body
	// without aliases comes near this budget.
	c := yamlConverter{budget: 2*len(body) + 1024}
	return c.convert(&doc, 0)
}

type yamlConverter struct{ budget int }

func (c *yamlConverter) convert(n *yaml.Node, depth int) (value, error) {
	if depth > maxNesting {
		return value{}, fmt.Errorf("line %d: nested deeper than %d levels", n.Line, maxNesting)
	}
	if c.budget--; c.budget < 0 {
		return value{}, errors.New("aliases expand into too many values: write the job out without them")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return value{kind: kindNull}, nil
		}
		return c.convert(n.Content[0], depth)
	case yaml.AliasNode:
		return c.convert(n.Alias, depth+1)
	case yaml.SequenceNode:
		v := value{kind: kindList}
		for _, item := range n.Content {
			elem, err := c.convert(item, depth+1)
			if err != nil {
				return value{}, err
			}
			v.items = append(v.items, elem)
		}
		return v, nil
	case yaml.MappingNode:
		return c.mapping(n, depth)
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return value{kind: kindNull}, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return value{}, err
			}
			return value{kind: kindBool, text: strconv.FormatBool(b)}, nil
		case "!!int", "!!float":
			return value{kind: kindNumber, text: n.Value}, nil
		}
		return value{kind: kindString, text: n.Value}, nil
	}
	return value{}, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// mapping converts a YAML mapping, applying merge keys ("<<: *defaults") the way YAML 1.1
// defines them: keys written in the mapping win over merged ones, and of several merged
// mappings the earlier wins.
func (c *yamlConverter) mapping(n *yaml.Node, depth int) (value, error) {
	v := value{kind: kindObject}
	var merged []member
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			sources := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				sources = val.Content
			}
			for _, src := range sources {
				m, err := c.convert(src, depth+1)
				if err != nil {
					return value{}, err
				}
				if m.kind != kindObject {
					return value{}, fmt.Errorf("line %d: << merges only mappings", k.Line)
				}
				merged = append(merged, m.fields...)
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return value{}, fmt.Errorf("line %d: a key must be a plain name", k.Line)
		}
		elem, err := c.convert(val, depth+1)
		if err != nil {
			return value{}, err
		}
		v.fields = append(v.fields, member{key: k.Value, value: elem})
	}
	for _, m := range merged {
		if !v.has(m.key) {
			v.fields = append(v.fields, m)
		}
	}
	return v, nil
}

// jobDecoder types a parsed body into a Job by the fields' json names, collecting every problem
// instead of stopping at the first.
type jobDecoder struct {
	problems []Problem
	yaml     bool // the body was YAML, whose pitfalls deserve a hint
}

func (d *jobDecoder) add(path, message string) {
	d.problems = append(d.problems, Problem{Path: path, Message: message})
}

var (
	jobType   = reflect.TypeFor[Job]()
	orderType = reflect.TypeFor[Order]()
)

// decode stores v into dst and reports whether it could.
func (d *jobDecoder) decode(path string, v value, dst reflect.Value) bool {
	if v.kind == kindNull {
		dst.SetZero()
		return true
	}
	switch dst.Kind() {
	case reflect.Struct:
		if v.kind != kindObject {
			return d.mismatch(path, "an object of fields", v)
		}
		d.decodeStruct(path, v, dst)
		return true
	case reflect.Pointer:
		elem := reflect.New(dst.Type().Elem())
		if d.decode(path, v, elem.Elem()) {
			dst.Set(elem)
			return true
		}
		return false
	case reflect.Slice:
		if v.kind != kindList {
			return d.mismatch(path, "a list", v)
		}
		s := reflect.MakeSlice(dst.Type(), len(v.items), len(v.items))
		for i, item := range v.items {
			d.decode(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i))
		}
		dst.Set(s)
		return true
	case reflect.Map:
		if v.kind != kindObject {
			return d.mismatch(path, "an object of NAME: value", v)
		}
		m := reflect.MakeMapWithSize(dst.Type(), len(v.fields))
		seen := map[string]bool{}
		for _, f := range v.fields {
			p := mapPath(path, f.key)
			if seen[f.key] {
				d.add(p, "given twice: keep one")
				continue
			}
			seen[f.key] = true
			// Map values are plain text; a YAML author writes PORT: 8080 and means "8080".
			if f.value.kind == kindNumber || f.value.kind == kindBool {
				f.value.kind = kindString
			}
			elem := reflect.New(dst.Type().Elem()).Elem()
			if d.decode(p, f.value, elem) {
				m.SetMapIndex(reflect.ValueOf(f.key), elem)
			}
		}
		dst.Set(m)
		return true
	case reflect.String:
		if v.kind == kindObject && d.yaml && len(v.fields) == 1 {
			// - echo "a: b" is a mapping in YAML, the commonest surprise in a list of commands.
			d.add(path, `want a string, got a mapping: in YAML an unquoted ": " starts a mapping, so quote the whole string`)
			return false
		}
		if v.kind != kindString {
			return d.mismatch(path, "a string", v)
		}
		dst.SetString(v.text)
		return true
	case reflect.Int:
		if v.kind != kindNumber {
			return d.mismatch(path, "a number", v)
		}
		n, ok := wholeNumber(v.text)
		if !ok {
			d.add(path, fmt.Sprintf("want a whole number, got %s", v.text))
			return false
		}
		dst.SetInt(n)
		return true
	case reflect.Bool:
		if v.kind != kindBool {
			return d.mismatch(path, "true or false", v)
		}
		dst.SetBool(v.text == "true")
		return true
	}
	d.add(path, "cannot be decoded") // unreachable while Job has only the kinds above
	return false
}

func (d *jobDecoder) decodeStruct(path string, v value, dst reflect.Value) {
	fields := jsonFields(dst.Type())
	seen := map[string]bool{}
	for _, m := range v.fields {
		p := joinPath(path, m.key)
		if seen[m.key] {
			d.add(p, "given twice: keep one")
			continue
		}
		seen[m.key] = true
		i, ok := fields[m.key]
		if !ok {
			d.add(p, unknownField(dst.Type(), m.key, fields))
			continue
		}
		d.decode(p, m.value, dst.Field(i))
	}
}

// jsonFields maps the wire names of t's fields to their indexes. Fields tagged yaml:"-" are set
// by the engine and stored with the job, but no body may set them. The map is made once per
// type (reading the tags of every order's fields was half the time of decoding a large job);
// callers must not change it.
func jsonFields(t reflect.Type) map[string]int {
	if f, ok := fieldsOf.Load(t); ok {
		return f.(map[string]int)
	}
	f, _ := fieldsOf.LoadOrStore(t, makeJSONFields(t))
	return f.(map[string]int)
}

var fieldsOf sync.Map // reflect.Type to map[string]int

func makeJSONFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("yaml") == "-" {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

func unknownField(t reflect.Type, key string, fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	if s := closest(key, names); s != "" {
		return fmt.Sprintf("unknown field (did you mean %q?)", s)
	}
	switch {
	case t == jobType && hasField(orderType, key):
		return "unknown field: " + key + " belongs on each order, under orders"
	case t == orderType && hasField(jobType, key):
		return "unknown field: " + key + " is set once for the whole job, at the top level"
	}
	return "unknown field"
}

func hasField(t reflect.Type, key string) bool {
	_, ok := jsonFields(t)[key]
	return ok
}

func (d *jobDecoder) mismatch(path, want string, got value) bool {
	d.add(path, fmt.Sprintf("want %s, got %s", want, describe(got)))
	return false
}

// describe names what a value is. It quotes a string only when it is short, since a misplaced
// string may be something its author would not want repeated in a log.
func describe(v value) string {
	switch v.kind {
	case kindString:
		if utf8.RuneCountInString(v.text) <= 24 {
			return strconv.Quote(v.text)
		}
		return "a string"
	case kindNumber, kindBool:
		return v.text
	case kindObject:
		return "an object"
	case kindList:
		return "a list"
	}
	return "null"
}

// wholeNumber reads a JSON or YAML number (YAML allows 1_000, 0x1f, 0o17) that has no fraction.
func wholeNumber(text string) (int64, bool) {
	if n, err := strconv.ParseInt(text, 0, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(text, "_", ""), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapPath names a map entry: env_vars.TF_VAR_region, or env_vars["a b"] when the key is not a
// plain name.
func mapPath(path, key string) string {
	if envNamePattern.MatchString(key) {
		return joinPath(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// closest returns the candidate a misspelt name most likely meant, or "" when none is close:
// names that differ only in case or in '-' versus '_', or within a small edit distance.
func closest(name string, candidates []string) string {
	fold := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", 0
	for _, c := range candidates {
		var dist int
		if fold(c) == fold(name) {
			dist = 0
		} else {
			dist = editDistance(strings.ToLower(name), c)
			if dist > 2 || 2*dist >= len(c) {
				continue
			}
		}
		if best == "" || dist < bestDist || (dist == bestDist && c < best) {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b, in bytes: the
// Levenshtein distance with the swap of two neighbours counted as one edit, the commonest typo.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
