//! The route table: every route the node serves, as method + path template +
//! operation id, with what its request and main response carry.
//!
//! It is the single source of the OpenAPI document (`openapi.rs`, one operation per
//! entry) and of the checks that the router serves exactly these routes: the unit tests
//! below walk the router's match arms against it, and the e2e test `tests/e2e/openapi.rs`
//! sends a request for every entry (and for its neighbours) to a running node.
//!
//! Path templates use OpenAPI's `{name}` placeholders; a placeholder is one path
//! segment, except `{path}`, the rest of a data-plane path (may contain `/`).

/// An HTTP method of a route. `Any`: the router answers every method (the data
/// plane hands the method to the function; health and metrics ignore it); the document
/// lists `documented` for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    One(&'static str),
    Any { documented: &'static [&'static str] },
}

/// Which credentials a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// None needed.
    Public,
    /// An API key, JWT or the platform admin key (`Authorization: Bearer` or
    /// `x-api-key`); the role it needs is `access::requirement`'s.
    Key,
    /// As `Key`, or an AWS SigV4 signature of a tenant's access key pair.
    KeyOrSigV4,
}

/// What a request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req {
    None,
    /// JSON of the named schema component.
    Json(&'static str),
    /// Raw bytes of this media type (a component, a model).
    Bytes(&'static str),
    /// Whatever the function takes.
    Any,
}

/// What a successful response body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Res {
    /// JSON of the named schema component.
    Json(&'static str),
    /// Text of this media type.
    Text(&'static str),
    /// Whatever the function answers.
    Any,
}

/// A query parameter: name, JSON type (`string`, `integer`, `boolean`), description.
pub type Query = (&'static str, &'static str, &'static str);

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: Methods,
    pub path: &'static str,
    pub operation_id: &'static str,
    /// Which part of the API (the document's tag).
    pub tag: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    pub query: &'static [Query],
    /// Request headers the route reads (same shape as `query`).
    pub headers: &'static [Query],
    pub request: Req,
    /// The status and body of the main successful response.
    pub ok: (u16, Res),
}

/// Tags, in the order the document lists them, with their descriptions.
pub const TAGS: &[(&str, &str)] = &[
    ("tenants", "Tenants and their settings (platform admin)"),
    (
        "functions",
        "Functions, versions, aliases, configuration and logs",
    ),
    (
        "models",
        "ONNX models of a tenant (or of the `public` namespace)",
    ),
    (
        "keys",
        "API keys, SigV4 access keys and JWT secrets of a tenant",
    ),
    (
        "events",
        "Asynchronous invocations: pending and failed events",
    ),
    ("usage", "Usage, prices, budgets, dashboards and alerts"),
    ("admin", "Platform administration"),
    ("openai", "OpenAI-compatible inference"),
    (
        "invoke",
        "Invoking functions: HTTP triggers, events, the Lambda Invoke API",
    ),
    ("node", "Health, metrics and this document"),
    (
        "console",
        "The web console and playground (static assets; every view calls this API with the user's credential)",
    ),
];

const R_GET: Methods = Methods::One("GET");
const R_POST: Methods = Methods::One("POST");
const R_PUT: Methods = Methods::One("PUT");
const R_DELETE: Methods = Methods::One("DELETE");
/// The data plane serves every method; the document lists these.
const ANY_HTTP: Methods = Methods::Any {
    documented: &["GET", "POST", "PUT", "PATCH", "DELETE"],
};
/// Health and metrics answer every method; the document lists GET.
const ANY_GET: Methods = Methods::Any {
    documented: &["GET"],
};

const LIMIT: Query = ("limit", "integer", "At most this many entries.");

const fn r(
    method: Methods,
    path: &'static str,
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
    request: Req,
    ok: (u16, Res),
) -> Route {
    Route {
        method,
        path,
        operation_id,
        tag,
        summary,
        auth: Auth::Key,
        query: &[],
        headers: &[],
        request,
        ok,
    }
}

const fn with_query(mut route: Route, query: &'static [Query]) -> Route {
    route.query = query;
    route
}

const fn with_headers(mut route: Route, headers: &'static [Query]) -> Route {
    route.headers = headers;
    route
}

const fn with_auth(mut route: Route, auth: Auth) -> Route {
    route.auth = auth;
    route
}

/// A path below `/api/v1/tenants/{tenant}`.
macro_rules! t {
    () => {
        "/api/v1/tenants/{tenant}"
    };
    ($rest:literal) => {
        concat!("/api/v1/tenants/{tenant}", $rest)
    };
}

/// Every route of the node.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    // Node
    with_auth(
        r(ANY_GET, "/healthz", "healthz", "node", "Liveness of this node", Req::None, (200, Res::Json("Health"))),
        Auth::Public,
    ),
    r(ANY_GET, "/metrics", "metrics", "node", "Prometheus/OpenMetrics metrics (platform admin)", Req::None, (200, Res::Text("application/openmetrics-text"))),
    with_auth(
        r(R_GET, "/api/v1/openapi.json", "getOpenApi", "node", "This OpenAPI document", Req::None, (200, Res::Json("OpenApiDocument"))),
        Auth::Public,
    ),
    with_auth(
        r(R_GET, "/console", "getConsole", "console", "The web console's page (views are chosen by the URL fragment)", Req::None, (200, Res::Text("text/html"))),
        Auth::Public,
    ),
    with_auth(
        r(R_GET, "/console/{path}", "getConsoleAsset", "console", "A script, stylesheet or image of the console", Req::None, (200, Res::Any)),
        Auth::Public,
    ),
    r(R_GET, "/api/v1/whoami", "whoAmI", "keys", "Who the presented credentials are: tenant, role, subject", Req::None, (200, Res::Json("WhoAmI"))),
    // Tenants
    r(R_GET, "/api/v1/tenants", "listTenants", "tenants", "List tenants", Req::None, (200, Res::Json("TenantList"))),
    r(R_POST, "/api/v1/tenants", "createTenant", "tenants", "Create a tenant", Req::Json("CreateTenant"), (201, Res::Json("Tenant"))),
    r(R_GET, t!(), "getTenant", "tenants", "Get a tenant", Req::None, (200, Res::Json("Tenant"))),
    with_query(
        r(R_GET, t!("/audit"), "getAuditLog", "tenants", "The tenant's audit log, newest first", Req::None, (200, Res::Json("AuditLog"))),
        &[LIMIT],
    ),
    // Functions
    r(R_GET, t!("/functions"), "listFunctions", "functions", "List functions", Req::None, (200, Res::Json("FunctionList"))),
    r(R_GET, t!("/functions/{function}"), "getFunction", "functions", "A function with its versions and aliases", Req::None, (200, Res::Json("FunctionDetail"))),
    r(R_DELETE, t!("/functions/{function}"), "deleteFunction", "functions", "Delete a function and all its versions", Req::None, (200, Res::Json("FunctionDeleted"))),
    with_headers(
        with_query(
            r(R_POST, t!("/functions/{function}/versions"), "deployFunction", "functions", "Deploy a component (the request body) as a new immutable version", Req::Bytes("application/wasm"), (201, Res::Json("Deployed"))),
            &[
                ("alias", "string", "Point this alias at the new version."),
                ("description", "string", "A description of the version."),
            ],
        ),
        &[("x-helixflow-config", "string", "The function's configuration (a `FunctionConfig` as JSON).")],
    ),
    r(R_GET, t!("/functions/{function}/versions"), "listVersions", "functions", "List a function's versions", Req::None, (200, Res::Json("VersionList"))),
    r(R_GET, t!("/functions/{function}/versions/{version}"), "getVersion", "functions", "Get a version", Req::None, (200, Res::Json("Version"))),
    r(R_DELETE, t!("/functions/{function}/versions/{version}"), "deleteVersion", "functions", "Delete a version", Req::None, (200, Res::Json("VersionDeleted"))),
    r(R_GET, t!("/functions/{function}/config"), "getFunctionConfig", "functions", "A function's configuration", Req::None, (200, Res::Json("FunctionConfig"))),
    r(R_PUT, t!("/functions/{function}/config"), "setFunctionConfig", "functions", "Replace a function's configuration", Req::Json("FunctionConfig"), (200, Res::Json("Function"))),
    r(R_GET, t!("/functions/{function}/aliases"), "listAliases", "functions", "List a function's aliases", Req::None, (200, Res::Json("AliasList"))),
    r(R_GET, t!("/functions/{function}/aliases/{alias}"), "getAlias", "functions", "Get an alias", Req::None, (200, Res::Json("Alias"))),
    r(R_PUT, t!("/functions/{function}/aliases/{alias}"), "setAlias", "functions", "Point an alias at a version", Req::Json("SetAlias"), (200, Res::Json("Alias"))),
    r(R_DELETE, t!("/functions/{function}/aliases/{alias}"), "deleteAlias", "functions", "Delete an alias", Req::None, (200, Res::Json("Deleted"))),
    r(R_POST, t!("/functions/{function}/aliases/{alias}/rollback"), "rollbackAlias", "functions", "Point an alias back at its previous version", Req::None, (200, Res::Json("Alias"))),
    with_query(
        r(R_GET, t!("/functions/{function}/logs"), "getFunctionLogs", "functions", "Recent invocation logs", Req::None, (200, Res::Json("LogList"))),
        &[LIMIT],
    ),
    // Models
    r(R_GET, t!("/models"), "listModels", "models", "List models", Req::None, (200, Res::Json("ModelList"))),
    r(R_GET, t!("/models/{model}"), "getModel", "models", "A model with its versions and this node's sessions", Req::None, (200, Res::Json("ModelDetail"))),
    r(R_DELETE, t!("/models/{model}"), "deleteModel", "models", "Delete a model and its versions", Req::None, (200, Res::Json("ModelDeleted"))),
    r(R_PUT, t!("/models/{model}/config"), "setModelConfig", "models", "Replace a model's configuration", Req::Json("ModelConfig"), (200, Res::Json("ModelResponse"))),
    with_headers(
        r(R_POST, t!("/models/{model}/versions"), "pushModel", "models", "Upload an ONNX model (the request body) as a new version", Req::Bytes("application/octet-stream"), (201, Res::Json("ModelPushed"))),
        &[("x-helixflow-model-config", "string", "The model's configuration (a `ModelConfig` as JSON).")],
    ),
    r(R_POST, t!("/models/{model}/preload"), "preloadModel", "models", "Load a model's latest version on this node", Req::None, (200, Res::Json("Object"))),
    r(R_GET, t!("/models/{model}/versions/{version}"), "getModelVersion", "models", "Get a model version", Req::None, (200, Res::Json("ModelVersionDetail"))),
    // Keys
    r(R_POST, t!("/keys"), "createKey", "keys", "Create an API key (its secret is shown once)", Req::Json("NewKey"), (201, Res::Json("CreatedKey"))),
    r(R_GET, t!("/keys"), "listKeys", "keys", "List API keys", Req::None, (200, Res::Json("KeyList"))),
    r(R_DELETE, t!("/keys/{prefix}"), "revokeKey", "keys", "Revoke an API key", Req::None, (200, Res::Json("Key"))),
    r(R_POST, t!("/access-keys"), "createAccessKey", "keys", "Create a SigV4 access key pair for the Lambda Invoke API (its secret is shown once)", Req::Json("NewKey"), (201, Res::Json("CreatedAccessKey"))),
    r(R_GET, t!("/access-keys"), "listAccessKeys", "keys", "List SigV4 access keys", Req::None, (200, Res::Json("AccessKeyList"))),
    r(R_DELETE, t!("/access-keys/{access_key_id}"), "revokeAccessKey", "keys", "Revoke a SigV4 access key", Req::None, (200, Res::Json("AccessKey"))),
    r(R_POST, t!("/jwt-secret"), "rotateJwtSecret", "keys", "A new HS256 secret for the tenant's JWTs (shown once)", Req::None, (201, Res::Json("JwtSecret"))),
    // Events
    with_query(
        r(R_GET, t!("/events"), "listEvents", "events", "Pending and failed asynchronous invocations", Req::None, (200, Res::Json("EventList"))),
        &[
            ("status", "string", "`pending` or `failed` (default: both)."),
            ("function", "string", "Only this function's events."),
            LIMIT,
        ],
    ),
    r(R_GET, t!("/events/{event_id}"), "getEvent", "events", "A pending or failed event", Req::None, (200, Res::Json("Event"))),
    r(R_POST, t!("/events/{event_id}/replay"), "replayEvent", "events", "Queue a failed event again", Req::None, (202, Res::Json("Replayed"))),
    // Usage, prices, budgets, dashboards, alerts
    with_query(
        r(R_GET, t!("/usage"), "getUsage", "usage", "What the tenant used, per time step and group", Req::None, (200, Res::Json("Object"))),
        &[
            (
                "from",
                "string",
                "Start: Unix seconds or RFC 3339 (default: 24 h ago).",
            ),
            (
                "to",
                "string",
                "End: Unix seconds or RFC 3339 (default: now).",
            ),
            ("step", "string", "`1m`, `1h` or `1d`."),
            (
                "group_by",
                "string",
                "Comma-separated dimensions: function, trigger, location, key, model.",
            ),
            ("metrics", "string", "Comma-separated metrics."),
        ],
    ),
    r(R_GET, t!("/prices"), "getPrices", "usage", "The price table that applies to the tenant", Req::None, (200, Res::Json("Prices"))),
    r(R_PUT, "/api/v1/admin/tenants/{tenant}/prices", "setPrices", "admin", "Set the tenant's own price table (`[]` removes it)", Req::Json("SetPrices"), (200, Res::Json("Prices"))),
    r(R_GET, t!("/budget"), "getBudget", "usage", "The budget and the month's spend", Req::None, (200, Res::Json("Object"))),
    r(R_PUT, t!("/budget"), "setBudget", "usage", "Set the budget", Req::Json("Budget"), (200, Res::Json("Object"))),
    r(R_DELETE, t!("/budget"), "deleteBudget", "usage", "Remove the budget", Req::None, (200, Res::Json("Object"))),
    r(R_POST, t!("/dashboards"), "createDashboard", "usage", "Store a dashboard", Req::Json("DashboardSpec"), (201, Res::Json("Object"))),
    r(R_GET, t!("/dashboards"), "listDashboards", "usage", "List dashboards", Req::None, (200, Res::Json("Object"))),
    r(R_GET, t!("/dashboards/{dashboard_id}"), "getDashboard", "usage", "Get a dashboard", Req::None, (200, Res::Json("Object"))),
    r(R_DELETE, t!("/dashboards/{dashboard_id}"), "deleteDashboard", "usage", "Delete a dashboard", Req::None, (200, Res::Json("IdDeleted"))),
    r(R_GET, t!("/dashboards/{dashboard_id}/data"), "getDashboardData", "usage", "A dashboard's panels with their data", Req::None, (200, Res::Json("Object"))),
    r(R_POST, t!("/alerts"), "createAlert", "usage", "Create an alert rule", Req::Json("AlertSpec"), (201, Res::Json("Object"))),
    r(R_GET, t!("/alerts"), "listAlerts", "usage", "Alert rules with their state", Req::None, (200, Res::Json("Object"))),
    r(R_GET, t!("/alerts/{alert_id}"), "getAlert", "usage", "An alert rule with its state", Req::None, (200, Res::Json("Object"))),
    r(R_PUT, t!("/alerts/{alert_id}"), "replaceAlert", "usage", "Replace an alert rule's definition", Req::Json("AlertSpec"), (200, Res::Json("Object"))),
    r(R_DELETE, t!("/alerts/{alert_id}"), "deleteAlert", "usage", "Delete an alert rule", Req::None, (200, Res::Json("IdDeleted"))),
    r(R_GET, t!("/alerts/{alert_id}/history"), "getAlertHistory", "usage", "An alert's transitions, newest first", Req::None, (200, Res::Json("Object"))),
    // Platform administration
    with_query(
        r(R_POST, "/api/v1/admin/gc", "collectGarbage", "admin", "Delete artifacts no version references and prune the compile cache", Req::None, (200, Res::Json("GcReport"))),
        &[
            (
                "grace_secs",
                "integer",
                "Keep unreferenced artifacts younger than this (default 3600).",
            ),
            ("dry_run", "boolean", "Only report what would be deleted."),
        ],
    ),
    r(R_GET, "/api/v1/admin/nodes", "listNodes", "admin", "The fleet's nodes (each node's last heartbeat: location, version, sessions, providers)", Req::None, (200, Res::Json("Object"))),
    r(R_GET, "/api/v1/admin/inference", "listInferenceSessions", "admin", "This node's loaded inference sessions", Req::None, (200, Res::Json("Object"))),
    // OpenAI-compatible
    r(R_GET, "/v1/models", "openaiListModels", "openai", "Models served for chat or embeddings", Req::None, (200, Res::Json("OpenAiModelList"))),
    r(R_GET, "/v1/models/{model}", "openaiGetModel", "openai", "A served model", Req::None, (200, Res::Json("OpenAiModel"))),
    r(R_POST, "/v1/embeddings", "createEmbeddings", "openai", "Embeddings (OpenAI's API)", Req::Json("Object"), (200, Res::Json("Object"))),
    r(R_POST, "/v1/chat/completions", "createChatCompletion", "openai", "Chat completions (OpenAI's API; `stream: true` answers server-sent events)", Req::Json("Object"), (200, Res::Json("Object"))),
    // Invoking functions
    with_headers(
        r(R_POST, "/invoke/{tenant}/{function}", "invokeEvent", "invoke", "Invoke a function's event handler with the body as the event", Req::Any, (200, Res::Any)),
        &[("x-helixflow-client-context", "string", "Passed to the function as its client context.")],
    ),
    with_headers(
        with_query(
            with_auth(
                r(R_POST, "/2015-03-31/functions/{function_name}/invocations", "lambdaInvoke", "invoke", "AWS Lambda's Invoke API", Req::Any, (200, Res::Any)),
                Auth::KeyOrSigV4,
            ),
            &[("Qualifier", "string", "A version number, an alias or `$LATEST`.")],
        ),
        &[
            ("X-Amz-Invocation-Type", "string", "`RequestResponse` (default), `Event` or `DryRun`."),
            ("X-Amz-Log-Type", "string", "`Tail`: the end of the function's log in `X-Amz-Log-Result`."),
            ("X-Amz-Client-Context", "string", "Base64 JSON passed to the function."),
        ],
    ),
    r(ANY_HTTP, "/{tenant}/{function}", "httpTriggerRoot", "invoke", "Call a function's HTTP handler at its root", Req::Any, (200, Res::Any)),
    r(ANY_HTTP, "/{tenant}/{function}/{path}", "httpTrigger", "invoke", "Call a function's HTTP handler; it sees `/{path}` and the query", Req::Any, (200, Res::Any)),
];

#[cfg(test)]
mod tests {
    //! The router's match arms, read from its sources, against the table: every
    //! `(method, [segments])` arm of the control plane (`control.rs` and the per-area
    //! routers it delegates to) and of the OpenAI routes is a table entry, and every
    //! table entry under `/api/` and `/v1/` is an arm.

    use super::*;
    use std::collections::BTreeSet;

    /// (method, path with `*` for every placeholder).
    type Arm = (String, String);

    fn source(file: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(file);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The body of `fn name(` in `src` (from its first `{` to the matching `}`).
    fn body<'a>(src: &'a str, name: &str) -> &'a str {
        let start = src
            .find(&format!("fn {name}("))
            .unwrap_or_else(|| panic!("fn {name}"));
        let open = start + src[start..].find('{').expect("fn body");
        let mut depth = 0;
        for (i, c) in src[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return &src[open..open + i];
                    }
                }
                _ => {}
            }
        }
        panic!("fn {name}: unbalanced braces")
    }

    /// A match arm's pattern: methods (empty: any) and segments (`*` for a binding,
    /// `..` for a rest), and the start of its right-hand side.
    struct Pattern {
        methods: Vec<String>,
        segs: Vec<String>,
        rhs: String,
    }

    /// Every `(methods, [segments]) => rhs` arm of a function body.
    fn arms(body: &str) -> Vec<Pattern> {
        let mut out = Vec::new();
        let lines: Vec<&str> = body.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim();
            let Some((pat, rhs)) = line.split_once("=>") else {
                continue;
            };
            // The right-hand side: this line's and the next few (a block's start).
            let rhs = std::iter::once(rhs)
                .chain(lines.iter().skip(i + 1).take(5).copied())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let rhs = rhs.trim_start_matches('{').trim();
            let Some(pat) = pat
                .trim()
                .strip_prefix('(')
                .and_then(|p| p.strip_suffix(')'))
            else {
                continue;
            };
            let Some((methods, segs)) = pat.split_once(", [") else {
                continue;
            };
            let Some(segs) = segs.strip_suffix(']') else {
                continue;
            };
            let methods = methods
                .split('|')
                .map(|m| {
                    m.trim()
                        .trim_start_matches('&')
                        .trim_start_matches("Method::")
                        .to_string()
                })
                .filter(|m| m != "_")
                .collect();
            let segs = segs
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(
                    |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                        Some(lit) => lit.to_string(),
                        None if s.ends_with("..") => "..".to_string(),
                        None => "*".to_string(),
                    },
                )
                .collect();
            out.push(Pattern {
                methods,
                segs,
                rhs: rhs.to_string(),
            });
        }
        out
    }

    /// The routes a router function serves below `prefix`: its arms, with arms that
    /// delegate (`crate::area::fn(`) expanded by that function's arms (or, for a
    /// function that matches on the method alone, its `Method::X =>` arms).
    fn served(file: &str, name: &str, prefix: &str, out: &mut BTreeSet<Arm>) {
        let src = source(file);
        let fn_body = body(&src, name);
        for arm in arms(fn_body) {
            if arm.rhs.starts_with("Err(") {
                continue; // a fallback: "no such route", 405
            }
            let path: Vec<&str> = arm
                .segs
                .iter()
                .map(String::as_str)
                .filter(|s| *s != "..")
                .collect();
            let path = format!("{prefix}/{}", path.join("/"));
            let path = path.trim_end_matches('/').to_string();
            let delegated = if arm.methods.is_empty() {
                delegate(&arm.rhs)
            } else {
                None
            };
            match delegated {
                Some((file, name)) if arm.segs.last().is_some_and(|s| s == "..") => {
                    served(&file, &name, &path, out)
                }
                Some((file, name)) => {
                    let src = source(&file);
                    for line in body(&src, &name).lines() {
                        let l = line.trim();
                        if let Some(m) =
                            l.strip_prefix("Method::").and_then(|l| l.split_once(" =>"))
                        {
                            out.insert((m.0.to_string(), path.clone()));
                        }
                    }
                }
                None => {
                    assert_eq!(
                        arm.methods.len(),
                        1,
                        "{file} {name}: arm for {path} with methods {:?}",
                        arm.methods
                    );
                    out.insert((arm.methods[0].clone(), path));
                }
            }
        }
    }

    /// The first `crate::keys::route(...)` of `rhs` -> (`keys.rs`, `route`).
    fn delegate(rhs: &str) -> Option<(String, String)> {
        let call = &rhs[rhs.find("crate::")? + "crate::".len()..];
        let (module, rest) = call.split_once("::")?;
        let name = rest.split('(').next()?;
        Some((format!("{module}.rs"), name.to_string()))
    }

    fn table_routes(prefix: &str) -> BTreeSet<Arm> {
        ROUTES
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .filter_map(|r| match r.method {
                Methods::One(m) => Some((m.to_string(), starred(r.path))),
                Methods::Any { .. } => None,
            })
            .collect()
    }

    fn starred(path: &str) -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "*" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn the_control_plane_router_serves_the_table() {
        let mut router = BTreeSet::new();
        served("control.rs", "route_inner", "/api", &mut router);
        assert!(router.len() > 40, "{router:?}");
        let table = table_routes("/api/");
        let missing: Vec<_> = router.difference(&table).collect();
        let extra: Vec<_> = table.difference(&router).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes the router serves but host/api/src/routes.rs lacks: {missing:?}; \
             table entries no router arm serves: {extra:?}"
        );
    }

    #[test]
    fn the_openai_router_serves_the_table() {
        let mut router = BTreeSet::new();
        served("openai.rs", "route_inner", "/v1", &mut router);
        assert_eq!(router, table_routes("/v1/"));
    }

    #[test]
    fn the_arm_reader_reads_arms() {
        let a = arms(
            "match x {\n(&Method::GET, [\"v1\", \"tenants\", t]) => ok(),\n\
             (_, [\"v1\", \"tenants\", t, \"keys\", rest @ ..]) => {\n\
             (Method::POST | Method::GET, _) => Err(x),\n}",
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].methods, ["GET"]);
        assert_eq!(a[0].segs, ["v1", "tenants", "*"]);
        assert!(a[1].methods.is_empty());
        assert_eq!(a[1].segs.last().map(String::as_str), Some(".."));
    }
}
