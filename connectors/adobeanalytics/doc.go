// Package adobeanalytics is the dispatcher's Adobe Analytics connector:
// aggregated reports from the Analytics 2.0 Reports API.
//
//	run_report  POST {BaseURL}/api/{globalCompanyId}/reports
//	            Authorization: Bearer <IMS access token>
//	            x-api-key: <client id>
//	            x-proxy-global-company-id: <globalCompanyId>
//	            {"rsid", "globalFilters": [{"type": "dateRange", ...}],
//	             "metricContainer": {"metrics": [...]}, "dimension",
//	             "settings": {"limit": pageSize, "page": 0, 1, ...}}
//	  <- {"totalPages", "firstPage", "lastPage", "number", "numberOfElements",
//	      "totalElements", "rows": [{"itemId", "value", "data": [...]}],
//	      "summaryData": {"totals": [...]}}
//	            ... next page until lastPage, totalPages or the payload's limit
//	errors      429 {"error_code":"429050","message":"Too many requests"} (12
//	            requests per 6 s per user; Retry-After when sent, else 6 s),
//	            401 {"error_code":"401013","message":"Oauth token is not valid"},
//	            4xx {"errorCode", "errorDescription", "errorId"}
//
// Authentication is service-to-service: the credential manager gets an IMS
// access token with the OAuth client credentials grant (valid 24 h, no
// refresh token). The credential's Token is that access token; its Values
// carry "client_id" (required: sent as x-api-key) and, optionally,
// "global_company_id" (else Config.GlobalCompanyID). The connector keeps
// each tenant's client under Adobe's rate limit with a token bucket of
// its own, so a report of many pages waits rather than being refused.
package adobeanalytics
