package aemassets

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// badNameChars are the characters a folder or asset name may not hold:
// JCR's illegal name characters, URL delimiters and control characters.
const badNameChars = "\\x00-\\x1f\\x7f/\\\\?#%*:\\[\\]|\"<>{}"

// pathPattern is a JSON Schema (and Go) pattern for root or a path in it.
func pathPattern(root string) string {
	return "^" + regexp.QuoteMeta(root) + "(/[^" + badNameChars + "]+)*$"
}

// namePattern is a JSON Schema (and Go) pattern for an asset's file name.
const namePattern = "^[^." + badNameChars + "][^" + badNameChars + "]{0,254}$"

var (
	segmentRE = regexp.MustCompile("^[^" + badNameChars + "]{1,255}$")
	nameRE    = regexp.MustCompile(namePattern)
)

// checkSegments checks the segments of a relative path ("a/b/c").
func checkSegments(rel string) error {
	for _, seg := range strings.Split(rel, "/") {
		if seg == "." || seg == ".." || !segmentRE.MatchString(seg) {
			return errors.New("a path segment is empty, . or .., or holds a character AEM names may not")
		}
	}
	return nil
}

// damPath checks that p is the DAM root or a path in it.
func (c *Connector) damPath(p string) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == c.cfg.DAMRoot {
		return p, nil
	}
	rel, ok := strings.CutPrefix(p, c.cfg.DAMRoot+"/")
	if !ok {
		return "", errors.New("want " + c.cfg.DAMRoot + " or a path in it")
	}
	if err := checkSegments(rel); err != nil {
		return "", err
	}
	return p, nil
}

// escapePath escapes each segment of an absolute path for a URL.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// apiPath is the Assets HTTP API resource of a DAM path (without the
// .json extension): /content/dam/a/b.png -> /api/assets/a/b.png.
func apiPath(p string) string {
	return "/api/assets" + escapePath(strings.TrimPrefix(p, "/content/dam"))
}
