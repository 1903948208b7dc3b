package adobeanalytics

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/mcc-bridge/bridge/connectors"
)

// Request bodies of the Reports API.
type (
	reportRequest struct {
		RSID            string          `json:"rsid"`
		GlobalFilters   []globalFilter  `json:"globalFilters"`
		MetricContainer metricContainer `json:"metricContainer"`
		Dimension       string          `json:"dimension"`
		Settings        settings        `json:"settings"`
	}
	globalFilter struct {
		Type      string `json:"type"`
		DateRange string `json:"dateRange,omitempty"`
		SegmentID string `json:"segmentId,omitempty"`
	}
	metricContainer struct {
		Metrics []metric `json:"metrics"`
	}
	metric struct {
		ColumnID string `json:"columnId"`
		ID       string `json:"id"`
	}
	settings struct {
		Limit int `json:"limit"`
		Page  int `json:"page"`
	}
)

// row is one row of a report.
type row struct {
	ItemID string     `json:"itemId"`
	Value  string     `json:"value"`
	Data   []*float64 `json:"data"`
}

// reportPage is one page of a report's answer.
type reportPage struct {
	TotalPages    int   `json:"totalPages"`
	FirstPage     bool  `json:"firstPage"`
	LastPage      bool  `json:"lastPage"`
	Number        int   `json:"number"`
	TotalElements int   `json:"totalElements"`
	Rows          []row `json:"rows"`
	SummaryData   struct {
		Totals []*float64 `json:"totals"`
	} `json:"summaryData"`
}

func (c *Connector) report(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		RSID      string   `json:"rsid"`
		DateRange string   `json:"dateRange"`
		Metrics   []string `json:"metrics"`
		Dimension string   `json:"dimension"`
		Segments  []string `json:"segments"`
		Limit     int      `json:"limit"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	if p.RSID == "" || p.DateRange == "" || p.Dimension == "" || len(p.Metrics) == 0 {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: rsid, dateRange, metrics and dimension are required")
	}
	if p.Limit <= 0 {
		p.Limit = defaultReportLimit
	}
	p.Limit = min(p.Limit, maxReportLimit)
	s, err := c.session(ec)
	if err != nil {
		return connectors.Result{}, err
	}

	req := reportRequest{RSID: p.RSID, Dimension: p.Dimension, GlobalFilters: []globalFilter{{Type: "dateRange", DateRange: p.DateRange}}}
	for _, seg := range p.Segments {
		req.GlobalFilters = append(req.GlobalFilters, globalFilter{Type: "segment", SegmentID: seg})
	}
	for i, m := range p.Metrics {
		req.MetricContainer.Metrics = append(req.MetricContainer.Metrics, metric{ColumnID: strconv.Itoa(i), ID: m})
	}
	pageSize := min(c.cfg.PageSize, p.Limit)
	req.Settings.Limit = pageSize

	out := struct {
		RSID      string     `json:"rsid"`
		Dimension string     `json:"dimension"`
		Metrics   []string   `json:"metrics"`
		Rows      []row      `json:"rows"`
		Totals    []*float64 `json:"totals,omitempty"`
		Count     int        `json:"count"`
		TotalRows int        `json:"totalRows"`
		Truncated bool       `json:"truncated"`
	}{RSID: p.RSID, Dimension: p.Dimension, Metrics: p.Metrics, Rows: []row{}}
	// Pages needed for limit rows, plus one: the loop's bound even against
	// a server whose pages come up short.
	maxPages := (p.Limit+pageSize-1)/pageSize + 1
	for page := 0; page < maxPages; page++ {
		req.Settings.Page = page
		var rp reportPage
		if err := c.post(ctx, s, "/api/"+s.company+"/reports", req, &rp); err != nil {
			return connectors.Result{}, err
		}
		if page == 0 {
			out.TotalRows, out.Totals = rp.TotalElements, rp.SummaryData.Totals
		}
		take := min(len(rp.Rows), p.Limit-len(out.Rows))
		out.Rows = append(out.Rows, rp.Rows[:take]...)
		last := rp.LastPage || len(rp.Rows) == 0 || (rp.TotalPages > 0 && page+1 >= rp.TotalPages)
		if len(out.Rows) >= p.Limit {
			out.Truncated = take < len(rp.Rows) || !last
			break
		}
		if last {
			break
		}
		if page == maxPages-1 {
			out.Truncated = true
		}
	}
	for i := range out.Rows {
		if out.Rows[i].Data == nil {
			out.Rows[i].Data = []*float64{}
		}
	}
	out.Count = len(out.Rows)
	return jsonResult(out, []string{"rsid:" + p.RSID})
}

// jsonResult encodes v as a result.
func jsonResult(v any, ids []string) (connectors.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "encode the result: %v", err)
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}
