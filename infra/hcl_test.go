package infra_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// A reader of the Terraform in this folder, as text: blocks with their labels, attributes with
// their expressions kept as written, and object literals ({ k = v, ... }) read the same way.
// It knows the syntax these files use (HCL's blocks, attributes, strings with ${...}, heredocs
// and comments), not Terraform's semantics; it fails on what it cannot read, so a file it
// misreads makes the tests fail, never pass.

// block is a block, or the body of an object literal.
type block struct {
	typ    string
	labels []string
	attrs  map[string]string // raw expressions
	blocks []*block
}

func (b *block) all(typ string) []*block {
	var out []*block
	for _, c := range b.blocks {
		if c.typ == typ {
			out = append(out, c)
		}
	}
	return out
}

func (b *block) one(typ string) (*block, error) {
	bs := b.all(typ)
	if len(bs) != 1 {
		return nil, fmt.Errorf("want one %s block, got %d", typ, len(bs))
	}
	return bs[0], nil
}

type parser struct {
	src  []rune
	pos  int
	file string
}

func (p *parser) errorf(format string, a ...any) error {
	line := 1 + strings.Count(string(p.src[:min(p.pos, len(p.src))]), "\n")
	return fmt.Errorf("%s:%d: %s", p.file, line, fmt.Sprintf(format, a...))
}

func (p *parser) peek() rune {
	if p.pos >= len(p.src) {
		return 0
	}
	return p.src[p.pos]
}

func (p *parser) at(s string) bool {
	return strings.HasPrefix(string(p.src[p.pos:min(p.pos+len(s), len(p.src))]), s)
}

// space skips blanks and comments, and newlines when newlines is set.
func (p *parser) space(newlines bool) {
	for p.pos < len(p.src) {
		switch c := p.peek(); {
		case c == '\n' && !newlines:
			return
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.pos++
		case c == '#' || p.at("//"):
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case p.at("/*"):
			end := strings.Index(string(p.src[p.pos+2:]), "*/")
			if end < 0 {
				p.pos = len(p.src)
				return
			}
			p.pos += 2 + len([]rune(string(p.src[p.pos+2:])[:end])) + 2
		default:
			return
		}
	}
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if !(unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_' || c == '-') {
			break
		}
		p.pos++
	}
	return string(p.src[start:p.pos])
}

// str reads a quoted string, ${...} and %{...} templates included, and returns it as written.
func (p *parser) str() (string, error) {
	start := p.pos
	p.pos++ // opening quote
	depth := 0
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\\':
			p.pos += 2
			continue
		case (c == '$' || c == '%') && p.pos+1 < len(p.src) && p.src[p.pos+1] == '{':
			depth++
			p.pos += 2
			continue
		case c == '{' && depth > 0:
			depth++
		case c == '}' && depth > 0:
			depth--
		case c == '"' && depth > 0:
			if _, err := p.str(); err != nil {
				return "", err
			}
			continue
		case c == '"':
			p.pos++
			return string(p.src[start:p.pos]), nil
		case c == '\n' && depth == 0:
			return "", p.errorf("newline in string")
		}
		p.pos++
	}
	return "", p.errorf("unterminated string")
}

// heredoc reads <<EOT or <<-EOT through its closing line.
func (p *parser) heredoc() (string, error) {
	start := p.pos
	p.pos += 2
	if p.peek() == '-' {
		p.pos++
	}
	marker := p.ident()
	nl := strings.IndexRune(string(p.src[p.pos:]), '\n')
	if marker == "" || nl < 0 {
		return "", p.errorf("bad heredoc")
	}
	p.pos += len([]rune(string(p.src[p.pos:])[:nl])) + 1
	for p.pos < len(p.src) {
		end := strings.IndexRune(string(p.src[p.pos:]), '\n')
		line := string(p.src[p.pos:])
		if end >= 0 {
			line = line[:end]
		}
		p.pos += len([]rune(line))
		if strings.TrimSpace(line) == marker {
			return string(p.src[start:p.pos]), nil
		}
		p.pos++ // the newline
	}
	return "", p.errorf("unterminated heredoc %s", marker)
}

// expr reads an expression up to the end of its line (or a ',' or the closing brace of an
// object literal), across brackets and strings, and returns it as written.
func (p *parser) expr() (string, error) {
	start := p.pos
	var stack []rune
	closing := map[rune]rune{'(': ')', '[': ']', '{': '}'}
	for p.pos < len(p.src) {
		c := p.peek()
		switch {
		case c == '"':
			if _, err := p.str(); err != nil {
				return "", err
			}
			continue
		case p.at("<<"):
			if _, err := p.heredoc(); err != nil {
				return "", err
			}
			continue
		case c == '#' || p.at("//") || p.at("/*"):
			if len(stack) == 0 {
				raw := strings.TrimSpace(string(p.src[start:p.pos]))
				p.space(false)
				return raw, nil
			}
			p.space(true)
			continue
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, closing[c])
		case c == ')' || c == ']' || c == '}':
			if len(stack) == 0 {
				if c == '}' {
					return strings.TrimSpace(string(p.src[start:p.pos])), nil
				}
				return "", p.errorf("unbalanced %c", c)
			}
			if stack[len(stack)-1] != c {
				return "", p.errorf("unbalanced %c", c)
			}
			stack = stack[:len(stack)-1]
		case (c == '\n' || c == ',') && len(stack) == 0:
			return strings.TrimSpace(string(p.src[start:p.pos])), nil
		}
		p.pos++
	}
	if len(stack) > 0 {
		return "", p.errorf("unterminated expression")
	}
	return strings.TrimSpace(string(p.src[start:p.pos])), nil
}

// body reads items until the end of the input (top) or a closing brace.
func (p *parser) body(top bool) (*block, error) {
	b := &block{attrs: map[string]string{}}
	for {
		p.space(true)
		if p.peek() == ',' {
			p.pos++
			continue
		}
		if p.pos >= len(p.src) {
			if !top {
				return nil, p.errorf("missing }")
			}
			return b, nil
		}
		if p.peek() == '}' {
			if top {
				return nil, p.errorf("unexpected }")
			}
			p.pos++
			return b, nil
		}
		var name string
		if p.peek() == '"' {
			s, err := p.str()
			if err != nil {
				return nil, err
			}
			name = unquote(s)
		} else {
			name = p.ident()
		}
		if name == "" {
			return nil, p.errorf("unexpected %q", p.peek())
		}
		p.space(false)
		if p.peek() == '=' && !p.at("==") {
			p.pos++
			p.space(false)
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			if _, dup := b.attrs[name]; dup {
				return nil, p.errorf("%s set twice", name)
			}
			b.attrs[name] = v
			continue
		}
		child := &block{typ: name}
		for p.peek() == '"' {
			s, err := p.str()
			if err != nil {
				return nil, err
			}
			child.labels = append(child.labels, unquote(s))
			p.space(false)
		}
		if p.peek() != '{' {
			return nil, p.errorf("after %s: want = or {, got %q", name, p.peek())
		}
		p.pos++
		inner, err := p.body(false)
		if err != nil {
			return nil, err
		}
		child.attrs, child.blocks = inner.attrs, inner.blocks
		b.blocks = append(b.blocks, child)
	}
}

// parseDir reads every .tf file of a folder into one body.
func parseDir(dir string) (*block, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no .tf files", dir)
	}
	sort.Strings(files)
	all := &block{attrs: map[string]string{}}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		b, err := (&parser{src: []rune(string(src)), file: f}).body(true)
		if err != nil {
			return nil, err
		}
		all.blocks = append(all.blocks, b.blocks...)
	}
	return all, nil
}

// object reads an object literal's expression.
func object(raw string) (*block, error) {
	raw = strings.TrimSpace(raw)
	if !strings.HasPrefix(raw, "{") {
		return nil, fmt.Errorf("not an object: %.40q", raw)
	}
	p := &parser{src: []rune(raw[1:]), file: "object"}
	b, err := p.body(false)
	if err != nil {
		return nil, err
	}
	p.space(true)
	if p.pos != len(p.src) {
		return nil, fmt.Errorf("after the object: %q", string(p.src[p.pos:]))
	}
	return b, nil
}

// list reads a list of plain strings: ["a", "b"].
func list(raw string) ([]string, error) {
	raw = strings.TrimSpace(raw)
	if !strings.HasPrefix(raw, "[") || !strings.HasSuffix(raw, "]") {
		return nil, fmt.Errorf("not a list: %.40q", raw)
	}
	var out []string
	for _, f := range strings.Split(raw[1:len(raw)-1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !isPlainString(f) {
			return nil, fmt.Errorf("list item %q is not a plain string", f)
		}
		out = append(out, unquote(f))
	}
	return out, nil
}

func isPlainString(raw string) bool {
	return len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && !strings.Contains(raw, "${")
}

// unquote returns a quoted string's text (templates left as written).
func unquote(raw string) string {
	if s, err := strconv.Unquote(raw); err == nil {
		return s
	}
	return strings.Trim(raw, `"`)
}

// heredocText returns a <<-EOT heredoc's text, its common indentation removed as Terraform does.
func heredocText(raw string) (string, error) {
	lines := strings.Split(raw, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "<<") {
		return "", fmt.Errorf("not a heredoc: %.40q", raw)
	}
	body := lines[1 : len(lines)-1]
	indent := -1
	for _, l := range body {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	var out strings.Builder
	for _, l := range body {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		out.WriteString(l + "\n")
	}
	return out.String(), nil
}
