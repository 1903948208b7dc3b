package slack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const (
	opPost = "post_message"
	opList = "list_channels"
)

// Limits of list_channels.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
	// pageSize is the most channels asked for per page: Slack recommends
	// no more than 200.
	pageSize = 200
)

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	return []connectors.Operation{
		{
			Name: opPost,
			Description: "Posts a message to a Slack channel (by id, or #name) as the workspace's bot user, optionally as a reply in a thread. " +
				"Returns the channel id and the message's timestamp (its id in Slack).",
			Access: connectors.Write,
			// The bot posts as itself, not in the caller's name.
			Attributed: false,
			// The text is free-form and addressed to people: treat it as personal data.
			PII: true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["channel", "text"],
				"properties": {
					"channel": {"type": "string", "minLength": 1, "maxLength": 80, "pattern": "^#?[A-Za-z0-9][A-Za-z0-9._-]*$"},
					"text": {"type": "string", "minLength": 1, "maxLength": 40000},
					"thread_ts": {"type": "string", "pattern": "^[0-9]{1,12}\\.[0-9]{1,6}$"},
					"reply_broadcast": {"type": "boolean"},
					"unfurl_links": {"type": "boolean"},
					"unfurl_media": {"type": "boolean"},
					"mrkdwn": {"type": "boolean"}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["channel", "ts"],
				"properties": {
					"channel": {"type": "string", "minLength": 1},
					"ts": {"type": "string", "minLength": 1},
					"thread_ts": {"type": "string"}
				}
			}`),
		},
		{
			Name: opList,
			Description: "Lists the workspace's public (and, when asked, private) channels the bot can see, following Slack's cursor " +
				"pages up to limit (default 100, at most 1000); next_cursor continues the listing.",
			Access: connectors.Read,
			// Slack has no identity for the relay: the bot token of the
			// owner's installation is the only credential (see the package doc).
			Auth: connectors.IntegrationOwner,
			PII:  false,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false,
				"properties": {
					"limit": {"type": "integer", "minimum": 1, "maximum": 1000},
					"types": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"enum": ["public_channel", "private_channel"]}},
					"exclude_archived": {"type": "boolean"},
					"cursor": {"type": "string", "minLength": 1, "maxLength": 1024}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["channels", "count"],
				"properties": {
					"count": {"type": "integer", "minimum": 0},
					"next_cursor": {"type": "string", "minLength": 1},
					"channels": {"type": "array", "items": {
						"type": "object", "additionalProperties": false,
						"required": ["id", "name", "is_private", "is_archived"],
						"properties": {
							"id": {"type": "string", "minLength": 1},
							"name": {"type": "string"},
							"is_private": {"type": "boolean"},
							"is_archived": {"type": "boolean"},
							"num_members": {"type": "integer", "minimum": 0},
							"created": {"type": "integer"},
							"topic": {"type": "string"},
							"purpose": {"type": "string"}
						}
					}}
				}
			}`),
		},
	}
}

// needToken refuses an execution without a bot token.
func needToken(ec connectors.ExecContext) error {
	if ec.Credential.Token == "" {
		return connectors.Errorf(connectors.ClassUnauthorized, "the tenant's Slack credential has no bot token; the integration owner must reconnect Slack")
	}
	return nil
}

func (c *Connector) postMessage(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Channel        string `json:"channel"`
		Text           string `json:"text"`
		ThreadTS       string `json:"thread_ts,omitempty"`
		ReplyBroadcast *bool  `json:"reply_broadcast,omitempty"`
		UnfurlLinks    *bool  `json:"unfurl_links,omitempty"`
		UnfurlMedia    *bool  `json:"unfurl_media,omitempty"`
		Mrkdwn         *bool  `json:"mrkdwn,omitempty"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	if err := needToken(ec); err != nil {
		return connectors.Result{}, err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return connectors.Result{}, err
	}
	data, err := c.call(ctx, http.MethodPost, "chat.postMessage", nil, body, ec.Credential.Token)
	if err != nil {
		return connectors.Result{}, err
	}
	var ans struct {
		Channel string `json:"channel"`
		TS      string `json:"ts"`
		Message struct {
			ThreadTS string `json:"thread_ts"`
		} `json:"message"`
	}
	if err := json.Unmarshal(data, &ans); err != nil || ans.Channel == "" || ans.TS == "" {
		return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "Slack's answer to chat.postMessage lacks the channel or ts")
	}
	out := struct {
		Channel  string `json:"channel"`
		TS       string `json:"ts"`
		ThreadTS string `json:"thread_ts,omitempty"`
	}{ans.Channel, ans.TS, ans.Message.ThreadTS}
	return jsonResult(out, []string{ans.Channel + "/" + ans.TS})
}

// channel is a channel as callers see it.
type channel struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	IsPrivate  bool   `json:"is_private"`
	IsArchived bool   `json:"is_archived"`
	NumMembers *int   `json:"num_members,omitempty"`
	Created    int64  `json:"created,omitempty"`
	Topic      string `json:"topic,omitempty"`
	Purpose    string `json:"purpose,omitempty"`
}

// slackChannel is a conversation object of conversations.list.
type slackChannel struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	IsPrivate  bool   `json:"is_private"`
	IsArchived bool   `json:"is_archived"`
	NumMembers *int   `json:"num_members"`
	Created    int64  `json:"created"`
	Topic      struct {
		Value string `json:"value"`
	} `json:"topic"`
	Purpose struct {
		Value string `json:"value"`
	} `json:"purpose"`
}

func (c *Connector) listChannels(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Limit           int      `json:"limit"`
		Types           []string `json:"types"`
		ExcludeArchived bool     `json:"exclude_archived"`
		Cursor          string   `json:"cursor"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	if p.Limit <= 0 {
		p.Limit = defaultListLimit
	}
	p.Limit = min(p.Limit, maxListLimit)
	if len(p.Types) == 0 {
		p.Types = []string{"public_channel"}
	}
	if err := needToken(ec); err != nil {
		return connectors.Result{}, err
	}
	out := struct {
		Channels   []channel `json:"channels"`
		Count      int       `json:"count"`
		NextCursor string    `json:"next_cursor,omitempty"`
	}{Channels: []channel{}}
	var ids []string
	cursor := p.Cursor
	seen := map[string]bool{cursor: true}
	for page := 0; ; page++ {
		if page >= c.maxPages {
			// Slack may answer short pages; stop and hand the cursor back.
			break
		}
		q := url.Values{
			"limit": {strconv.Itoa(min(pageSize, p.Limit-len(out.Channels)))},
			"types": {strings.Join(p.Types, ",")},
		}
		if p.ExcludeArchived {
			q.Set("exclude_archived", "true")
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		data, err := c.call(ctx, http.MethodGet, "conversations.list", q, nil, ec.Credential.Token)
		if err != nil {
			return connectors.Result{}, err
		}
		var ans struct {
			Channels []slackChannel `json:"channels"`
			Meta     struct {
				NextCursor string `json:"next_cursor"`
			} `json:"response_metadata"`
		}
		if err := json.Unmarshal(data, &ans); err != nil {
			return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "Slack's answer to conversations.list is not a channel list")
		}
		for _, sc := range ans.Channels {
			if len(out.Channels) >= p.Limit {
				break
			}
			out.Channels = append(out.Channels, channel{ID: sc.ID, Name: sc.Name, IsPrivate: sc.IsPrivate, IsArchived: sc.IsArchived,
				NumMembers: sc.NumMembers, Created: sc.Created, Topic: sc.Topic.Value, Purpose: sc.Purpose.Value})
			ids = append(ids, sc.ID)
		}
		cursor = ans.Meta.NextCursor
		if cursor == "" || len(out.Channels) >= p.Limit {
			break
		}
		if seen[cursor] {
			return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "Slack repeated a conversations.list cursor")
		}
		seen[cursor] = true
	}
	// A full page may have ended where the channels end: the cursor
	// then leads to an empty page, which is still a correct answer.
	out.NextCursor = cursor
	out.Count = len(out.Channels)
	return jsonResult(out, ids)
}

func jsonResult(v any, ids []string) (connectors.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return connectors.Result{}, err
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}
