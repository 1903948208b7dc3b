package salesforce

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcc-bridge/bridge/connectors"
)

// queryPage is one page of a query's answer.
type queryPage struct {
	TotalSize      int               `json:"totalSize"`
	Done           bool              `json:"done"`
	NextRecordsURL string            `json:"nextRecordsUrl"`
	Records        []json.RawMessage `json:"records"`
}

// record is what the connector reads of a record, for the audit ids.
type record struct {
	Attributes struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"attributes"`
	ID string `json:"Id"`
}

func (c *Connector) query(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		SOQL  string `json:"soql"`
		Limit int    `json:"limit"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	if strings.TrimSpace(p.SOQL) == "" {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: soql is required")
	}
	if p.Limit <= 0 {
		p.Limit = defaultQueryLimit
	}
	p.Limit = min(p.Limit, maxQueryLimit)
	s, err := c.session(ec)
	if err != nil {
		return connectors.Result{}, err
	}
	batch := min(c.cfg.BatchSize, max(p.Limit, 200))
	hdr := http.Header{"Sforce-Query-Options": {"batchSize=" + strconv.Itoa(batch)}}

	out := struct {
		TotalSize int               `json:"totalSize"`
		Count     int               `json:"count"`
		Done      bool              `json:"done"`
		Records   []json.RawMessage `json:"records"`
	}{Records: []json.RawMessage{}}
	ref := c.prefix + "/query?" + url.Values{"q": {p.SOQL}}.Encode()
	// Every page but the last holds a record at least, so limit+1 pages
	// bound the loop even against a misbehaving server.
	for page := 0; page <= p.Limit; page++ {
		var qp queryPage
		if err := c.do(ctx, s, http.MethodGet, ref, nil, hdr, &qp); err != nil {
			return connectors.Result{}, err
		}
		if page == 0 {
			out.TotalSize = qp.TotalSize
		}
		take := min(len(qp.Records), p.Limit-len(out.Records))
		out.Records = append(out.Records, qp.Records[:take]...)
		if qp.Done || qp.NextRecordsURL == "" {
			out.Done = take == len(qp.Records)
			break
		}
		if len(out.Records) >= p.Limit || len(qp.Records) == 0 {
			break
		}
		next, err := c.nextRef(qp.NextRecordsURL)
		if err != nil {
			return connectors.Result{}, err
		}
		ref = next
	}
	out.Count = len(out.Records)
	ids := make([]string, 0, len(out.Records))
	for _, raw := range out.Records {
		var r record
		if json.Unmarshal(raw, &r) != nil {
			continue
		}
		id := r.ID
		if id == "" {
			id = r.Attributes.URL[strings.LastIndexByte(r.Attributes.URL, '/')+1:]
		}
		if id != "" {
			ids = append(ids, r.Attributes.Type+"/"+id)
		}
	}
	return jsonResult(out, ids)
}

// nextRef checks a nextRecordsUrl: a path under this connector's REST API
// (never another host, where the token must not go).
func (c *Connector) nextRef(next string) (string, error) {
	u, err := url.Parse(next)
	bad := err != nil || u.Scheme != "" || u.Host != "" || u.User != nil ||
		!strings.HasPrefix(u.Path, "/services/data/v") || strings.Contains(u.Path, "..") || strings.Contains(u.Path, "//")
	if bad {
		return "", connectors.Errorf(connectors.ClassUnavailable, "Salesforce sent a nextRecordsUrl outside its REST API")
	}
	return u.RequestURI(), nil
}
