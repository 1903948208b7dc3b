package credentials

// SetHooks sets the test hooks of m; call it before m is used.
// before runs with the lease held, just before the refresh request; after
// runs between the token response and the commit, and an error from it
// aborts the refresh there (a simulated crash).
func SetHooks(m *Manager, before func(tenant, system string), after func(tenant, system string) error) {
	m.hooks = hooks{beforeTokenRequest: before, afterTokenResponse: after}
}
