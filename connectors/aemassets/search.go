package aemassets

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/mcc-bridge/bridge/connectors"
)

// qbAnswer is the QueryBuilder JSON servlet's answer (p.hits=simple).
type qbAnswer struct {
	Success      bool   `json:"success"`
	ErrorMessage string `json:"errorMessage"`
	Results      int    `json:"results"`
	Total        int    `json:"total"`
	More         bool   `json:"more"`
	Offset       int    `json:"offset"`
	Hits         []struct {
		Path         string `json:"path"`
		Name         string `json:"name"`
		Title        string `json:"title"`
		Excerpt      string `json:"excerpt"`
		LastModified string `json:"lastModified"`
		Created      string `json:"created"`
	} `json:"hits"`
}

// hitView is a hit as callers see it.
type hitView struct {
	Path         string `json:"path"`
	Name         string `json:"name"`
	Title        string `json:"title,omitempty"`
	Excerpt      string `json:"excerpt,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
	Created      string `json:"created,omitempty"`
}

func (c *Connector) search(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Path     string `json:"path"`
		Fulltext string `json:"fulltext"`
		Limit    int    `json:"limit"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	if p.Path == "" {
		p.Path = c.cfg.DAMRoot
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
		Assets []hitView `json:"assets"`
		Count  int       `json:"count"`
		More   bool      `json:"more"`
	}{Assets: []hitView{}}
	var ids []string
	// Pages needed for limit hits, plus one: the loop's bound even against
	// a server whose pages come up short.
	maxPages := (p.Limit+pageSize-1)/pageSize + 1
	offset := 0
	for page := 0; page < maxPages; page++ {
		q := url.Values{
			"path": {path}, "type": {"dam:Asset"}, "orderby": {"path"},
			"p.offset": {strconv.Itoa(offset)}, "p.limit": {strconv.Itoa(pageSize)}, "p.guessTotal": {"true"},
		}
		if p.Fulltext != "" {
			q.Set("fulltext", p.Fulltext)
		}
		var a qbAnswer
		if err := c.getJSON(ctx, s, "/bin/querybuilder.json?"+q.Encode(), &a); err != nil {
			return connectors.Result{}, err
		}
		if !a.Success {
			return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "AEM refused the query: %s", clean(a.ErrorMessage, s.token.Reveal()))
		}
		take := min(len(a.Hits), p.Limit-len(out.Assets))
		for _, h := range a.Hits[:take] {
			out.Assets = append(out.Assets, hitView(h))
			ids = append(ids, h.Path)
		}
		offset += len(a.Hits)
		if len(out.Assets) >= p.Limit {
			out.More = take < len(a.Hits) || a.More
			break
		}
		if !a.More || len(a.Hits) == 0 {
			break
		}
		if page == maxPages-1 {
			out.More = true
		}
	}
	out.Count = len(out.Assets)
	return jsonResult(out, ids)
}
