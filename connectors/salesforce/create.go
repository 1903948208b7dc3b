package salesforce

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"

	"github.com/mcc-bridge/bridge/connectors"
)

var (
	sobjectRE = regexp.MustCompile(sobjectPattern)
	fieldRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
)

func (c *Connector) create(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		SObject string                     `json:"sobject"`
		Fields  map[string]json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	// The schema says as much; the name goes into the URL path, so check
	// again here.
	if len(p.SObject) > 80 || !sobjectRE.MatchString(p.SObject) {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: sobject must match %s", sobjectPattern)
	}
	if len(p.Fields) == 0 {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: fields must name at least one field")
	}
	for k, v := range p.Fields {
		if !fieldRE.MatchString(k) {
			return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: field name %q is not an API name", k)
		}
		if t := strings.TrimSpace(string(v)); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
			return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: field %s: want a string, number, boolean or null", k)
		}
	}
	s, err := c.session(ec)
	if err != nil {
		return connectors.Result{}, err
	}
	var resp struct {
		ID      string     `json:"id"`
		Success bool       `json:"success"`
		Errors  []apiError `json:"errors"`
	}
	if err := c.do(ctx, s, http.MethodPost, c.prefix+"/sobjects/"+p.SObject+"/", p.Fields, nil, &resp); err != nil {
		return connectors.Result{}, err
	}
	if !resp.Success || resp.ID == "" {
		detail := "Salesforce did not create the record"
		if len(resp.Errors) > 0 {
			detail += ": " + clean(resp.Errors[0].ErrorCode+": "+resp.Errors[0].Message, s.token.Reveal())
		}
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "%s", detail)
	}
	return jsonResult(struct {
		ID      string `json:"id"`
		SObject string `json:"sobject"`
		Success bool   `json:"success"`
	}{resp.ID, p.SObject, true}, []string{p.SObject + "/" + resp.ID})
}
