package custom

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// Definition declares a REST system and its operations.
type Definition struct {
	// ID is the target system id in requests: ^[a-z][a-z0-9_]{0,63}$.
	ID string `yaml:"id" json:"id"`
	// Name is a human name.
	Name string `yaml:"name" json:"name"`
	// BaseURL is the API's root, e.g. https://launchpad.example/api/v1;
	// operation paths are appended to it.
	BaseURL string `yaml:"base_url" json:"base_url"`
	// Auth says how requests authenticate.
	Auth AuthDef `yaml:"auth" json:"auth"`
	// Operations are the operations, at least one.
	Operations []OpDef `yaml:"operations" json:"operations"`
}

// AuthDef says how requests authenticate.
type AuthDef struct {
	// Method is "bearer", "api-key-header", "basic", "mtls" (the credential's client
	// certificate, Values certificate_pem and private_key_pem) or "none".
	Method string `yaml:"method" json:"method"`
	// Header is the API key's header for "api-key-header", e.g. X-API-Key.
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
}

// OpDef declares one operation: one HTTP call (or, with Pages, one
// listing through several).
type OpDef struct {
	// Name is the operation's name in requests: ^[a-z][a-z0-9_]{0,63}$.
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description"`
	// Access is "read" or "write".
	Access string `yaml:"access" json:"access"`
	// Attributed and PII are as in connectors.Operation.
	Attributed bool `yaml:"attributed" json:"attributed"`
	PII        bool `yaml:"pii" json:"pii"`
	// Method is the HTTP method: GET, POST, PUT, PATCH or DELETE.
	Method string `yaml:"method" json:"method"`
	// Path is appended to the base URL; {field} placeholders are filled
	// with required payload fields, path-escaped.
	Path string `yaml:"path" json:"path"`
	// Query names payload fields sent as query parameters.
	Query []string `yaml:"query,omitempty" json:"query,omitempty"`
	// Body is "json" (the payload without path and query fields, as a
	// JSON object) or "" (no body).
	Body string `yaml:"body,omitempty" json:"body,omitempty"`
	// Payload is the JSON Schema of the payload: an object schema with
	// additionalProperties false. Empty means the empty object. In YAML it
	// may be written as a mapping or as a string of JSON.
	Payload json.RawMessage `yaml:"payload,omitempty" json:"payload,omitempty"`
	// Result is the JSON Schema of the result. Empty means anything.
	Result json.RawMessage `yaml:"result,omitempty" json:"result,omitempty"`
	// ResultPath, when set, is the dot path of the part of the answer
	// that is the result, e.g. "data" or "data.items.0".
	ResultPath string `yaml:"result_path,omitempty" json:"result_path,omitempty"`
	// Pages, when set, makes the operation a listing that follows a cursor.
	Pages *Pages `yaml:"pages,omitempty" json:"pages,omitempty"`
}

// Pages says how a listing follows its cursor. Its result is {"items":
// [...], "count": n, "next_cursor": "..."} (next_cursor only when the
// listing stopped before its end), which the operation's Result schema
// should describe. A payload field "limit" (when the payload schema has
// one) bounds the items, and a payload field "cursor" starts from a
// cursor; neither is sent as a query parameter or in the body.
type Pages struct {
	// ItemsPath is the dot path of each answer's items array, e.g. "data".
	ItemsPath string `yaml:"items_path" json:"items_path"`
	// CursorPath is the dot path of the next cursor in each answer, e.g.
	// "meta.next_cursor"; a missing, null or empty value ends the listing.
	CursorPath string `yaml:"cursor_path" json:"cursor_path"`
	// CursorParam is the query parameter that sends the cursor.
	CursorParam string `yaml:"cursor_param" json:"cursor_param"`
	// LimitParam, when set, is the query parameter that asks for a page
	// size: the smaller of PageSize and the items still wanted.
	LimitParam string `yaml:"limit_param,omitempty" json:"limit_param,omitempty"`
	// PageSize is the page size asked for. Zero means 100.
	PageSize int `yaml:"page_size,omitempty" json:"page_size,omitempty"`
	// MaxItems caps the items of one listing (and the payload's limit).
	// Zero means 1000.
	MaxItems int `yaml:"max_items,omitempty" json:"max_items,omitempty"`
	// MaxPages caps the requests of one listing. Zero means 50.
	MaxPages int `yaml:"max_pages,omitempty" json:"max_pages,omitempty"`
}

// UnmarshalYAML implements yaml.Unmarshaler: payload and result schemas
// may be YAML mappings (converted to JSON) or strings of JSON.
func (o *OpDef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: an operation is a mapping", n.Line)
	}
	// The schemas are taken out; the rest decodes as it is.
	rest := *n
	rest.Content = nil
	var payload, result *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k, v := n.Content[i], n.Content[i+1]; k.Value {
		case "payload":
			payload = v
		case "result":
			result = v
		default:
			rest.Content = append(rest.Content, k, v)
		}
	}
	type plain OpDef // without this method
	var p plain
	if err := rest.Decode(&p); err != nil {
		return err
	}
	*o = OpDef(p)
	var err error
	if o.Payload, err = schemaFromYAML(payload); err != nil {
		return fmt.Errorf("operation %q: payload: %w", o.Name, err)
	}
	if o.Result, err = schemaFromYAML(result); err != nil {
		return fmt.Errorf("operation %q: result: %w", o.Name, err)
	}
	return nil
}

// schemaFromYAML turns a YAML node into JSON: a mapping as it is, a string
// as the JSON text it holds.
func schemaFromYAML(n *yaml.Node) (json.RawMessage, error) {
	if n == nil || n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		if !json.Valid([]byte(n.Value)) {
			return nil, errors.New("the string is not JSON")
		}
		return json.RawMessage(n.Value), nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not expressible as JSON: %w", err)
	}
	return b, nil
}

// ParseDefinition reads a Definition from YAML (or JSON, which is YAML).
// Unknown fields are errors. It does not validate: New does.
func ParseDefinition(data []byte) (Definition, error) {
	var d Definition
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return Definition{}, fmt.Errorf("custom definition: %w", err)
	}
	return d, nil
}

var (
	nameRE        = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)
	fieldRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	headerRE      = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
)

// objectSchema is what New checks of a payload schema.
type objectSchema struct {
	Type                 any                        `json:"type"`
	AdditionalProperties json.RawMessage            `json:"additionalProperties"`
	Properties           map[string]json.RawMessage `json:"properties"`
	Required             []string                   `json:"required"`
}

// op is a checked operation.
type op struct {
	OpDef
	method     string
	pathFields []string
	query      map[string]bool
	skip       map[string]bool // payload fields not sent in the body
	props      map[string]bool
}

// check validates the definition and returns its operations by name.
func (d Definition) check() (map[string]*op, error) {
	if !nameRE.MatchString(d.ID) {
		return nil, fmt.Errorf("id %q: want ^[a-z][a-z0-9_]{0,63}$", d.ID)
	}
	if strings.TrimSpace(d.Name) == "" {
		return nil, errors.New("name is required")
	}
	if err := checkBaseURL(d.BaseURL); err != nil {
		return nil, err
	}
	switch d.Auth.Method {
	case "bearer", "basic", "none", "mtls":
		if d.Auth.Header != "" {
			return nil, fmt.Errorf("auth: header is only for api-key-header, not %s", d.Auth.Method)
		}
	case "api-key-header":
		if !headerRE.MatchString(d.Auth.Header) {
			return nil, fmt.Errorf("auth: api-key-header needs a header name, got %q", d.Auth.Header)
		}
	default:
		return nil, fmt.Errorf("auth: method %q: want bearer, api-key-header, basic, mtls or none", d.Auth.Method)
	}
	if len(d.Operations) == 0 {
		return nil, errors.New("no operations")
	}
	ops := map[string]*op{}
	for i, od := range d.Operations {
		o, err := checkOp(od)
		if err != nil {
			return nil, fmt.Errorf("operation %d (%q): %w", i, od.Name, err)
		}
		if ops[o.Name] != nil {
			return nil, fmt.Errorf("operation %q: defined twice", o.Name)
		}
		ops[o.Name] = o
	}
	return ops, nil
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("base_url %q: want an http(s) URL with a host and no query, fragment or user info", s)
	}
	return nil
}

func checkOp(od OpDef) (*op, error) {
	o := &op{OpDef: od, method: strings.ToUpper(od.Method), query: map[string]bool{}, skip: map[string]bool{}, props: map[string]bool{}}
	if !nameRE.MatchString(od.Name) {
		return nil, errors.New("name: want ^[a-z][a-z0-9_]{0,63}$")
	}
	if od.Access != "read" && od.Access != "write" {
		return nil, fmt.Errorf("access %q: want read or write", od.Access)
	}
	switch o.method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return nil, fmt.Errorf("method %q: want GET, POST, PUT, PATCH or DELETE", od.Method)
	}
	switch od.Body {
	case "":
	case "json":
		if o.method == http.MethodGet {
			return nil, errors.New("body json: a GET has no body")
		}
	default:
		return nil, fmt.Errorf("body %q: want json or nothing", od.Body)
	}
	if len(bytes.TrimSpace(o.Payload)) == 0 {
		o.Payload = json.RawMessage(`{"type": "object", "additionalProperties": false}`)
	}
	if len(bytes.TrimSpace(o.Result)) == 0 {
		o.Result = json.RawMessage(`{}`)
	}
	for _, s := range []struct {
		name string
		raw  json.RawMessage
	}{{"payload", o.Payload}, {"result", o.Result}} {
		if err := compile(s.raw); err != nil {
			return nil, fmt.Errorf("%s schema: %w", s.name, err)
		}
	}
	var ps objectSchema
	if err := json.Unmarshal(o.Payload, &ps); err != nil || ps.Type != "object" || string(bytes.TrimSpace(ps.AdditionalProperties)) != "false" {
		return nil, errors.New(`payload schema: want {"type": "object", "additionalProperties": false, ...}`)
	}
	for p := range ps.Properties {
		o.props[p] = true
	}

	// Path: starts with '/', and its placeholders are required properties.
	if !strings.HasPrefix(od.Path, "/") || strings.ContainsAny(od.Path, "?#") {
		return nil, fmt.Errorf("path %q: want an absolute path without query or fragment", od.Path)
	}
	if rest := placeholderRE.ReplaceAllString(od.Path, ""); strings.ContainsAny(rest, "{}") {
		return nil, fmt.Errorf("path %q: unbalanced braces", od.Path)
	}
	for _, m := range placeholderRE.FindAllStringSubmatch(od.Path, -1) {
		f := m[1]
		switch {
		case !fieldRE.MatchString(f):
			return nil, fmt.Errorf("path placeholder {%s}: want a field name", f)
		case !o.props[f]:
			return nil, fmt.Errorf("path placeholder {%s}: not a property of the payload schema", f)
		case !slices.Contains(ps.Required, f):
			return nil, fmt.Errorf("path placeholder {%s}: must be a required property of the payload schema", f)
		}
		if !slices.Contains(o.pathFields, f) {
			o.pathFields = append(o.pathFields, f)
		}
		o.skip[f] = true
	}
	for _, f := range od.Query {
		switch {
		case !o.props[f]:
			return nil, fmt.Errorf("query field %q: not a property of the payload schema", f)
		case o.skip[f] || o.query[f]:
			return nil, fmt.Errorf("query field %q: used twice", f)
		}
		o.query[f] = true
		o.skip[f] = true
	}
	if od.ResultPath != "" && !validPath(od.ResultPath) {
		return nil, fmt.Errorf("result_path %q: want dot-separated names or indexes", od.ResultPath)
	}
	if pg := od.Pages; pg != nil {
		if od.ResultPath != "" {
			return nil, errors.New("pages: items_path replaces result_path")
		}
		if !validPath(pg.ItemsPath) || !validPath(pg.CursorPath) {
			return nil, errors.New("pages: items_path and cursor_path are required dot paths")
		}
		if pg.CursorParam == "" || (pg.LimitParam != "" && pg.LimitParam == pg.CursorParam) {
			return nil, errors.New("pages: cursor_param is required, and differs from limit_param")
		}
		for _, f := range []string{"limit", "cursor", pg.CursorParam, pg.LimitParam} {
			if f != "" && o.query[f] {
				return nil, fmt.Errorf("pages: %q is set by the pages and cannot be a query field", f)
			}
		}
		if pg.PageSize < 0 || pg.MaxItems < 0 || pg.MaxPages < 0 {
			return nil, errors.New("pages: sizes must not be negative")
		}
		o.skip["limit"], o.skip["cursor"] = true, true
	}
	return o, nil
}

// validPath reports whether p is a dot path: names or indexes, none empty.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	return !slices.Contains(strings.Split(p, "."), "")
}

// compile checks that raw is a JSON Schema (draft 2020-12) the dispatcher
// will accept.
func compile(raw json.RawMessage) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	const u = "mcc:///custom/schema.json"
	if err := c.AddResource(u, doc); err != nil {
		return err
	}
	_, err = c.Compile(u)
	return err
}
