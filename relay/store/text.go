package store

import (
	"bytes"
	"io"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// textTypes are the media types whose content is indexed; htmlType is
// stripped of markup first.
var textTypes = map[string]bool{
	"text/plain":       true,
	"text/markdown":    true,
	"text/x-markdown":  true,
	"text/csv":         true,
	"application/json": true,
	htmlType:           true,
}

const htmlType = "text/html"

// textExtensions map file name extensions to media types, for documents
// whose ContentType is empty or generic.
var textExtensions = map[string]string{
	".txt":      "text/plain",
	".text":     "text/plain",
	".md":       "text/markdown",
	".markdown": "text/markdown",
	".csv":      "text/csv",
	".json":     "application/json",
	".html":     htmlType,
	".htm":      htmlType,
}

// textType returns the media type to extract text as, or "" when the
// content is not plain text. The ContentType wins when it names a text
// type; otherwise the name's extension decides.
func textType(contentType, name string) string {
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil && textTypes[mt] {
			if mt == "text/x-markdown" {
				return "text/markdown"
			}
			return mt
		}
	}
	return textExtensions[strings.ToLower(path.Ext(name))]
}

// extractText turns up to the first max bytes of r's content into indexable
// UTF-8 text: a byte-order mark is honoured (UTF-16 is decoded), invalid
// sequences are dropped, and HTML loses its markup, scripts and styles.
func extractText(r io.Reader, mediaType string, max int64) (string, error) {
	raw, err := io.ReadAll(io.LimitReader(r, max))
	if err != nil {
		return "", err
	}
	s := decodeText(raw)
	if mediaType == htmlType {
		s = stripHTML(s)
	}
	return s, nil
}

// decodeText decodes UTF-8 (with or without BOM) or BOM-marked UTF-16.
func decodeText(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		b = b[3:]
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		return decodeUTF16(b[2:], false)
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return decodeUTF16(b[2:], true)
	}
	// A cut at max bytes may split the last rune; ToValidUTF8 drops it.
	return strings.ToValidUTF8(string(b), "")
}

func decodeUTF16(b []byte, bigEndian bool) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		if bigEndian {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError {
			return -1
		}
		return r
	}, string(utf16.Decode(u)))
}

// stripHTML returns the text of an HTML document, without tags, comments,
// scripts and styles, with entities decoded and block boundaries as spaces.
func stripHTML(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip := 0 // depth inside script, style, template, noscript
	space := func() {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), " ") {
			b.WriteByte(' ')
		}
	}
	for {
		switch z.Next() {
		case html.ErrorToken:
			return strings.TrimSpace(b.String())
		case html.StartTagToken:
			name, _ := z.TagName()
			if isRawText(atom.Lookup(name)) {
				skip++
			}
			space()
		case html.EndTagToken:
			name, _ := z.TagName()
			if isRawText(atom.Lookup(name)) && skip > 0 {
				skip--
			}
			space()
		case html.SelfClosingTagToken:
			space()
		case html.TextToken:
			if skip == 0 {
				t := strings.Join(strings.FieldsFunc(string(z.Text()), unicode.IsSpace), " ")
				if t != "" {
					b.WriteString(t)
				}
			}
		}
	}
}

func isRawText(a atom.Atom) bool {
	return a == atom.Script || a == atom.Style || a == atom.Template || a == atom.Noscript
}

// ftsQuery turns free text into an FTS5 query that matches documents
// containing every word: control characters separate words, and each word
// becomes a quoted
// string (so FTS5 syntax in the input is inert); words without a letter or
// digit are dropped. It returns "" when nothing searchable remains.
func ftsQuery(text string) string {
	var terms []string
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, text)
	for _, w := range strings.Fields(text) {
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) {
			continue
		}
		terms = append(terms, `"`+strings.ReplaceAll(w, `"`, `""`)+`"`)
	}
	return strings.Join(terms, " ")
}
