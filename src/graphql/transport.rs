//! GraphQL over HTTP as Apollo's and urql's links speak it: one operation or a batch (a JSON
//! array) per POST, one operation per GET, and every refusal as a GraphQL JSON error with
//! `extensions.code`, never a plain-text or debug body.
use std::collections::HashMap;

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Query, Request},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::error::AppError;

/// What a POST carried.
pub enum Operations {
    Single(Box<async_graphql::Request>),
    Batch(Vec<async_graphql::Request>),
}

fn bad_request(message: impl Into<String>) -> AppError {
    AppError::transport(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// `application/json` (any parameters). Other media types are refused: they would also let a
/// cross-site form post without a CORS preflight.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads a POST body: JSON, at most the body limit (the route's `DefaultBodyLimit`), one
/// operation or a batch of at most `max_batch`.
pub async fn read_post(req: Request, max_batch: usize) -> Result<Operations, AppError> {
    if !is_json(req.headers()) {
        return Err(AppError::transport(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_REQUEST",
            "POST /graphql takes Content-Type: application/json",
        ));
    }
    let body = match Bytes::from_request(req, &()).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
        Err(_) => return Err(bad_request("cannot read the request body")),
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'[') {
        let batch: Vec<async_graphql::Request> =
            serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid batch: {e}")))?;
        if batch.is_empty() {
            return Err(bad_request("a batch needs at least one operation"));
        }
        if batch.len() > max_batch {
            return Err(bad_request(format!("a batch may hold at most {max_batch} operations; got {}", batch.len())));
        }
        return Ok(Operations::Batch(batch));
    }
    serde_json::from_slice(&body)
        .map(|op| Operations::Single(Box::new(op)))
        .map_err(|e| bad_request(format!("invalid GraphQL request body: {e}")))
}

/// Reads a GET query string: `query`, `operationName`, and `variables` and `extensions` as
/// JSON text (Apollo sends a persisted query's hash this way).
pub fn read_get(uri: &axum::http::Uri) -> Result<async_graphql::Request, AppError> {
    let Query(params) = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map_err(|_| bad_request("the query string is not valid URL encoding"))?;
    let json = |name: &str| -> Result<Option<serde_json::Value>, AppError> {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| serde_json::from_str(v).map_err(|e| bad_request(format!("`{name}` is not JSON: {e}"))))
            .transpose()
    };
    let mut body = serde_json::Map::new();
    body.insert("query".into(), params.get("query").cloned().unwrap_or_default().into());
    if let Some(name) = params.get("operationName").filter(|v| !v.is_empty()) {
        body.insert("operationName".into(), name.clone().into());
    }
    for name in ["variables", "extensions"] {
        if let Some(v) = json(name)? {
            body.insert(name.into(), v);
        }
    }
    let req: async_graphql::Request =
        serde_json::from_value(body.into()).map_err(|e| bad_request(format!("invalid GraphQL request: {e}")))?;
    if req.query.is_empty() && req.extensions.is_empty() {
        return Err(bad_request("GET /graphql needs ?query= (GraphiQL is at /graphiql)"));
    }
    Ok(req)
}

fn too_large() -> AppError {
    AppError::transport(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "request body too large")
}

/// Unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    AppError::transport(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no route for {}", uri.path()))
        .into_graphql_response()
}

/// Gives every error response that is not JSON yet (axum's 405, tower-http's 413, rejections)
/// a GraphQL JSON body with a code; headers such as `Allow` stay.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json_body = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/graphql-response+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json_body {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("NOT_FOUND", "not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("METHOD_NOT_ALLOWED", "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "request body too large"),
        StatusCode::REQUEST_TIMEOUT => ("TIMEOUT", "request timed out"),
        s if s.is_server_error() => ("INTERNAL", "internal error"),
        _ => ("BAD_REQUEST", "bad request"),
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = AppError::transport(status, code, message).into_graphql_response().into_body();
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::new(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_reads_camel_case_names_and_json_parameters() {
        let uri: axum::http::Uri =
            "/graphql?query=query%20Q%20%7B%20__typename%20%7D&operationName=Q&variables=%7B%22a%22%3A1%7D"
                .parse()
                .unwrap();
        let req = read_get(&uri).unwrap();
        assert_eq!(req.operation_name.as_deref(), Some("Q"));
        assert_eq!(req.variables.get("a").map(ToString::to_string).as_deref(), Some("1"));
        let bad: axum::http::Uri = "/graphql?query=%7Ba%7D&variables=%7Bnope".parse().unwrap();
        assert_eq!(read_get(&bad).err().map(|e| e.code()), Some("BAD_REQUEST"));
        let empty: axum::http::Uri = "/graphql".parse().unwrap();
        assert_eq!(read_get(&empty).err().map(|e| e.code()), Some("BAD_REQUEST"));
    }

    #[test]
    fn json_media_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(header::CONTENT_TYPE, "Application/JSON; charset=utf-8".parse().unwrap());
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&h));
    }
}
