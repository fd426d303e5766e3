//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the HTTP API, generated from the
//! handlers' own annotations and answer types (utoipa): the router is built from the same
//! annotations (`api_routes`), so a route cannot be missing from it. The operator API is in it,
//! behind its own bearer scheme.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "duet",
        description = "The HTTP API of duet, a self-hosted one-to-one video calling server. Signaling runs over the WebSocket at /ws (PROTOCOL.md section 3). Errors are `{error, message}`; every answer carries the browser security headers.",
        license(name = "MIT")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "accounts", description = "Register, log in and out"),
        (name = "contacts", description = "The contact list and the directory"),
        (name = "chat", description = "Chat history (messages are sent over the WebSocket)"),
        (name = "calls", description = "Call history and ICE servers (calls are made over the WebSocket)"),
        (name = "signaling", description = "The WebSocket"),
        (name = "operator", description = "The operator API: only with DUET_ADMIN_TOKEN set, and 404 without that bearer token"),
        (name = "operations", description = "Health, readiness, metrics and this description"),
    )
)]
pub struct ApiDoc;

/// The three ways a request is authenticated.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(what.to_string());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme("session", bearer("The token `POST /api/login` answers with"));
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::auth::SESSION_COOKIE,
                "The session cookie login sets; a POST, PUT or DELETE it authenticates must carry this server's Origin",
            ))),
        );
        components.add_security_scheme("admin", bearer("DUET_ADMIN_TOKEN"));
    }
}

/// The description, made once, when the router is.
static DOCUMENT: OnceLock<String> = OnceLock::new();

pub fn publish(description: &utoipa::openapi::OpenApi) {
    DOCUMENT.get_or_init(|| description.to_pretty_json().unwrap_or_default());
}

/// This description.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "openapi", tag = "operations", responses(
    (status = 200, description = "The OpenAPI 3.1 description of this API", body = Object),
))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.get().map_or("{}", String::as_str))
}

#[cfg(test)]
mod tests {
    use super::super::api_routes;

    #[test]
    fn the_description_is_openapi_3_1_with_the_three_schemes() {
        let doc: serde_json::Value = serde_json::from_str(&api_routes().1.to_json().unwrap_or_default()).unwrap_or_default();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in ["/api/register", "/api/login", "/api/users", "/api/contacts/{id}", "/api/calls/{id}", "/ws", "/api/admin/actors/{name}/kill", "/metrics", "/api/openapi.json"] {
            assert!(doc["paths"][path].is_object(), "{path} is described");
        }
        for scheme in ["session", "cookie", "admin"] {
            assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{scheme}");
        }
        assert_eq!(doc["paths"]["/api/admin/actors"]["get"]["security"][0]["admin"], serde_json::json!([]));
        assert!(doc["paths"]["/api/register"]["post"]["security"].is_null(), "registering needs no session");
        let ids: Vec<&str> = doc["paths"].as_object().into_iter().flat_map(|p| p.values()).flat_map(|ops| ops.as_object().into_iter().flat_map(|o| o.values())).filter_map(|op| op["operationId"].as_str()).collect();
        let unique: std::collections::HashSet<&&str> = ids.iter().collect();
        assert_eq!((ids.len(), unique.len()), (20, 20), "one operation id each: {ids:?}");
    }
}
