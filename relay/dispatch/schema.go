package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schema is a compiled JSON Schema.
type schema struct{ s *jsonschema.Schema }

// compileSchema compiles raw (a JSON Schema document) named url; an empty
// raw accepts anything.
func compileSchema(url string, raw json.RawMessage) (*schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage(`{}`)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", url, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("schema %s: %w", url, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", url, err)
	}
	return &schema{s: s}, nil
}

// validate checks data against the schema. It returns nil, or the failing
// values (most specific first), or an error when data is not JSON.
func (s *schema) validate(data json.RawMessage) ([]FieldError, error) {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	err = s.s.Validate(inst)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, err
	}
	printer := message.NewPrinter(language.English)
	var out []FieldError
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, FieldError{Pointer: pointer(e.InstanceLocation), Detail: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	// Deepest first: the most specific value is the useful one to name.
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i].Pointer, "/") > strings.Count(out[j].Pointer, "/") })
	if len(out) > 20 {
		out = out[:20]
	}
	return out, nil
}

// pointer makes an RFC 6901 JSON pointer from path segments.
func pointer(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(s))
	}
	return b.String()
}
