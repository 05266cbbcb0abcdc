//! Request bodies and query strings read the way specs/03 wants their failures reported: a body over
//! [`MAX_BODY_BYTES`] is 413, text that is not JSON is 400, JSON of the wrong shape (not an object, unknown or missing
//! field, wrong type, a symbol that does not parse) is 422 `validation_failed` naming the field as a JSON pointer.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::problem::ApiError;

/// Largest request body accepted (specs/05 §6): an agent config is well under 2 KiB, so 64 KiB leaves room for any
/// legitimate request while a client cannot make the server buffer megabytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest body of `POST /api/v1/backtests` (specs/05 §6), which carries a CSV inline: 16 MiB is about 200,000
/// one-minute bars (five months) as exchanges export them; the server holds a few copies of it while it checks and
/// stores it, so the bound keeps one request within ~100 MB. Bigger files are for `strom backtest --csv`.
pub const MAX_BACKTEST_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The path whose requests may be up to [`MAX_BACKTEST_BODY_BYTES`].
const BACKTESTS_PATH: &str = "/api/v1/backtests";

/// The body limit of a request to `path`: [`MAX_BACKTEST_BODY_BYTES`] for a backtest request, else
/// [`MAX_BODY_BYTES`].
pub fn body_limit(path: &str) -> usize {
    if path == BACKTESTS_PATH {
        MAX_BACKTEST_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Reads a whole body, refusing more than [`MAX_BODY_BYTES`].
///
/// # Errors
/// `PayloadTooLarge` over the limit; `BadRequest` when the body cannot be read.
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    read_body_limited(body, MAX_BODY_BYTES).await
}

/// Reads a whole body, refusing more than `limit` bytes.
///
/// # Errors
/// `PayloadTooLarge` over the limit; `BadRequest` when the body cannot be read.
pub async fn read_body_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("request body is larger than {limit} bytes"))
}

/// Parses `bytes` as JSON of type `T`.
///
/// # Errors
/// `BadRequest` when the bytes are not JSON; `Validation` (naming the field) when the JSON has the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    // Every request body of the API is an object. Checked here because serde would also build a struct from an
    // array of its fields in order (`[null]` as a `StopRequest`), which no schema in specs/openapi.yaml allows.
    if !value.is_object() {
        return Err(ApiError::invalid(
            "/",
            "the request body must be a JSON object",
        ));
    }
    if let Some(field) = string_with_nul(&value, &mut String::new()) {
        return Err(ApiError::invalid(field, "must not contain U+0000"));
    }
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        ApiError::invalid(pointer(e.path(), &message), message)
    })
}

/// The JSON pointer of the first string (or key) holding U+0000: Postgres text and jsonb cannot store it, so the
/// API refuses it everywhere (specs/03 §1) rather than fail the write on one backing and not on the other.
fn string_with_nul(value: &Value, at: &mut String) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(|| at.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            nested(at, &index.to_string(), |at| string_with_nul(item, at))
        }),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            nested(at, key, |at| {
                if key.contains('\0') {
                    Some(at.clone())
                } else {
                    string_with_nul(item, at)
                }
            })
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// Runs `f` with `at` extended by the token `key`, then restores `at`.
fn nested(
    at: &mut String,
    key: &str,
    f: impl FnOnce(&mut String) -> Option<String>,
) -> Option<String> {
    let len = at.len();
    at.push('/');
    at.push_str(&escape(key));
    let found = f(at);
    at.truncate(len);
    found
}

/// JSON Schema, and so specs/openapi.yaml, counts `60.0` as an integer; serde does not. A float without a fractional
/// part that fits an `i64`/`u64` becomes that integer, so `"frequency_s": 60.0` means 60 (and `60.5` stays a float,
/// refused where an integer is expected).
fn integral_floats_as_integers(value: &mut Value) {
    /// 2^64 and -2^63: the integral floats in [MIN_I64, TWO_POW_64) convert exactly.
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    const MIN_I64: f64 = -9_223_372_036_854_775_808.0;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                if (0.0..TWO_POW_64).contains(&f) {
                    *n = (f as u64).into();
                } else if (MIN_I64..0.0).contains(&f) {
                    *n = (f as i64).into();
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// The JSON pointer of a deserialization error. serde reports a missing or unknown field at the object that
/// should (not) hold it, so the field's own name is taken from the message and appended.
fn pointer(path: &serde_path_to_error::Path, message: &str) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{}", escape(key))),
            Segment::Enum { variant } => out.push_str(&format!("/{}", escape(variant))),
            Segment::Unknown => {}
        }
    }
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some(name) = rest.split('`').next() {
                let segment = format!("/{}", escape(name));
                // serde_path_to_error already ends the path with an unknown field's name.
                if !out.ends_with(&segment) {
                    out.push_str(&segment);
                }
            }
        }
    }
    if out.is_empty() {
        "/".to_owned()
    } else {
        out
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A JSON body of type `T`, with the errors described in the module docs.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body()).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: an empty body is `None` (e.g. `POST …/stop` without a reason).
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// Query parameters of type `T`; a malformed query is 400 `bad_request` (specs/03 §2).
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::BadRequest(format!("bad query parameter: {}", e.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    fn field(body: &str) -> Option<String> {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_field_as_a_json_pointer() {
        assert_eq!(
            field(r#"{"name": "a", "inner": {"n": -1}}"#).as_deref(),
            Some("/inner/n")
        );
        assert_eq!(
            field(r#"{"name": "a", "inner": {"n": 1, "x": 2}}"#).as_deref(),
            Some("/inner/x")
        );
        assert_eq!(field(r#"{"inner": {"n": 1}}"#).as_deref(), Some("/name"));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_invalid_at_the_root() {
        for body in ["[]", r#"["a", {"n": 1}]"#, "null", "1", r#""a""#] {
            assert_eq!(field(body).as_deref(), Some("/"), "{body}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Optional {
        #[serde(default, deserialize_with = "strom_domain::config::present")]
        n: Option<u32>,
    }

    #[test]
    fn an_optional_field_may_be_absent_but_not_null() {
        assert!(matches!(
            parse_json::<Optional>(b"{}"),
            Ok(Optional { n: None })
        ));
        assert!(matches!(
            parse_json::<Optional>(br#"{"n": 3}"#),
            Ok(Optional { n: Some(3) })
        ));
        assert!(matches!(
            parse_json::<Optional>(br#"{"n": null}"#),
            Err(ApiError::Validation { field: Some(f), .. }) if f == "/n"
        ));
    }

    #[test]
    fn a_string_holding_nul_is_invalid_where_it_is() {
        assert_eq!(
            field("{\"name\": \"a\\u0000b\", \"inner\": {\"n\": 1}}").as_deref(),
            Some("/name")
        );
        assert_eq!(
            field(r#"{"name": "a", "inner": {"n": 1, "x": ["ok", "\u0000"]}}"#).as_deref(),
            Some("/inner/x/1")
        );
    }

    #[test]
    fn integral_floats_are_integers_as_in_json_schema() {
        assert!(matches!(
            parse_json::<Optional>(br#"{"n": 60.0}"#),
            Ok(Optional { n: Some(60) })
        ));
        assert_eq!(
            field(r#"{"name": "a", "inner": {"n": 1.5}}"#).as_deref(),
            Some("/inner/n")
        );
        assert_eq!(
            field(r#"{"name": "a", "inner": {"n": -2.0}}"#).as_deref(),
            Some("/inner/n")
        );
    }

    #[test]
    fn text_that_is_not_json_is_a_bad_request() {
        assert!(matches!(
            parse_json::<Outer>(b"{nope"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
