// Package aemassets is the dispatcher's Adobe Experience Manager Assets
// connector (AEM as a Cloud Service author): asset search, asset and
// folder metadata, and asset upload by direct binary upload.
//
//	search_assets  GET /bin/querybuilder.json?path=/content/dam/x&type=dam:Asset
//	                   &fulltext=...&orderby=path&p.offset=N&p.limit=M&p.guessTotal=true
//	  <- {"success", "results", "total", "more", "offset", "hits": [{"path", "name", "title", ...}]}
//	               ... p.offset += results while "more", up to the payload's limit
//	get_metadata   GET /api/assets/x/y.png.json?offset=N&limit=M (Assets HTTP API, Siren)
//	  <- {"class", "properties": {..., "metadata", "srn:paging": {"total", "offset", "limit"}},
//	      "entities": [children or renditions], "links"}
//	               ... offset += limit until srn:paging.total, up to the payload's limit
//	upload_asset   POST /content/dam/x.initiateUpload.json  fileName, fileSize (form)
//	  <- 201 {"completeURI", "folderPath", "files": [{"fileName", "mimeType",
//	          "uploadToken", "uploadURIs", "minPartSize", "maxPartSize"}]}
//	               PUT part i to uploadURIs[i], in order (pre-signed: no Authorization)
//	               POST {completeURI}  fileName, mimeType, uploadToken (form) -> 200
//
// Search uses the QueryBuilder JSON servlet, AEM's documented search API
// with p.offset/p.limit paging (the Assets HTTP API has no full-text
// search); metadata uses the Assets HTTP API, whose folder listings page
// with offset/limit and report srn:paging.
//
// Authentication: requests to AEM carry "Authorization: Bearer <token>":
// for reads the service-to-service IMS access token of the tenant's
// technical account, for uploads (a write) the integration owner's OAuth
// access token. The pre-signed upload URIs point at AEM's binary cloud
// storage and never get the token. The credential's "base_url" value, when
// present, names the tenant's AEM author host instead of Config.BaseURL.
package aemassets
