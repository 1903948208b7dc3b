package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const (
	opList = "list_objects"
	opGet  = "get_object"
	opPut  = "put_object"
)

// Schema fragments shared by the operations.
const (
	bucketSchema = `{"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"}`
	// keySchema: 1 to 1024 characters, no control characters, not
	// starting with '/'. Execute checks the rest (1024 bytes, no "." or
	// ".." segment).
	keySchema    = `{"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^/\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*$"}`
	prefixSchema = `{"type": "string", "maxLength": 1024, "pattern": "^([^/\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*)?$"}`
)

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	b64 := 4 * ((c.cfg.MaxPutBytes + 2) / 3)
	return []connectors.Operation{
		{
			Name: opList,
			Description: "Lists the objects of an allowed bucket (optionally under a prefix) in key order, following " +
				"ListObjectsV2 continuation tokens up to limit; continuation_token resumes a truncated listing.",
			Access: connectors.Read,
			Auth:   connectors.ServiceToService,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["bucket"],
				"properties": {
					"bucket": ` + bucketSchema + `,
					"prefix": ` + prefixSchema + `,
					"limit": {"type": "integer", "minimum": 1, "maximum": ` + strconv.Itoa(maxListLimit) + `},
					"continuation_token": {"type": "string", "minLength": 1, "maxLength": 4096}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["bucket", "prefix", "objects", "count", "truncated"],
				"properties": {
					"bucket": {"type": "string"}, "prefix": {"type": "string"},
					"count": {"type": "integer", "minimum": 0},
					"truncated": {"type": "boolean"},
					"next_continuation_token": {"type": "string"},
					"objects": {"type": "array", "items": {
						"type": "object", "additionalProperties": false, "required": ["key", "size"],
						"properties": {
							"key": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
							"last_modified": {"type": "string", "format": "date-time"},
							"etag": {"type": "string"}, "storage_class": {"type": "string"}
						}
					}}
				}
			}`),
		},
		{
			Name: opGet,
			Description: "Streams one object's content from an allowed bucket, with S3's Content-Type and Content-Length " +
				"(object contents may hold personal data).",
			Access: connectors.Read,
			Auth:   connectors.ServiceToService,
			PII:    true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["bucket", "key"],
				"properties": {"bucket": ` + bucketSchema + `, "key": ` + keySchema + `}
			}`),
			// The content is streamed as the response body; there is no JSON result.
			Result: json.RawMessage(`{"description": "none: the object's content is the response body"}`),
		},
		{
			Name: opPut,
			// S3 has no per-user OAuth grant: the write goes through the
			// relay's assumed role into a service bucket of the tenant's
			// account, so it is service-to-service, not integration-owner.
			Description: "Writes one object (content base64, at most " + strconv.Itoa(c.cfg.MaxPutBytes) + " bytes decoded) " +
				"to an allowed service bucket, replacing any object of that key; written as the relay's assumed role.",
			Access: connectors.Write,
			Auth:   connectors.ServiceToService,
			PII:    true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["bucket", "key", "content"],
				"properties": {
					"bucket": ` + bucketSchema + `, "key": ` + keySchema + `,
					"content": {"type": "string", "contentEncoding": "base64", "maxLength": ` + strconv.Itoa(b64) + `,
						"pattern": "^[A-Za-z0-9+/]*={0,2}$"},
					"content_type": {"type": "string", "minLength": 3, "maxLength": 255, "pattern": "^[!#$%&'*+.^_|~0-9A-Za-z-]+/[!#$%&'*+.^_|~0-9A-Za-z-]+( *;[ -~]*)?$"}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["bucket", "key", "size", "sha256", "etag"],
				"properties": {
					"bucket": {"type": "string"}, "key": {"type": "string"},
					"size": {"type": "integer", "minimum": 0},
					"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
					"etag": {"type": "string"}, "version_id": {"type": "string"}
				}
			}`),
		},
	}
}

// checkBucket refuses buckets outside the configured list.
func (c *Connector) checkBucket(b string) error {
	if !c.buckets[b] {
		return connectors.Errorf(connectors.ClassInvalid, "bucket %q is not one this connector may reach", b)
	}
	return nil
}

// checkKey refuses keys S3 would take but that are unsafe to pass on: over
// 1024 bytes, not UTF-8, with control characters, starting with '/', or
// with a "." or ".." segment (which path-style URLs and proxies may
// resolve into another key or bucket). A prefix may be empty.
func checkKey(what, k string, empty bool) error {
	if k == "" {
		if empty {
			return nil
		}
		return connectors.Errorf(connectors.ClassInvalid, "%s is empty", what)
	}
	if len(k) > 1024 {
		return connectors.Errorf(connectors.ClassInvalid, "%s is longer than 1024 bytes", what)
	}
	if !utf8.ValidString(k) {
		return connectors.Errorf(connectors.ClassInvalid, "%s is not UTF-8", what)
	}
	for _, r := range k {
		if r < 0x20 || r == 0x7f {
			return connectors.Errorf(connectors.ClassInvalid, "%s holds a control character", what)
		}
	}
	if k[0] == '/' {
		return connectors.Errorf(connectors.ClassInvalid, "%s starts with '/'", what)
	}
	for _, seg := range strings.Split(k, "/") {
		if seg == "." || seg == ".." {
			return connectors.Errorf(connectors.ClassInvalid, "%s has a %q segment", what, seg)
		}
	}
	return nil
}

// decode parses the payload into v.
func decode(ec connectors.ExecContext, v any) error {
	d := json.NewDecoder(bytes.NewReader(ec.Payload))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &connectors.Error{Class: connectors.ClassInvalid, Detail: "the payload does not match the operation's schema", Err: err}
	}
	return nil
}

// objectID names an object in audit records.
func objectID(bucket, key string) string { return "s3://" + bucket + "/" + key }

type listPayload struct {
	Bucket            string `json:"bucket"`
	Prefix            string `json:"prefix"`
	Limit             int    `json:"limit"`
	ContinuationToken string `json:"continuation_token"`
}

type objectView struct {
	Key          string     `json:"key"`
	Size         int64      `json:"size"`
	LastModified *time.Time `json:"last_modified,omitempty"`
	ETag         string     `json:"etag,omitempty"`
	StorageClass string     `json:"storage_class,omitempty"`
}

type listResult struct {
	Bucket    string       `json:"bucket"`
	Prefix    string       `json:"prefix"`
	Objects   []objectView `json:"objects"`
	Count     int          `json:"count"`
	Truncated bool         `json:"truncated"`
	NextToken string       `json:"next_continuation_token,omitempty"`
}

func (c *Connector) list(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p listPayload
	if err := decode(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	if err := c.checkBucket(p.Bucket); err != nil {
		return connectors.Result{}, err
	}
	if err := checkKey("prefix", p.Prefix, true); err != nil {
		return connectors.Result{}, err
	}
	switch {
	case p.Limit == 0:
		p.Limit = defaultListLimit
	case p.Limit < 0 || p.Limit > maxListLimit:
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "limit %d is outside 1..%d", p.Limit, maxListLimit)
	}
	s, err := c.session(ec)
	if err != nil {
		return connectors.Result{}, err
	}
	if err := s.assume(ctx); err != nil {
		return connectors.Result{}, c.classify(ctx, s, "ListObjectsV2", p.Bucket, err)
	}

	res := listResult{Bucket: p.Bucket, Prefix: p.Prefix, Objects: []objectView{}}
	token := p.ContinuationToken
	// A server may answer empty truncated pages; bound the pages anyway.
	maxPages := p.Limit/c.cfg.PageSize + 10
	for page := 0; ; page++ {
		in := &awss3.ListObjectsV2Input{
			Bucket:  aws.String(p.Bucket),
			MaxKeys: aws.Int32(int32(min(c.cfg.PageSize, p.Limit-len(res.Objects)))),
		}
		if p.Prefix != "" {
			in.Prefix = aws.String(p.Prefix)
		}
		if token != "" {
			in.ContinuationToken = aws.String(token)
		}
		out, err := s.s3.ListObjectsV2(ctx, in)
		if err != nil {
			return connectors.Result{}, c.classify(ctx, s, "ListObjectsV2", p.Bucket, err)
		}
		for _, o := range out.Contents {
			if len(res.Objects) == p.Limit {
				break
			}
			res.Objects = append(res.Objects, objectView{
				Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), LastModified: o.LastModified,
				ETag: aws.ToString(o.ETag), StorageClass: string(o.StorageClass),
			})
		}
		next := aws.ToString(out.NextContinuationToken)
		more := aws.ToBool(out.IsTruncated) && next != "" && next != token
		if !more {
			break
		}
		token = next
		if len(res.Objects) >= p.Limit || page+1 >= maxPages {
			res.Truncated, res.NextToken = true, next
			break
		}
	}
	res.Count = len(res.Objects)
	ids := make([]string, len(res.Objects))
	for i, o := range res.Objects {
		ids[i] = objectID(p.Bucket, o.Key)
	}
	data, err := json.Marshal(res)
	if err != nil {
		return connectors.Result{}, fmt.Errorf("s3 list_objects: encode result: %w", err)
	}
	return connectors.Result{Data: data, IDs: ids}, nil
}

type objectPayload struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Content     string `json:"content"`
	ContentType string `json:"content_type"`
}

func (c *Connector) get(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p objectPayload
	if err := decode(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	if p.Content != "" || p.ContentType != "" {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "get_object takes only bucket and key")
	}
	if err := c.checkBucket(p.Bucket); err != nil {
		return connectors.Result{}, err
	}
	if err := checkKey("key", p.Key, false); err != nil {
		return connectors.Result{}, err
	}
	s, err := c.session(ec)
	if err != nil {
		return connectors.Result{}, err
	}
	target := p.Bucket + "/" + p.Key
	if err := s.assume(ctx); err != nil {
		return connectors.Result{}, c.classify(ctx, s, "GetObject", target, err)
	}
	out, err := s.s3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(p.Key)})
	if err != nil {
		return connectors.Result{}, c.classify(ctx, s, "GetObject", target, err)
	}
	size := int64(-1)
	if out.ContentLength != nil {
		size = *out.ContentLength
	}
	return connectors.Result{
		Body: out.Body, ContentType: aws.ToString(out.ContentType), Size: size,
		IDs: []string{objectID(p.Bucket, p.Key)},
	}, nil
}

type putResult struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	Size      int    `json:"size"`
	SHA256    string `json:"sha256"`
	ETag      string `json:"etag"`
	VersionID string `json:"version_id,omitempty"`
}

func (c *Connector) put(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p objectPayload
	if err := decode(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	if err := c.checkBucket(p.Bucket); err != nil {
		return connectors.Result{}, err
	}
	if err := checkKey("key", p.Key, false); err != nil {
		return connectors.Result{}, err
	}
	if len(p.Content) > 4*((c.cfg.MaxPutBytes+2)/3) {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "content is larger than %d bytes", c.cfg.MaxPutBytes)
	}
	content, err := base64.StdEncoding.Strict().DecodeString(p.Content)
	if err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "content is not standard base64")
	}
	if len(content) > c.cfg.MaxPutBytes {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "content is larger than %d bytes", c.cfg.MaxPutBytes)
	}
	if p.ContentType == "" {
		p.ContentType = "application/octet-stream"
	}
	if _, _, err := mime.ParseMediaType(p.ContentType); err != nil || strings.ContainsAny(p.ContentType, "\r\n") {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "content_type is not a media type")
	}
	s, err := c.session(ec)
	if err != nil {
		return connectors.Result{}, err
	}
	target := p.Bucket + "/" + p.Key
	if err := s.assume(ctx); err != nil {
		return connectors.Result{}, c.classify(ctx, s, "PutObject", target, err)
	}
	sum := sha256.Sum256(content)
	md := md5.Sum(content)
	out, err := s.s3.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(p.Bucket), Key: aws.String(p.Key),
		Body: bytes.NewReader(content), ContentLength: aws.Int64(int64(len(content))),
		ContentType: aws.String(p.ContentType),
		// S3 checks both; the MD5 also satisfies buckets with Object Lock.
		ContentMD5:     aws.String(base64.StdEncoding.EncodeToString(md[:])),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
		return connectors.Result{}, c.classify(ctx, s, "PutObject", target, err)
	}
	data, err := json.Marshal(putResult{
		Bucket: p.Bucket, Key: p.Key, Size: len(content), SHA256: hex.EncodeToString(sum[:]),
		ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId),
	})
	if err != nil {
		return connectors.Result{}, fmt.Errorf("s3 put_object: encode result: %w", err)
	}
	return connectors.Result{Data: data, IDs: []string{objectID(p.Bucket, p.Key)}}, nil
}
