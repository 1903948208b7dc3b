// Package dispatch is the relay's one front door for the platform: every
// call to a target system goes through the same flow.
//
//	POST /v1/dispatch {"targetSystem", "operation", "payload"}
//	  trace id       traceparent or X-Trace-Id, else a new one; echoed in X-Trace-Id
//	  authenticate   OIDC bearer JWT -> caller (user, email, tenant, roles)
//	  validate       body shape, known system and operation, payload JSON Schema
//	  policy         Cedar decision per tenant; default deny; names the policy
//	  rate limit     per (tenant, connector)
//	  credentials    by the operation's auth pattern (integration owner or s2s)
//	  [write]        audit intent record made durable first, or nothing is done
//	  invoke         connector.Execute with timeout and retries (Retry-After honoured)
//	  transform      result checked against the operation's result schema, enveloped
//	  audit          outcome record made durable; a read's result is withheld otherwise
//	  return         200 JSON (or streamed content), or RFC 9457 problem+json
//
// Every refusal is audited too, under the caller's tenant (or
// AnonymousTenant before the caller is known). GET /v1/connectors lists the
// connectors with their operations' schemas, GET /v1/connectors/{id}/health
// checks one, and GET /v1/audit queries the caller's tenant's audit records
// when policy permits the "audit"/"query" action.
package dispatch
