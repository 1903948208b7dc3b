package salesforcefake

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// soql is a parsed query of the subset the fake understands.
type soql struct {
	fields  []string
	from    string
	where   string // field of an equality filter, or ""
	value   string
	orderBy string
	desc    bool
	limit   int // -1 for none
}

var soqlRE = regexp.MustCompile(`(?is)^\s*SELECT\s+(.+?)\s+FROM\s+([A-Za-z][A-Za-z0-9_]*)` +
	`(?:\s+WHERE\s+([A-Za-z][A-Za-z0-9_]*)\s*=\s*'((?:[^'\\]|\\.)*)')?` +
	`(?:\s+ORDER\s+BY\s+([A-Za-z][A-Za-z0-9_]*)(?:\s+(ASC|DESC))?)?` +
	`(?:\s+LIMIT\s+([0-9]+))?\s*$`)

var fieldRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// parseSOQL parses q; its errors read like Salesforce's MALFORMED_QUERY messages.
func parseSOQL(q string) (soql, error) {
	m := soqlRE.FindStringSubmatch(q)
	if m == nil {
		return soql{}, errors.New("unexpected token: " + strconv.Quote(firstWord(q)))
	}
	out := soql{from: m[2], where: m[3], value: strings.ReplaceAll(m[4], `\'`, `'`), orderBy: m[5], desc: strings.EqualFold(m[6], "DESC"), limit: -1}
	for _, f := range strings.Split(m[1], ",") {
		f = strings.TrimSpace(f)
		if !fieldRE.MatchString(f) {
			return soql{}, errors.New("unexpected token: " + strconv.Quote(f))
		}
		out.fields = append(out.fields, f)
	}
	if m[7] != "" {
		n, err := strconv.Atoi(m[7])
		if err != nil {
			return soql{}, errors.New("unexpected token: " + strconv.Quote(m[7]))
		}
		out.limit = n
	}
	return out, nil
}

func firstWord(q string) string {
	if f := strings.Fields(q); len(f) > 0 {
		return f[0]
	}
	return "<EOF>"
}
