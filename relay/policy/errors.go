package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ParseError reports a policy file that is not a valid Cedar policy set, or
// that reuses a policy id.
type ParseError struct {
	// File is the path of the file.
	File string
	// Line and Column locate the error, counting from 1; 0 when unknown.
	Line, Column int
	// Err is the underlying error, from cedar-go or this package.
	Err error
}

// Error names the file and position, for example
// `parse error at /etc/bridge/policies/acme/main.cedar:3:34 ")": exact got resource want ,`.
func (e *ParseError) Error() string {
	msg := strings.TrimPrefix(e.Err.Error(), "parser error: ")
	if strings.Contains(msg, cedarNoFile) {
		return strings.Replace(msg, cedarNoFile, e.File, 1)
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, msg)
	}
	return fmt.Sprintf("%s: %s", e.File, msg)
}

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

// cedarNoFile is what cedar-go's parser writes in place of a file name.
const cedarNoFile = "<input>"

// cedarPos finds the position in a cedar-go parse error.
var cedarPos = regexp.MustCompile(`<input>:(\d+):(\d+)`)

// newParseError wraps a cedar-go parse error of file, extracting its position.
func newParseError(file string, err error) *ParseError {
	pe := &ParseError{File: file, Err: err}
	if m := cedarPos.FindStringSubmatch(err.Error()); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Column, _ = strconv.Atoi(m[2])
	}
	return pe
}
