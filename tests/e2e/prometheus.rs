//! Prometheus end to end: the repo's rules pass `promtool check rules` and their unit
//! tests (`promtool test rules`); a real Prometheus (`$HELIXFLOW_PROMETHEUS`, started
//! here on loopback with the example config of infra/prometheus/) scrapes a node with the
//! admin bearer token while it serves HTTP invocations, a failing one and chat
//! completions; its HTTP API then shows tokens by tenant and model, cost, latency by
//! location, tenant labels bounded by `[metrics] max_tenant_labels` (the rest `other`, no
//! key anywhere), every rule evaluating cleanly, and every panel query of the Grafana
//! dashboards in infra/grafana/ returning series.

use helixflow_e2e::{Api, Http, Node, Resp, admin_key, required_env, workspace_root};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn promtool() -> String {
    required_env("HELIXFLOW_PROMTOOL")
}

fn infra(rel: &str) -> PathBuf {
    workspace_root().join("infra").join(rel)
}

/// Runs `promtool` with `args` in `dir`; asserts it succeeded; returns its output.
fn run_promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", promtool()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("promtool {args:?}:\n{text}");
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The example scrape config, made concrete: its credentials file and rules path, and
/// (when given) a 1 s scrape of `target`.
fn example_config(dir: &Path, target: Option<&str>) -> PathBuf {
    let key_file = dir.join("helixflow-admin.key");
    std::fs::write(&key_file, admin_key()).unwrap();
    let rules = infra("prometheus/rules/helixflow.rules.yml");
    let mut text = std::fs::read_to_string(infra("prometheus/prometheus.yml")).unwrap();
    let mut swap = |from: &str, to: &str| {
        assert_eq!(
            text.matches(from).count(),
            1,
            "infra/prometheus/prometheus.yml no longer has {from:?} once: update this test"
        );
        text = text.replace(from, to);
    };
    swap(
        "/etc/prometheus/helixflow-admin.key",
        &key_file.display().to_string(),
    );
    swap(
        "  - rules/helixflow.rules.yml",
        &format!("  - {}", rules.display()),
    );
    if let Some(target) = target {
        swap("scrape_interval: 15s", "scrape_interval: 1s");
        swap("evaluation_interval: 15s", "evaluation_interval: 1s");
        swap(
            "          - fra.edge.example.com:8080\n          - lon.edge.example.com:8080\n",
            &format!("          - {target}\n"),
        );
    }
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn rules_and_example_config_pass_promtool() {
    let rules_dir = infra("prometheus/rules");
    let out = run_promtool(&rules_dir, &["check", "rules", "helixflow.rules.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_promtool(&rules_dir, &["test", "rules", "helixflow.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = example_config(dir.path(), None);
    let out = run_promtool(dir.path(), &["check", "config", &cfg.display().to_string()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// `promtool test rules` fails when an expectation is wrong (so the passing run above
/// means something).
#[test]
fn promtool_rule_tests_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        infra("prometheus/rules/helixflow.rules.yml"),
        dir.path().join("helixflow.rules.yml"),
    )
    .unwrap();
    let tests = std::fs::read_to_string(infra("prometheus/rules/helixflow.rules.test.yml"))
        .unwrap()
        .replace("value: 0.09090909090909091", "value: 0.5");
    std::fs::write(dir.path().join("t.yml"), tests).unwrap();
    let out = Command::new(promtool())
        .args(["test", "rules", "t.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "a wrong expectation passed: {text}");
    assert!(text.contains("ratio_rate5m"), "{text}");
}

/// A Prometheus server on loopback, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    http: Http,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    async fn start(dir: &Path, config: &Path) -> Prometheus {
        let log = dir.join("prometheus.log");
        let child = Command::new(required_env("HELIXFLOW_PROMETHEUS"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--log.level=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus {
            child,
            url: String::new(),
            log,
            http: Http::anonymous(),
        };
        // It logs the address it bound: `msg="Listening on" address=127.0.0.1:PORT`.
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.url.is_empty() {
            let text = p.log_text();
            if let Some(addr) = text
                .lines()
                .filter(|l| l.contains("msg=\"Listening on\""))
                .find_map(|l| l.split("address=").nth(1))
            {
                p.url = format!("http://{}", addr.trim());
            } else {
                assert!(
                    Instant::now() < deadline && p.child.try_wait().ok().flatten().is_none(),
                    "prometheus did not start; its log:\n{text}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        loop {
            let ready = p
                .http
                .try_request("GET", &format!("{}/-/ready", p.url), Vec::new())
                .await;
            if ready.is_ok_and(|r| r.status == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never ready; its log:\n{}",
                p.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn api(&self, path_and_query: &str) -> Value {
        let r: Resp = self
            .http
            .get(&format!("{}/api/v1/{path_and_query}", self.url))
            .await;
        assert_eq!(r.status, 200, "{path_and_query}: {}", r.text());
        let v = r.json();
        assert_eq!(v["status"], "success", "{path_and_query}: {v}");
        v["data"].clone()
    }

    /// An instant query's result vector.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let r = self
            .http
            .get(&format!(
                "{}/api/v1/query?query={}",
                self.url,
                form_encode(expr)
            ))
            .await;
        let v = r.json();
        assert!(
            r.status == 200 && v["status"] == "success",
            "query {expr} failed: {v}"
        );
        match v["data"]["resultType"].as_str() {
            Some("vector") => v["data"]["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![json!({"metric": {}, "value": v["data"]["result"]})],
            other => panic!("{expr}: unexpected result type {other:?}: {v}"),
        }
    }

    /// Polls `expr` until `done` holds for its result (60 s at most).
    async fn wait_for(
        &self,
        what: &str,
        expr: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.query(expr).await;
            if done(&r) {
                return r;
            }
            if Instant::now() > deadline {
                let targets = self.api("targets").await;
                panic!(
                    "timed out waiting for {what}: {expr} -> {}\ntargets: {targets}",
                    Value::Array(r)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn sample(s: &Value) -> f64 {
    s["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The one sample of a result (panics naming `what` otherwise).
fn one(r: &[Value], what: &str) -> f64 {
    assert_eq!(r.len(), 1, "{what}: {}", Value::Array(r.to_vec()));
    sample(&r[0])
}

fn one_is(r: &[Value], n: f64) -> bool {
    r.len() == 1 && (sample(&r[0]) - n).abs() < 1e-9
}

/// Every panel of a dashboard (rows' nested panels included): (title, exprs).
fn panels(dash: &Value) -> Vec<(String, Vec<String>)> {
    fn walk(ps: &Value, out: &mut Vec<(String, Vec<String>)>) {
        for p in ps.as_array().into_iter().flatten() {
            walk(&p["panels"], out);
            if p["type"] == "row" {
                continue;
            }
            let exprs = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str().map(str::to_string))
                .collect();
            out.push((p["title"].as_str().unwrap_or("?").to_string(), exprs));
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// A dashboard file's JSON, checked for what Grafana needs to load and provision it.
fn dashboard(file: &str, variables: &[&str]) -> Value {
    let path = infra(&format!("grafana/dashboards/{file}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let d: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        d["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "{file}: uid"
    );
    assert!(d["title"].as_str().is_some(), "{file}: title");
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "{file}: schemaVersion"
    );
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in variables.iter().chain(&["datasource"]) {
        assert!(
            vars.contains(v),
            "{file}: template variable {v} in {vars:?}"
        );
    }
    let mut ids = std::collections::HashSet::new();
    fn all(ps: &Value, out: &mut Vec<Value>) {
        for p in ps.as_array().into_iter().flatten() {
            out.push(p.clone());
            all(&p["panels"], out);
        }
    }
    let mut every = Vec::new();
    all(&d["panels"], &mut every);
    for p in &every {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64()),
            "{file}: duplicate panel id: {title}"
        );
        assert!(
            p["gridPos"]["w"].as_u64().is_some(),
            "{file}: {title}: gridPos"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{file}: {title}: datasource"
        );
        let targets = p["targets"].as_array().map(Vec::len).unwrap_or(0);
        assert!(targets > 0, "{file}: {title}: no targets");
        for t in p["targets"].as_array().into_iter().flatten() {
            assert!(t["refId"].as_str().is_some(), "{file}: {title}: refId");
            assert!(t["expr"].as_str().is_some(), "{file}: {title}: expr");
        }
    }
    d
}

/// A panel's expression with Grafana's variables replaced by what the test's range and
/// load mean.
fn substitute(expr: &str, tenant: &str) -> String {
    let e = expr
        .replace("$__rate_interval", "5m")
        .replace("${__rate_interval}", "5m")
        .replace("$__interval", "15s")
        .replace("$__range", "10m")
        .replace("${tenant}", tenant)
        .replace("$tenant", tenant)
        .replace("${location}", ".*")
        .replace("$location", ".*");
    assert!(!e.contains('$'), "an unsubstituted variable in {expr}");
    e
}

async fn push_chat_model(api: &Api<'_>, tenant: &str) {
    let file = format!("{}.onnx", crate::chat::INT8);
    crate::chat::push_chat_model(api, tenant, crate::chat::INT8, &file).await;
}

/// One short greedy chat completion as `who`: (prompt tokens, completion tokens).
async fn chat(api: &Api<'_>, who: &Http) -> (u64, u64) {
    let r = who
        .request(
            "POST",
            &api.url("/v1/chat/completions"),
            &[("content-type", "application/json")],
            json!({"model": crate::chat::INT8, "temperature": 0, "max_tokens": 2,
                   "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "chat: {}", r.text());
    let u = &r.json()["usage"];
    let (p, c) = (
        u["prompt_tokens"].as_u64().unwrap_or(0),
        u["completion_tokens"].as_u64().unwrap_or(0),
    );
    assert!(p > 0 && c > 0, "chat usage: {u}");
    (p, c)
}

const TENANTS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_bounded_series_and_every_dashboard_panel_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        &dir.path().join("node"),
        Some("[node]\nid = \"fra\"\n[metrics]\nmax_tenant_labels = 2\n"),
    );
    let api = Api::new(&node);
    let mut keys = Vec::new();
    let mut callers = Vec::new();
    for t in TENANTS {
        api.create_tenant(t).await;
        api.deploy(t, "hello", "hello", "").await;
        let (key, prefix) = api.create_key(t, "invoker").await;
        callers.push(Http::with_token(Some(&key)));
        keys.push(key);
        keys.push(prefix);
    }
    api.deploy("alpha", "chaos", "chaos", "").await;
    api.deploy("alpha", "chat", "chat", "").await;
    push_chat_model(&api, "alpha").await;
    // alpha pays 1.0 a request, 0.001 a prompt token, 0.002 a completion token.
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/admin/tenants/alpha/prices"),
            json!({"prices": [{"per_1m_requests": 1_000_000.0, "per_1m_prompt_tokens": 1_000.0, "per_1m_completion_tokens": 2_000.0}]}),
        )
        .await;
    assert_eq!(r.status, 200, "prices: {}", r.text());

    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let target = node.url.trim_start_matches("http://").to_string();
    let cfg = example_config(&prom_dir, Some(&target));
    let prom = Prometheus::start(&prom_dir, &cfg).await;
    println!("prometheus at {} scraping {target}", prom.url);
    // Scrapes succeed (the admin token from the file; the OpenMetrics text parses).
    prom.wait_for("a successful scrape", "up{job=\"helixflow\"}", |r| {
        one_is(r, 1.0)
    })
    .await;

    // Load, in two rounds, so every counter has a sample before it moves (rate() and
    // histogram_quantile() need an increase between scrapes). alpha and beta invoke
    // first: they take the two tenant label slots; gamma and delta are `other`.
    let hello = |i: usize| {
        let c = callers[i].clone();
        let url = api.url(&format!("/{}/hello/", TENANTS[i]));
        async move {
            let r = c.get(&url).await;
            assert_eq!(r.status, 200, "{url}: {}", r.text());
        }
    };
    let trap = || async {
        let r = callers[0].get(&api.url("/alpha/chaos/trap")).await;
        assert_eq!(r.status, 500, "trap: {}", r.text());
    };
    let mut tokens = (0, 0);
    for i in 0..TENANTS.len() {
        hello(i).await;
    }
    trap().await;
    let (p, c) = chat(&api, &callers[0]).await;
    tokens = (tokens.0 + p, tokens.1 + c);
    let first_round = 6.0;
    prom.wait_for(
        "the first round's invocations",
        "sum(helixflow_invocations_total)",
        |r| one_is(r, first_round),
    )
    .await;
    prom.wait_for(
        "the first round's tokens",
        "sum(helixflow_tokens_total)",
        |r| one_is(r, (tokens.0 + tokens.1) as f64),
    )
    .await;
    for _ in 0..3 {
        for i in 0..TENANTS.len() {
            hello(i).await;
        }
    }
    trap().await;
    let (p, c) = chat(&api, &callers[0]).await;
    tokens = (tokens.0 + p, tokens.1 + c);
    // An HTTP error (a function that does not exist) for the status panel.
    let r = callers[0].get(&api.url("/alpha/no-such-function/")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let total = first_round + 14.0;
    prom.wait_for(
        "every invocation",
        "sum(helixflow_invocations_total)",
        |r| one_is(r, total),
    )
    .await;

    // Tokens by tenant and model: what the chat completions reported.
    let model = crate::chat::INT8;
    for (kind, n) in [("prompt", tokens.0), ("completion", tokens.1)] {
        prom.wait_for(
            &format!("{kind} tokens of alpha/{model}"),
            &format!(
                "helixflow_tokens_total{{tenant=\"alpha\",model=\"{model}\",kind=\"{kind}\",location=\"fra\"}}"
            ),
            |r| one_is(r, n as f64),
        )
        .await;
    }
    // Cost: alpha's 8 invocations at 1.0 plus its tokens at its prices (wired by the
    // node's cost accounting through `Metrics::add_cost`).
    let alpha_invocations = one(
        &prom
            .query("sum(helixflow_invocations_total{tenant=\"alpha\"})")
            .await,
        "alpha's invocations",
    );
    assert_eq!(alpha_invocations, 8.0);
    let cost = alpha_invocations + tokens.0 as f64 * 0.001 + tokens.1 as f64 * 0.002;
    prom.wait_for(
        "alpha's cost",
        "helixflow_cost_usd_total{tenant=\"alpha\",location=\"fra\"}",
        |r| r.len() == 1 && (sample(&r[0]) - cost).abs() < 1e-6,
    )
    .await;

    // Latency by location: raw and through the recording rules.
    let p95 = one(
        &prom
            .query("histogram_quantile(0.95, sum by (location, le) (rate(helixflow_invocation_duration_seconds_bucket[5m])))")
            .await,
        "p95 by location",
    );
    assert!(p95.is_finite() && p95 > 0.0, "p95 {p95}");
    for q in ["p50", "p95", "p99"] {
        prom.wait_for(
            &format!("the {q} recording rule"),
            &format!(
                "location:helixflow_invocation_duration_seconds:{q}_rate5m{{location=\"fra\"}}"
            ),
            |r| r.len() == 1 && sample(&r[0]).is_finite() && sample(&r[0]) > 0.0,
        )
        .await;
    }

    // Bounded labels: two tenants by name, the rest `other` (with their functions).
    let by_tenant = prom
        .query("count by (tenant) ({job=\"helixflow\", tenant!=\"\"})")
        .await;
    let mut names: Vec<String> = by_tenant
        .iter()
        .filter_map(|s| s["metric"]["tenant"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta", "other"], "{by_tenant:?}");
    let other = prom
        .query("sum by (function) (helixflow_invocations_total{tenant=\"other\"})")
        .await;
    assert_eq!(other.len(), 1, "other's functions are `other`: {other:?}");
    assert_eq!(other[0]["metric"]["function"], "other");
    assert_eq!(sample(&other[0]), 8.0, "gamma's and delta's 4 each");
    let values = prom
        .api("label/tenant/values?match[]=helixflow_invocations_total")
        .await;
    assert_eq!(values, json!(["alpha", "beta", "other"]));
    // No key, key prefix or principal in any label of any series.
    let series = prom
        .api(&format!(
            "series?match[]={}",
            form_encode("{job=\"helixflow\"}")
        ))
        .await;
    let series = series.as_array().cloned().unwrap_or_default();
    assert!(series.len() > 50, "{} series", series.len());
    for s in &series {
        for (name, value) in s.as_object().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            assert!(
                !["key", "principal", "caller", "subject"].contains(&name.as_str()),
                "a caller label: {s}"
            );
            for secret in keys
                .iter()
                .map(String::as_str)
                .chain([admin_key(), "hfk_", "key:"])
            {
                assert!(!value.contains(secret), "{secret} in a label: {s}");
            }
            for hidden in ["gamma", "delta"] {
                assert!(!value.contains(hidden), "{hidden} past the bound: {s}");
            }
        }
    }

    // Every rule of the repo's file loaded and evaluates without error.
    let rules_text =
        std::fs::read_to_string(infra("prometheus/rules/helixflow.rules.yml")).unwrap();
    let wanted: Vec<&str> = rules_text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("- record: ")
                .or_else(|| l.strip_prefix("- alert: "))
        })
        .collect();
    assert!(wanted.len() >= 10, "{wanted:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let groups = prom.api("rules").await;
        let rules: Vec<&Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let evaluated = wanted.iter().all(|w| {
            rules
                .iter()
                .any(|r| r["name"] == *w && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
        });
        if evaluated {
            for r in &rules {
                assert_eq!(r["health"], "ok", "rule {}: {}", r["name"], r["lastError"]);
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules not all evaluated: {groups}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every panel of both dashboards returns series with a value.
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, vars) in [
        ("fleet-overview.json", &["location"][..]),
        ("tenant-usage.json", &["tenant"][..]),
    ] {
        let d = dashboard(file, vars);
        let ps = panels(&d);
        assert!(ps.len() >= 6, "{file}: {} panels", ps.len());
        for (title, exprs) in ps {
            for expr in exprs {
                let q = substitute(&expr, "alpha");
                let r = prom.query(&q).await;
                checked += 1;
                if r.is_empty() {
                    failures.push(format!("{file}: panel {title:?}: no series for {q}"));
                } else if !r.iter().any(|s| sample(s).is_finite()) {
                    failures.push(format!(
                        "{file}: panel {title:?}: no finite value for {q}: {}",
                        Value::Array(r)
                    ));
                } else {
                    println!("{file}: {title}: {q} -> {} series", r.len());
                }
            }
        }
    }
    assert!(checked >= 25, "{checked} panel queries");
    assert!(
        failures.is_empty(),
        "dashboard queries without data:\n{}",
        failures.join("\n")
    );
    drop(prom);
    drop(node);
}
