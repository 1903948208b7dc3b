package callerauth

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// tenantRE is the shape of a tenant id: safe in paths, metric labels and
// file names.
var tenantRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidTenant reports whether s is a well-formed tenant id: a DNS label of
// 1 to 63 lowercase letters, digits and inner hyphens, as in agent
// identities (spiffe://<tenant>/agent/<id>), store and audit folders.
func ValidTenant(s string) bool { return tenantRE.MatchString(s) }

// claimSet is a verified token payload, by claim name.
type claimSet map[string]json.RawMessage

// str returns the string claim name: ok is false if it is absent or null,
// err is non-nil if it is not a string.
func (c claimSet) str(name string) (v string, ok bool, err error) {
	raw, present := c[name]
	if !present || string(raw) == "null" {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false, fmt.Errorf("claim %q is not a string", name)
	}
	return v, true, nil
}

// roles returns the roles claim name, a JSON array of strings or a space-
// or comma-separated string. Absent means no roles.
func (c claimSet) roles(name string) ([]string, error) {
	raw, present := c[name]
	if !present || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		out := list[:0]
		for _, r := range list {
			if r = strings.TrimSpace(r); r != "" {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("claim %q is neither a string nor an array of strings", name)
	}
	out := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// caller builds the Caller from a verified payload.
func (c claimSet) caller(m ClaimMap, issuer, method string) (Caller, error) {
	bad := func(err error) (Caller, error) {
		return Caller{}, newError(KindClaims, err.Error(), nil)
	}
	user, ok, err := c.str(m.UserID)
	if err != nil {
		return bad(err)
	}
	if !ok || user == "" {
		return bad(fmt.Errorf("token lacks the user id claim %q", m.UserID))
	}
	email, _, err := c.str(m.Email)
	if err != nil {
		return bad(err)
	}
	tenant, ok, err := c.str(m.Tenant)
	if err != nil {
		return bad(err)
	}
	if !ok || tenant == "" {
		return bad(fmt.Errorf("token lacks the tenant claim %q", m.Tenant))
	}
	if !ValidTenant(tenant) {
		return bad(fmt.Errorf("tenant claim %q is not a valid tenant id", m.Tenant))
	}
	tenantName := tenant
	if m.TenantName != "" {
		name, ok, err := c.str(m.TenantName)
		if err != nil {
			return bad(err)
		}
		if ok && name != "" {
			tenantName = name
		}
	}
	roles, err := c.roles(m.Roles)
	if err != nil {
		return bad(err)
	}
	return Caller{
		UserID:     user,
		Email:      email,
		Tenant:     tenant,
		TenantName: tenantName,
		Roles:      roles,
		Issuer:     issuer,
		AuthMethod: method,
	}, nil
}
