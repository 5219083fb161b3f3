//! The OpenAPI 3.1 document of the HTTP API: one operation per entry of the route
//! table (`routes::ROUTES`), schemas from the wire types' `ToSchema` derives, the error
//! codes from `error::ERROR_CODES`. Served at `GET /api/v1/openapi.json` and committed
//! as `host/api/openapi.json` (`helixflow openapi > host/api/openapi.json`); a unit test
//! fails when the committed file is stale.

use crate::error::ERROR_CODES;
use crate::routes::{Auth, Methods, ROUTES, Req, Res, Route, TAGS};
use crate::wire;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    Content, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, Paths, Ref, RefOr, Required,
    ResponseBuilder,
};

/// Marks an operation whose path the router serves under every HTTP method.
pub const ANY_METHOD_EXTENSION: &str = "x-helixflow-any-method";

/// The document, as pretty JSON with a final newline (the committed file's bytes).
pub fn document_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

/// The document, built once per process for serving.
pub fn served() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(document_json)
}

/// The OpenAPI document of every route in [`ROUTES`].
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for route in ROUTES {
        let methods: &[&str] = match &route.method {
            Methods::One(m) => std::slice::from_ref(m),
            Methods::Any { documented } => documented,
        };
        for m in methods {
            let op = operation(route, m, methods.len() > 1);
            let item = PathItem::new(http_method(m), op);
            match paths.paths.get_mut(route.path) {
                Some(existing) => existing.merge_operations(item),
                None => {
                    paths.paths.insert(route.path.to_string(), item);
                }
            }
        }
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("HelixFlow")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of a HelixFlow node: the control plane (`/api/v1`), the data plane \
                     (HTTP triggers and event invocations), the OpenAI-compatible routes (`/v1`) and \
                     the Lambda Invoke API. Errors of HelixFlow's own routes are \
                     `{\"error\": {\"code\", \"message\"}}` with a code from `ErrorCode`.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components()))
        .tags(Some(
            TAGS.iter()
                .map(|(name, description)| TagBuilder::new().name(*name).description(Some(*description)).build())
                .collect::<Vec<_>>(),
        ))
        .build()
}

fn http_method(m: &str) -> HttpMethod {
    match m {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        "HEAD" => HttpMethod::Head,
        _ => HttpMethod::Get,
    }
}

/// `listTenants`; a route documented under several methods gets the method appended
/// (`httpTriggerGet`).
fn operation_id(route: &Route, method: &str, several: bool) -> String {
    if !several {
        return route.operation_id.to_string();
    }
    let mut m = method.to_ascii_lowercase();
    if let Some(first) = m.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{}{m}", route.operation_id)
}

/// The description of a path parameter, by name.
fn parameter_description(name: &str) -> &'static str {
    match name {
        "tenant" => "A tenant's name (`public`: the shared model namespace, under `/models`).",
        "function" => "A function's name; on the data plane optionally `@version` or `@alias`.",
        "function_name" => {
            "The function as Lambda names it: `tenant--function`, an ARN, or either with `:qualifier`."
        }
        "version" => "A version number (1, 2, ...).",
        "alias" => "An alias name (not a number).",
        "model" => "A model's name.",
        "prefix" => "An API key's prefix.",
        "access_key_id" => "An access key id.",
        "event_id" => "An event id.",
        "dashboard_id" => "A dashboard id.",
        "alert_id" => "An alert rule id.",
        "path" => "The rest of the path, handed to the function (may contain `/`).",
        _ => "",
    }
}

/// The `{name}`s of a path template, in order.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

fn json_content(component: &str) -> Content {
    Content::new(Some(schema_ref(component)))
}

fn any_content() -> Content {
    Content::new(None::<RefOr<Schema>>)
}

/// Raw bytes of `media` (OpenAPI 3.1: a string with that content media type).
fn binary_content(media: &str) -> Content {
    Content::new(Some(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type(media)
            .build(),
    ))
}

fn operation(route: &Route, method: &str, several: bool) -> Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(operation_id(route, method, several)))
        .summary(Some(route.summary))
        .tag(route.tag);
    for name in path_parameters(route.path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(parameter_description(name)))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    for (name, ty, description) in route.query {
        let ty = match *ty {
            "integer" => Type::Integer,
            "boolean" => Type::Boolean,
            _ => Type::String,
        };
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(ty))),
        );
    }
    for (name, _, description) in route.headers {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    let body = match route.request {
        Req::None => None,
        Req::Json(c) => Some(("application/json", json_content(c))),
        Req::Bytes(media) => Some((media, binary_content(media))),
        Req::Any => Some(("*/*", any_content())),
    };
    if let Some((media, content)) = body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content(media, content)
                .required(Some(if route.request == Req::Any {
                    Required::False
                } else {
                    Required::True
                }))
                .build(),
        ));
    }
    let (status, res) = route.ok;
    let ok = match res {
        Res::Json(c) => ResponseBuilder::new()
            .description("Success")
            .content("application/json", json_content(c)),
        Res::Text(media) => ResponseBuilder::new().description("Success").content(
            media,
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        ),
        Res::Any => ResponseBuilder::new()
            .description("The function's response")
            .content("*/*", any_content()),
    };
    op = op.response(status.to_string(), ok.build());
    let (error, description) = match route.tag {
        "openai" => ("OpenAiError", "An error, in OpenAI's shape"),
        _ if route.auth == Auth::KeyOrSigV4 => (
            "AwsError",
            "An error, in AWS's shape (type in `X-Amzn-ErrorType`)",
        ),
        _ => ("Error", "An error"),
    };
    op = op.response(
        "default",
        ResponseBuilder::new()
            .description(description)
            .content("application/json", json_content(error))
            .build(),
    );
    if let Methods::Any { .. } = route.method {
        // The router answers every method here, not only the documented ones.
        op = op.extensions(Some(
            utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add(ANY_METHOD_EXTENSION, serde_json::Value::Bool(true))
                .build(),
        ));
    }
    op = match route.auth {
        Auth::Public => op.securities(Some(Vec::<SecurityRequirement>::new())),
        Auth::Key => op.securities(Some(key_security())),
        Auth::KeyOrSigV4 => {
            let mut s = key_security();
            s.push(SecurityRequirement::new("sigv4", Vec::<String>::new()));
            op.securities(Some(s))
        }
    };
    op.build()
}

fn key_security() -> Vec<SecurityRequirement> {
    vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("apiKey", Vec::<String>::new()),
    ]
}

/// Adds `T` and every schema it refers to.
fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// Every schema component, by name.
pub fn schemas() -> BTreeMap<String, RefOr<Schema>> {
    use helixflow_store::registry::{Alias, Function, FunctionConfig, Tenant, Version};
    let mut s = Vec::new();
    add::<Tenant>(&mut s);
    add::<Function>(&mut s);
    add::<FunctionConfig>(&mut s);
    add::<Version>(&mut s);
    add::<Alias>(&mut s);
    add::<helixflow_store::models::ModelConfig>(&mut s);
    add::<helixflow_usage::budget::Budget>(&mut s);
    add::<helixflow_usage::dashboard::DashboardSpec>(&mut s);
    add::<helixflow_usage::alert::AlertSpec>(&mut s);
    add::<wire::CreateTenant>(&mut s);
    add::<wire::SetAlias>(&mut s);
    add::<wire::SetPrices>(&mut s);
    add::<wire::NewKey>(&mut s);
    add::<wire::Health>(&mut s);
    add::<wire::WhoAmI>(&mut s);
    add::<wire::TenantList>(&mut s);
    add::<wire::AuditLog>(&mut s);
    add::<wire::FunctionList>(&mut s);
    add::<wire::FunctionDetail>(&mut s);
    add::<wire::FunctionDeleted>(&mut s);
    add::<wire::Deployed>(&mut s);
    add::<wire::VersionList>(&mut s);
    add::<wire::VersionDeleted>(&mut s);
    add::<wire::AliasList>(&mut s);
    add::<wire::Deleted>(&mut s);
    add::<wire::IdDeleted>(&mut s);
    add::<wire::LogList>(&mut s);
    add::<wire::ModelList>(&mut s);
    add::<wire::ModelDetail>(&mut s);
    add::<wire::ModelVersionDetail>(&mut s);
    add::<wire::ModelDeleted>(&mut s);
    add::<wire::ModelResponse>(&mut s);
    add::<wire::ModelPushed>(&mut s);
    add::<wire::Key>(&mut s);
    add::<wire::CreatedKey>(&mut s);
    add::<wire::KeyList>(&mut s);
    add::<wire::AccessKey>(&mut s);
    add::<wire::CreatedAccessKey>(&mut s);
    add::<wire::AccessKeyList>(&mut s);
    add::<wire::JwtSecret>(&mut s);
    add::<wire::Event>(&mut s);
    add::<wire::EventList>(&mut s);
    add::<wire::Replayed>(&mut s);
    add::<wire::Prices>(&mut s);
    add::<wire::GcReport>(&mut s);
    add::<wire::OpenAiModel>(&mut s);
    add::<wire::OpenAiModelList>(&mut s);
    add::<wire::Error>(&mut s);
    add::<wire::OpenAiError>(&mut s);
    add::<wire::AwsError>(&mut s);
    s.push((
        "ErrorCode".into(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Every error code the API returns (`error.code`)."))
            .enum_values(Some(ERROR_CODES.iter().copied()))
            .into(),
    ));
    s.push((
        "Object".into(),
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A JSON object (see the operation's description)."))
            .into(),
    ));
    s.push((
        "OpenApiDocument".into(),
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("An OpenAPI 3.1 document: this one."))
            .into(),
    ));
    s.into_iter().collect()
}

fn components() -> utoipa::openapi::Components {
    let mut c = ComponentsBuilder::new().schemas_from_iter(schemas());
    c = c.security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key (`hfk_...`), a JWT signed with the tenant's secret, or the platform admin key.",
                ))
                .build(),
        ),
    );
    c = c.security_scheme(
        "apiKey",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "x-api-key",
            "The same credentials as `bearer`, in the `x-api-key` header.",
        ))),
    );
    c = c.security_scheme(
        "sigv4",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "AWS Signature Version 4 (`AWS4-HMAC-SHA256 ...`, service `lambda`) with a tenant's access key pair.",
        ))),
    );
    c.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The committed `host/api/openapi.json` is the generated document.
    /// `HELIXFLOW_WRITE_OPENAPI=1 cargo test -p helixflow-api openapi` rewrites it.
    #[test]
    fn committed_openapi_json_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let generated = document_json();
        if std::env::var_os("HELIXFLOW_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write host/api/openapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "host/api/openapi.json is stale (or missing): regenerate it with \
             `helixflow openapi > host/api/openapi.json` or \
             `HELIXFLOW_WRITE_OPENAPI=1 cargo test -p helixflow-api openapi`, and commit it"
        );
    }

    /// Every route of the table is an operation of the document, and nothing else is;
    /// operation ids are unique; every path parameter is declared.
    #[test]
    fn document_operations_are_the_route_table() {
        let doc = serde_json::to_value(document()).expect("document as JSON");
        let mut in_doc = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                in_doc.insert((path.clone(), method.to_ascii_uppercase()));
                let id = op["operationId"].as_str().expect("operationId").to_string();
                assert!(ids.insert(id.clone()), "operation id {id} twice");
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let used: BTreeSet<&str> = path_parameters(path).into_iter().collect();
                assert_eq!(declared, used, "{method} {path}: path parameters");
            }
        }
        let mut in_table = BTreeSet::new();
        for r in ROUTES {
            let methods: &[&str] = match &r.method {
                Methods::One(m) => std::slice::from_ref(m),
                Methods::Any { documented } => documented,
            };
            for m in methods {
                assert!(
                    in_table.insert((r.path.to_string(), m.to_string())),
                    "{m} {} twice in the route table",
                    r.path
                );
            }
        }
        assert_eq!(in_doc, in_table);
    }

    /// Every `$ref` of the document names a component; every error body's code is the
    /// `ErrorCode` enum, which is `ERROR_CODES`.
    #[test]
    fn references_resolve_and_error_codes_are_the_enum() {
        let doc = serde_json::to_value(document()).expect("document as JSON");
        fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        out.push(r.to_string());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for r in &all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a schema ref");
            assert!(schemas.contains_key(name), "{r} names no component");
        }
        let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode enum")
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        assert_eq!(codes, ERROR_CODES);
        for body in ["ErrorDetail", "OpenAiErrorDetail"] {
            assert_eq!(
                schemas[body]["properties"]["code"]["$ref"], "#/components/schemas/ErrorCode",
                "{body}.code"
            );
        }
    }
}
