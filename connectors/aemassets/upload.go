package aemassets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcc-bridge/bridge/connectors"
)

// initiateAnswer is the answer to {folder}.initiateUpload.json.
type initiateAnswer struct {
	CompleteURI string `json:"completeURI"`
	FolderPath  string `json:"folderPath"`
	Files       []struct {
		FileName    string   `json:"fileName"`
		MimeType    string   `json:"mimeType"`
		UploadToken string   `json:"uploadToken"`
		UploadURIs  []string `json:"uploadURIs"`
		MinPartSize int64    `json:"minPartSize"`
		MaxPartSize int64    `json:"maxPartSize"`
	} `json:"files"`
}

func (c *Connector) upload(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Folder         string `json:"folder"`
		FileName       string `json:"fileName"`
		Content        string `json:"content"`
		SHA256         string `json:"sha256"`
		CreateVersion  bool   `json:"createVersion"`
		VersionLabel   string `json:"versionLabel"`
		VersionComment string `json:"versionComment"`
		Replace        bool   `json:"replace"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	folder, err := c.damPath(p.Folder)
	if err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: folder: %v", err)
	}
	if !nameRE.MatchString(p.FileName) {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: fileName is not a usable asset name")
	}
	if len(p.Content) > (c.cfg.MaxUploadBytes+2)/3*4 {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: content exceeds %d bytes", c.cfg.MaxUploadBytes)
	}
	data, err := base64.StdEncoding.DecodeString(p.Content)
	switch {
	case err != nil:
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: content is not standard base64")
	case len(data) == 0 || len(data) > c.cfg.MaxUploadBytes:
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: content must be 1 to %d bytes", c.cfg.MaxUploadBytes)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if p.SHA256 != "" && p.SHA256 != digest {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: content's SHA-256 is %s, not the sha256 given", digest)
	}
	s, err := c.session(ec)
	if err != nil {
		return connectors.Result{}, err
	}

	// 1. Initiate.
	body, _, err := c.do(ctx, s, http.MethodPost, escapePath(folder)+".initiateUpload.json",
		url.Values{"fileName": {p.FileName}, "fileSize": {strconv.Itoa(len(data))}})
	if err != nil {
		return connectors.Result{}, err
	}
	var ini initiateAnswer
	if err := json.Unmarshal(body, &ini); err != nil {
		return connectors.Result{}, &connectors.Error{Class: connectors.ClassUnavailable, Detail: "AEM answered the upload's initiation with JSON of an unexpected shape", Err: err}
	}
	if len(ini.Files) != 1 || ini.Files[0].FileName != p.FileName || ini.Files[0].UploadToken == "" || len(ini.Files[0].UploadURIs) == 0 {
		return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "AEM answered the upload's initiation without this file's upload token and URIs")
	}
	f := ini.Files[0]
	uploadToken := f.UploadToken
	parts, err := planParts(int64(len(data)), len(f.UploadURIs), f.MinPartSize, f.MaxPartSize)
	if err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "AEM's upload URIs cannot take this file: %v", err)
	}
	complete, err := c.completeRef(s, ini.CompleteURI)
	if err != nil {
		return connectors.Result{}, err
	}

	// 2. The parts, in order, each to its URI.
	var off int64
	for i, n := range parts {
		if err := c.putPart(ctx, f.UploadURIs[i], i, data[off:off+n]); err != nil {
			return connectors.Result{}, err
		}
		off += n
	}

	// 3. Complete.
	form := url.Values{"fileName": {f.FileName}, "mimeType": {f.MimeType}, "uploadToken": {uploadToken}}
	if p.CreateVersion {
		form.Set("createVersion", "true")
		if p.VersionLabel != "" {
			form.Set("versionLabel", p.VersionLabel)
		}
		if p.VersionComment != "" {
			form.Set("versionComment", p.VersionComment)
		}
	}
	if p.Replace {
		form.Set("replace", "true")
	}
	if _, _, err := c.do(ctx, s, http.MethodPost, complete, form, uploadToken); err != nil {
		return connectors.Result{}, err
	}
	folderPath := folder
	if fp, err := c.damPath(ini.FolderPath); err == nil {
		folderPath = fp
	}
	assetPath := folderPath + "/" + f.FileName
	return jsonResult(map[string]any{
		"path": assetPath, "fileName": f.FileName, "mimeType": f.MimeType, "size": len(data), "sha256": digest, "parts": len(parts),
	}, []string{assetPath})
}

// planParts splits size bytes over at most uris parts: each part
// ceil(size/uris) bytes but at least minPart (fewer URIs are used then),
// the last one what remains; no part over maxPart (0 means no limit).
func planParts(size int64, uris int, minPart, maxPart int64) ([]int64, error) {
	if uris < 1 || size < 1 {
		return nil, errors.New("no upload URI or nothing to upload")
	}
	if maxPart > 0 && (size+maxPart-1)/maxPart > int64(uris) {
		return nil, fmt.Errorf("%d bytes need more than %d parts of at most %d bytes", size, uris, maxPart)
	}
	part := (size + int64(uris) - 1) / int64(uris)
	part = max(part, minPart)
	if maxPart > 0 && part > maxPart {
		part = maxPart
	}
	var parts []int64
	for off := int64(0); off < size; off += part {
		parts = append(parts, min(part, size-off))
	}
	return parts, nil
}

// completeRef checks the completeURI AEM sent: relative, or absolute on
// the AEM host itself (it gets the bearer token), and returns it as a
// reference on that host.
func (c *Connector) completeRef(s *session, raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || raw == "" || u.User != nil:
		return "", connectors.Errorf(connectors.ClassUnavailable, "AEM sent an unusable completeURI")
	case u.IsAbs() && (u.Scheme != s.base.Scheme || u.Host != s.base.Host):
		return "", connectors.Errorf(connectors.ClassUnavailable, "AEM sent a completeURI on another host; the token does not go there")
	case !u.IsAbs() && (u.Host != "" || !strings.HasPrefix(u.Path, "/")):
		return "", connectors.Errorf(connectors.ClassUnavailable, "AEM sent an unusable completeURI")
	}
	return u.RequestURI(), nil
}

// putPart PUTs one part to its pre-signed URI, without the AEM token.
// Errors name the part, never the URI (it carries a signature).
func (c *Connector) putPart(ctx context.Context, uri string, i int, part []byte) error {
	u, err := checkURL(uri)
	if err != nil {
		return connectors.Errorf(connectors.ClassUnavailable, "AEM sent an unusable upload URI for part %d: %v", i+1, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), bytes.NewReader(part))
	if err != nil {
		return connectors.Errorf(connectors.ClassUnavailable, "AEM sent an unusable upload URI for part %d", i+1)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.client.Do(req)
	if err != nil {
		return transportError(ctx, fmt.Sprintf("the binary storage (part %d)", i+1), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	// Storage errors are XML that may quote the signed URI: only the
	// status is kept.
	who := fmt.Sprintf("the binary storage (part %d)", i+1)
	switch st := resp.StatusCode; {
	case st >= 200 && st <= 299:
		return nil
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		// The pre-signed URI was refused (expired, or tampered with): the
		// upload must start again; the tenant's credential is not at fault.
		return connectors.Errorf(connectors.ClassUnavailable, "%s refused the upload URI (%d); start the upload again", who, st)
	}
	return c.classify(ctx, who, resp, nil)
}
