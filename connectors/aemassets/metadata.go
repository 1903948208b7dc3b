package aemassets

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/mcc-bridge/bridge/connectors"
)

// siren is an entity of the Assets HTTP API.
type siren struct {
	Class      []string                   `json:"class"`
	Properties map[string]json.RawMessage `json:"properties"`
	Entities   []struct {
		Class      []string `json:"class"`
		Properties struct {
			Name  string `json:"name"`
			Title string `json:"dc:title"`
		} `json:"properties"`
	} `json:"entities"`
}

// paging is a Siren entity's srn:paging property.
type paging struct {
	Total  int `json:"total"`
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
}

// entityView is a child (folder entry or rendition) as callers see it.
type entityView struct {
	Name  string   `json:"name"`
	Class []string `json:"class"`
	Title string   `json:"title,omitempty"`
	Path  string   `json:"path,omitempty"`
}

func (c *Connector) metadata(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Path  string `json:"path"`
		Limit int    `json:"limit"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	path, err := c.damPath(p.Path)
	if err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: path: %v", err)
	}
	if p.Limit <= 0 {
		p.Limit = defaultLimit
	}
	p.Limit = min(p.Limit, maxLimit)
	s, err := c.session(ec)
	if err != nil {
		return connectors.Result{}, err
	}
	pageSize := min(c.cfg.PageSize, p.Limit)
	out := struct {
		Path          string                     `json:"path"`
		Kind          string                     `json:"kind"`
		Class         []string                   `json:"class"`
		Properties    map[string]json.RawMessage `json:"properties"`
		Entities      []entityView               `json:"entities"`
		TotalEntities int                        `json:"totalEntities"`
		Truncated     bool                       `json:"truncated"`
	}{Path: path, Kind: "other", Class: []string{}, Properties: map[string]json.RawMessage{}, Entities: []entityView{}}
	maxPages := (p.Limit+pageSize-1)/pageSize + 1
	offset := 0
	for page := 0; page < maxPages; page++ {
		var e siren
		ref := apiPath(path) + ".json?offset=" + strconv.Itoa(offset) + "&limit=" + strconv.Itoa(pageSize)
		if err := c.getJSON(ctx, s, ref, &e); err != nil {
			return connectors.Result{}, err
		}
		var pg paging
		hasPaging := json.Unmarshal(e.Properties["srn:paging"], &pg) == nil && e.Properties["srn:paging"] != nil
		if page == 0 {
			out.Class = append(out.Class, e.Class...)
			switch {
			case slices.Contains(e.Class, "assets/folder"):
				out.Kind = "folder"
			case slices.Contains(e.Class, "assets/asset"):
				out.Kind = "asset"
			}
			for k, v := range e.Properties {
				if k != "srn:paging" {
					out.Properties[k] = v
				}
			}
			out.TotalEntities = len(e.Entities)
			if hasPaging {
				out.TotalEntities = pg.Total
			}
		}
		take := min(len(e.Entities), p.Limit-len(out.Entities))
		for _, en := range e.Entities[:take] {
			v := entityView{Name: en.Properties.Name, Class: en.Class, Title: en.Properties.Title}
			if v.Class == nil {
				v.Class = []string{}
			}
			if out.Kind == "folder" && v.Name != "" {
				v.Path = path + "/" + v.Name
			}
			out.Entities = append(out.Entities, v)
		}
		offset += len(e.Entities)
		if len(out.Entities) >= p.Limit {
			out.Truncated = take < len(e.Entities) || offset < out.TotalEntities
			break
		}
		if !hasPaging || len(e.Entities) == 0 || offset >= pg.Total {
			break
		}
		if page == maxPages-1 {
			out.Truncated = true
		}
	}
	return jsonResult(out, []string{path})
}
