package spemu

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The OData $filter subset the emulator evaluates: comparisons (eq ne gt
// ge lt le) of a field with a literal (integer, 'string' with '' escapes,
// true/false/null, datetime'...', guid'...'), combined with and, or, not
// and parentheses. Functions (substringof, startswith, ...) are rejected
// with 400 InvalidClientQueryException.

// filterExpr is a parsed $filter (or CAML <Where>).
type filterExpr interface {
	eval(get func(field string) (any, bool)) (bool, error)
	fields(add func(string))
}

type andExpr struct{ a, b filterExpr }
type orExpr struct{ a, b filterExpr }
type notExpr struct{ a filterExpr }
type cmpExpr struct {
	field string
	op    string
	lit   any // int64, string, bool, nil, time.Time
}

func (e andExpr) eval(g func(string) (any, bool)) (bool, error) {
	x, err := e.a.eval(g)
	if err != nil || !x {
		return false, err
	}
	return e.b.eval(g)
}
func (e andExpr) fields(add func(string)) { e.a.fields(add); e.b.fields(add) }

func (e orExpr) eval(g func(string) (any, bool)) (bool, error) {
	x, err := e.a.eval(g)
	if err != nil || x {
		return x, err
	}
	return e.b.eval(g)
}
func (e orExpr) fields(add func(string)) { e.a.fields(add); e.b.fields(add) }

func (e notExpr) eval(g func(string) (any, bool)) (bool, error) {
	x, err := e.a.eval(g)
	return !x && err == nil, err
}
func (e notExpr) fields(add func(string)) { e.a.fields(add) }

func (e cmpExpr) fields(add func(string)) { add(e.field) }

func (e cmpExpr) eval(g func(string) (any, bool)) (bool, error) {
	v, ok := g(e.field)
	if !ok {
		return false, errQuery("The field or property '%s' does not exist.", e.field)
	}
	c, err := compare(v, e.lit)
	if err != nil {
		return false, errQuery("Cannot compare '%s' with %v: %v", e.field, e.lit, err)
	}
	switch e.op {
	case "eq":
		return c == 0, nil
	case "ne":
		return c != 0, nil
	case "gt":
		return c > 0, nil
	case "ge":
		return c >= 0, nil
	case "lt":
		return c < 0, nil
	case "le":
		return c <= 0, nil
	}
	return false, errQuery("unknown operator %s", e.op)
}

// compare orders a field value and a literal; nulls equal only nulls.
func compare(v, lit any) (int, error) {
	if v == nil || lit == nil {
		if v == nil && lit == nil {
			return 0, nil
		}
		return 1, nil
	}
	switch x := v.(type) {
	case int:
		return compare(int64(x), lit)
	case int64:
		switch y := lit.(type) {
		case int64:
			return cmpOrdered(x, y), nil
		case string:
			n, err := strconv.ParseInt(y, 10, 64)
			if err != nil {
				return 0, err
			}
			return cmpOrdered(x, n), nil
		}
	case string:
		switch y := lit.(type) {
		case string:
			return cmpOrdered(strings.ToLower(x), strings.ToLower(y)), nil
		case int64:
			return cmpOrdered(x, strconv.FormatInt(y, 10)), nil
		}
	case bool:
		if y, ok := lit.(bool); ok {
			switch {
			case x == y:
				return 0, nil
			case !x:
				return -1, nil
			}
			return 1, nil
		}
	case time.Time:
		if y, ok := lit.(time.Time); ok {
			return x.Compare(y), nil
		}
	case guid:
		switch y := lit.(type) {
		case guid:
			return cmpOrdered(x.String(), y.String()), nil
		case string:
			return cmpOrdered(x.String(), strings.ToLower(y)), nil
		}
	}
	return 0, fmt.Errorf("type mismatch %T and %T", v, lit)
}

func cmpOrdered[T int64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// filterParser is a recursive descent parser over tokens.
type filterParser struct {
	src  string
	toks []string
	pos  int
}

// parseFilter parses a $filter expression; "" gives nil.
func parseFilter(src string) (filterExpr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	toks, err := tokenizeFilter(src)
	if err != nil {
		return nil, errQuery("The expression \"%s\" is not valid: %v", src, err)
	}
	p := &filterParser{src: src, toks: toks}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, errQuery("The expression \"%s\" is not valid: unexpected %q.", src, p.toks[p.pos])
	}
	return e, nil
}

func tokenizeFilter(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '\'':
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], '\'')
				if k < 0 {
					return nil, fmt.Errorf("unterminated string literal")
				}
				j += k + 1
				if j < len(s) && s[j] == '\'' {
					j++
					continue
				}
				break
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' && s[j] != '\'' {
				j++
			}
			word := s[i:j]
			// typed literal: guid'...', datetime'...'
			if j < len(s) && s[j] == '\'' && (strings.EqualFold(word, "guid") || strings.EqualFold(word, "datetime") || strings.EqualFold(word, "datetimeoffset")) {
				k := strings.IndexByte(s[j+1:], '\'')
				if k < 0 {
					return nil, fmt.Errorf("unterminated %s literal", word)
				}
				toks = append(toks, s[i:j+1+k+1])
				i = j + 1 + k + 1
				continue
			}
			if word == "" {
				return nil, fmt.Errorf("unexpected %q", s[i])
			}
			toks = append(toks, word)
			i = j
		}
	}
	return toks, nil
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) or() (filterExpr, error) {
	a, err := p.and()
	if err != nil {
		return nil, err
	}
	for strings.EqualFold(p.peek(), "or") {
		p.pos++
		b, err := p.and()
		if err != nil {
			return nil, err
		}
		a = orExpr{a, b}
	}
	return a, nil
}

func (p *filterParser) and() (filterExpr, error) {
	a, err := p.unary()
	if err != nil {
		return nil, err
	}
	for strings.EqualFold(p.peek(), "and") {
		p.pos++
		b, err := p.unary()
		if err != nil {
			return nil, err
		}
		a = andExpr{a, b}
	}
	return a, nil
}

func (p *filterParser) unary() (filterExpr, error) {
	switch t := p.peek(); {
	case strings.EqualFold(t, "not"):
		p.pos++
		a, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notExpr{a}, nil
	case t == "(":
		p.pos++
		a, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, errQuery("The expression \"%s\" is not valid: missing ')'.", p.src)
		}
		p.pos++
		return a, nil
	case t == "":
		return nil, errQuery("The expression \"%s\" is not valid: unexpected end.", p.src)
	}
	field := p.toks[p.pos]
	p.pos++
	if p.peek() == "(" {
		return nil, errQuery("The query function '%s' is not supported by the emulator.", field)
	}
	if !isIdent(field) {
		return nil, errQuery("The expression \"%s\" is not valid: %q is not a property.", p.src, field)
	}
	op := strings.ToLower(p.peek())
	switch op {
	case "eq", "ne", "gt", "ge", "lt", "le":
	default:
		return nil, errQuery("The expression \"%s\" is not valid: expected an operator after %s.", p.src, field)
	}
	p.pos++
	if p.pos >= len(p.toks) {
		return nil, errQuery("The expression \"%s\" is not valid: missing operand.", p.src)
	}
	lit, err := parseLiteral(p.toks[p.pos])
	if err != nil {
		return nil, errQuery("The expression \"%s\" is not valid: %v", p.src, err)
	}
	p.pos++
	return cmpExpr{field: field, op: op, lit: lit}, nil
}

func isIdent(s string) bool {
	for i, r := range s {
		if !(r == '_' || r == '/' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r))) {
			return false
		}
	}
	return s != ""
}

// parseLiteral parses one OData literal token.
func parseLiteral(t string) (any, error) {
	switch {
	case strings.HasPrefix(t, "'"):
		return strings.ReplaceAll(t[1:len(t)-1], "''", "'"), nil
	case strings.EqualFold(t, "true"):
		return true, nil
	case strings.EqualFold(t, "false"):
		return false, nil
	case strings.EqualFold(t, "null"):
		return nil, nil
	case len(t) > 5 && strings.EqualFold(t[:5], "guid'"):
		g, err := parseGUID(t[5 : len(t)-1])
		if err != nil {
			return nil, err
		}
		return g, nil
	case strings.HasPrefix(strings.ToLower(t), "datetime"):
		i := strings.IndexByte(t, '\'')
		v := t[i+1 : len(t)-1]
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
			if tm, err := time.Parse(layout, v); err == nil {
				return tm.UTC(), nil
			}
		}
		return nil, fmt.Errorf("bad datetime %q", v)
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSuffix(t, "L"), "l"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("bad literal %q", t)
	}
	return n, nil
}
