//! Budgets: monthly spend caps and OpenAI-style rate limits, per tenant and per caller,
//! enforced fleet-wide within a stated tolerance.
//!
//! * **Spend.** A tenant's month-to-date spend is usage x the price in force
//!   ([`crate::usage::rows`], `helixflow_usage::price`), kept per tenant and per caller:
//!   minutes older than [`SETTLED_MINUTES`] are read once and summed (they no longer
//!   change), the last few minutes are re-read on every refresh (every
//!   `budget_refresh`, only for tenants that are invoked), and this process's own
//!   invocations since the last refresh are added as they finish. A hard cap refuses new
//!   invocations (429 `budget_exceeded`; OpenAI's `insufficient_quota` on `/v1`) until
//!   the month ends or the cap is raised; a soft cap writes an audit record and a
//!   warning once per month.
//! * **Rates.** `rpm`/`tpm` on the OpenAI API are token buckets per scope (the tenant,
//!   one caller), refilled per minute as OpenAI's are. A request reserves one request
//!   and its estimated tokens (prompt estimate + `max_tokens`); when it finishes, the
//!   reservation is replaced by the tokens it used. Other nodes' use drains the buckets
//!   when a refresh reads their usage rows.
//!
//! Tolerance (documented in README): another node's spend and requests are seen here
//! after its usage flush (`[usage] flush_interval_ms`) plus this node's refresh
//! (`budget_refresh_ms`); a fleet of N nodes can overshoot a cap or a rate by what the
//! other N-1 nodes admitted in that time. One node alone overshoots a spend cap by at
//! most the invocations already running when the cap was reached.
//!
//! Invariant: memory is bounded: state is kept only for tenants that have a budget
//! (real tenants: callers resolve before they are admitted), at most [`MAX_TENANTS`],
//! least recently used first out; per caller at most `helixflow_usage::budget::MAX_CALLERS`.

use crate::Node;
use crate::error::{ErrorKind, NodeError};
use helixflow_store::usage::UsageRow;
use helixflow_usage::PriceBook;
use helixflow_usage::budget::{Bucket, Budget, Limits, month_of};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Minutes this old are settled: every node has flushed them.
pub const SETTLED_MINUTES: u64 = 5;
/// Tenants whose live budget state is kept.
const MAX_TENANTS: usize = 10_000;
/// How long an admission waits for a tenant's first spend refresh.
const FIRST_REFRESH_WAIT: Duration = Duration::from_secs(2);

type Cache<V> = Mutex<lru::LruCache<String, (Instant, V)>>;

/// Live budget state of the node.
///
/// Budgets and price tables are cached with the time they were read: a fresh one (read
/// within the TTL) is served, a stale one is served too while one background task
/// re-reads it (a store outage keeps the last known value: invocations never wait on
/// the store once a tenant's budget is known, as resolutions never do).
pub struct Budgets {
    /// Budget per tenant (`None`: it has none).
    configs: Cache<Option<Arc<Budget>>>,
    /// Price table per tenant (for the cost of each finished invocation).
    prices: Cache<Arc<PriceBook>>,
    ttl: Duration,
    /// Tenants whose budget and prices are being re-read in the background.
    reloading: Mutex<std::collections::HashSet<String>>,
    /// The node itself, for background re-reads.
    pub(crate) me: OnceLock<Weak<Node>>,
    states: Mutex<lru::LruCache<String, Arc<TenantState>>>,
    refresh: Duration,
    epoch: Instant,
}

/// One tenant's spend and rate state.
struct TenantState {
    live: Mutex<Live>,
    /// Held while refreshing: one refresh per tenant at a time.
    refreshing: tokio::sync::Mutex<Settled>,
    /// Invoked since the background refresh last ran.
    active: std::sync::atomic::AtomicBool,
}

/// Spend of the tenant, and of the callers its budget names (at most
/// `helixflow_usage::budget::MAX_CALLERS`; nobody else's is kept).
#[derive(Default)]
struct Spend {
    total: f64,
    callers: HashMap<String, f64>,
}

impl Spend {
    fn add(&mut self, caller: &str, usd: f64, named: bool) {
        self.total += usd;
        if !named {
            return;
        }
        if let Some(v) = self.callers.get_mut(caller) {
            *v += usd;
        } else {
            self.callers.insert(caller.to_string(), usd);
        }
    }
    fn of(&self, caller: &str) -> f64 {
        self.callers.get(caller).copied().unwrap_or(0.0)
    }
}

#[derive(Default)]
struct Live {
    month: u32,
    /// Spend as of the last refresh (settled + recent minutes, all nodes).
    base: Spend,
    /// This process's spend since the last refresh.
    local: Spend,
    refreshed_at: Option<Instant>,
    soft_noted: HashMap<String, u32>,
    /// Rate buckets per scope (`""`: the tenant; else the caller).
    buckets: HashMap<String, ScopeBuckets>,
}

/// The rate buckets of one scope, and the limits they were made for (a change of the
/// limits, written through any node, makes new ones).
struct ScopeBuckets {
    limits: (Option<u32>, Option<u64>),
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl ScopeBuckets {
    fn new(l: &Limits, now: f64) -> ScopeBuckets {
        ScopeBuckets {
            limits: (l.rpm, l.tpm),
            requests: l.rpm.map(|n| Bucket::new(u64::from(n), now)),
            tokens: l.tpm.map(|n| Bucket::new(n, now)),
        }
    }
}

/// The buckets of `scope` for limits `l` (new ones when `l` changed).
fn buckets_for<'a>(
    all: &'a mut HashMap<String, ScopeBuckets>,
    scope: &str,
    l: &Limits,
    now: f64,
) -> &'a mut ScopeBuckets {
    let b = all
        .entry(scope.to_string())
        .or_insert_with(|| ScopeBuckets::new(l, now));
    if b.limits != (l.rpm, l.tpm) {
        *b = ScopeBuckets::new(l, now);
    }
    b
}

/// What the refresh keeps between runs: the settled part of the month.
#[derive(Default)]
struct Settled {
    month: u32,
    /// Minutes before this are summed in `spend`.
    until: u64,
    spend: Spend,
    /// The callers the budget named when `spend` was summed (another set: re-sum).
    named: Vec<String>,
    /// Other writers' counters last seen per (writer, minute, dims), for rate deltas.
    seen: HashMap<(String, u64, String), (u64, u64)>,
}

/// OpenAI's rate-limit headers for one request.
#[derive(Debug, Clone, Default)]
pub struct RateInfo {
    /// (limit, remaining, seconds to full) for requests.
    pub requests: Option<(u64, u64, f64)>,
    /// (limit, remaining, seconds to full) for tokens.
    pub tokens: Option<(u64, u64, f64)>,
}

impl Budgets {
    pub fn new(ttl: Duration, refresh: Duration) -> Budgets {
        Budgets {
            configs: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(MAX_TENANTS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            prices: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(MAX_TENANTS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            ttl,
            reloading: Mutex::default(),
            me: OnceLock::new(),
            states: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(MAX_TENANTS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            refresh,
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn state(&self, tenant: &str) -> Arc<TenantState> {
        let mut m = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get(tenant) {
            return s.clone();
        }
        let s = Arc::new(TenantState {
            live: Mutex::new(Live::default()),
            refreshing: tokio::sync::Mutex::new(Settled::default()),
            active: std::sync::atomic::AtomicBool::new(true),
        });
        m.put(tenant.to_string(), s.clone());
        s
    }

    fn existing_state(&self, tenant: &str) -> Option<Arc<TenantState>> {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
    }

    /// Forgets the cached budget and prices of `tenant` (after a write through this node).
    pub fn invalidate(&self, tenant: &str) {
        self.configs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop(tenant);
        self.prices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop(tenant);
        if let Some(s) = self.existing_state(tenant) {
            let mut live = s.live.lock().unwrap_or_else(|p| p.into_inner());
            // New limits start with full buckets; the spend stays.
            live.buckets.clear();
            live.refreshed_at = None;
        }
    }
}

fn cached<V: Clone>(cache: &Cache<V>, tenant: &str) -> Option<(Instant, V)> {
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(tenant)
        .map(|(at, v)| (*at, v.clone()))
}

async fn load_budget(node: &Node, tenant: &str) -> Result<Option<Arc<Budget>>, NodeError> {
    let b = match node.registry.tenant_budget(tenant).await? {
        Some(v) => Some(Arc::new(serde_json::from_value::<Budget>(v).map_err(
            |e| NodeError::internal("store_corrupt", format!("stored budget of {tenant:?}: {e}")),
        )?)),
        None => None,
    };
    node.budgets
        .configs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .put(tenant.to_string(), (Instant::now(), b.clone()));
    Ok(b)
}

async fn load_prices(node: &Node, tenant: &str) -> Result<Arc<PriceBook>, NodeError> {
    let (book, _) = crate::usage::prices(node, tenant).await?;
    let book = Arc::new(book);
    node.budgets
        .prices
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .put(tenant.to_string(), (Instant::now(), book.clone()));
    Ok(book)
}

/// Re-reads `tenant`'s budget and prices in one background task (none when one runs);
/// a failed read keeps what is cached.
fn reload_in_background(node: &Node, tenant: &str) {
    let Some(me) = node.budgets.me.get().and_then(Weak::upgrade) else {
        return;
    };
    if !node
        .budgets
        .reloading
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(tenant.to_string())
    {
        return;
    }
    let tenant = tenant.to_string();
    tokio::spawn(async move {
        if let Err(e) = load_budget(&me, &tenant).await {
            tracing::warn!(%tenant, code = e.code, error = %e.message, "budget not re-read; keeping the last one");
        }
        if let Err(e) = load_prices(&me, &tenant).await {
            tracing::warn!(%tenant, code = e.code, error = %e.message, "prices not re-read; keeping the last ones");
        }
        me.budgets
            .reloading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tenant);
    });
}

/// The budget of `tenant`: read from the store the first time, then served from memory
/// (re-read in the background once older than the resolve TTL).
pub async fn budget(node: &Node, tenant: &str) -> Result<Option<Arc<Budget>>, NodeError> {
    match cached(&node.budgets.configs, tenant) {
        Some((at, b)) => {
            if at.elapsed() >= node.budgets.ttl {
                reload_in_background(node, tenant);
            }
            Ok(b)
        }
        None => load_budget(node, tenant).await,
    }
}

/// Sets (`Some`) or removes (`None`) a tenant's budget.
pub async fn set_budget(node: &Node, tenant: &str, b: Option<Budget>) -> Result<(), NodeError> {
    if let Some(b) = &b {
        b.validate()
            .map_err(|e| NodeError::invalid(e.code, e.message))?;
    }
    let value = match b {
        Some(b) => Some(
            serde_json::to_value(&b).map_err(|e| NodeError::internal("internal", e.to_string()))?,
        ),
        None => None,
    };
    node.registry.set_tenant_budget(tenant, value).await?;
    node.budgets.invalidate(tenant);
    Ok(())
}

impl Budgets {
    /// The cached price table of `tenant`, at any age.
    fn cached_book(&self, tenant: &str) -> Option<Arc<PriceBook>> {
        cached(&self.prices, tenant).map(|(_, b)| b)
    }

    /// The cached budget of `tenant`, at any age (`None`: not read yet).
    fn cached_budget(&self, tenant: &str) -> Option<Option<Arc<Budget>>> {
        cached(&self.configs, tenant).map(|(_, b)| b)
    }
}

/// The price table of `tenant`, as [`budget`] serves budgets.
async fn price_book(node: &Node, tenant: &str) -> Result<Arc<PriceBook>, NodeError> {
    match cached(&node.budgets.prices, tenant) {
        Some((at, b)) => {
            if at.elapsed() >= node.budgets.ttl.max(Duration::from_secs(5)) {
                reload_in_background(node, tenant);
            }
            Ok(b)
        }
        None => load_prices(node, tenant).await,
    }
}

fn row_cost(book: &PriceBook, r: &UsageRow) -> f64 {
    book.cost(
        r.minute * 60,
        r.dims.get("model").map(String::as_str),
        &r.counters,
    )
}

fn caller_of(r: &UsageRow) -> &str {
    r.dims.get("key").map(String::as_str).unwrap_or("")
}

/// Re-reads `tenant`'s recent usage (and, once per month, its settled minutes): its
/// spend, and the requests and tokens other nodes used, which drain the rate buckets.
async fn refresh(node: &Node, tenant: &str, st: &TenantState) -> Result<(), NodeError> {
    let mut settled = st.refreshing.lock().await;
    let fresh = {
        let live = st.live.lock().unwrap_or_else(|p| p.into_inner());
        live.refreshed_at
            .is_some_and(|t| t.elapsed() < node.budgets.refresh)
    };
    if fresh {
        // Someone refreshed while this one waited.
        return Ok(());
    }
    let book = price_book(node, tenant).await?;
    let config = budget(node, tenant).await?;
    let now_unix = helixflow_store::now_unix();
    let now_min = now_unix / 60;
    let (month, month_start, _) = month_of(now_unix);
    let named: Vec<String> = config
        .as_ref()
        .map(|b| b.callers.keys().cloned().collect())
        .unwrap_or_default();
    // A new month, or another set of capped callers: sum the month again.
    if settled.month != month || settled.named != named {
        *settled = Settled {
            month,
            until: month_start,
            named: named.clone(),
            ..Default::default()
        };
    }
    let is_named = |c: &str| named.binary_search_by(|n| n.as_str().cmp(c)).is_ok();
    let settle_to = now_min.saturating_sub(SETTLED_MINUTES).max(settled.until);
    // Settled time already rolled up: days and hours, one row per period and dimensions.
    let rolled = node.registry.rollup_mark(tenant).await?.unwrap_or(0) * 60;
    let to = rolled.min(settle_to);
    if settled.until < to {
        for r in crate::usage::period_rows(node, tenant, settled.until, to, &book, true).await? {
            let c = row_cost(&book, &r);
            settled.spend.add(caller_of(&r), c, is_named(caller_of(&r)));
        }
        settled.until = to;
    }
    // Settled minutes: an hour at a time, so memory holds one hour's rows.
    while settled.until < settle_to {
        let to = ((settled.until / 60 + 1) * 60).min(settle_to);
        for r in crate::usage::rows(node, tenant, settled.until, to).await? {
            let c = row_cost(&book, &r);
            settled.spend.add(caller_of(&r), c, is_named(caller_of(&r)));
        }
        settled.until = to;
    }
    // This process's spend since the last refresh, as it stands before the read.
    let snap = {
        let live = st.live.lock().unwrap_or_else(|p| p.into_inner());
        (
            live.local.total,
            live.local
                .callers
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vec<_>>(),
        )
    };
    let recent = crate::usage::rows(node, tenant, settled.until, now_min + 1).await?;
    let mut base = Spend {
        total: settled.spend.total,
        callers: settled.spend.callers.clone(),
    };
    // Other writers' OpenAI requests and tokens since the last refresh.
    let me = node.meter.writer().to_string();
    let mut drained: HashMap<String, (u64, u64)> = HashMap::new();
    for r in &recent {
        base.add(caller_of(r), row_cost(&book, r), is_named(caller_of(r)));
        if r.node == me
            || r.minute + 1 < now_min
            || r.dims.get("trigger").map(String::as_str) != Some("openai")
        {
            continue;
        }
        let c = |k: &str| r.counters.get(k).copied().unwrap_or(0);
        let now = (
            c("requests"),
            c("prompt_tokens") + c("completion_tokens") + c("embedding_tokens"),
        );
        let before = settled
            .seen
            .insert((r.node.clone(), r.minute, r.dims_id()), now)
            .unwrap_or((0, 0));
        let d = (
            now.0.saturating_sub(before.0),
            now.1.saturating_sub(before.1),
        );
        for scope in ["", caller_of(r)] {
            let e = drained.entry(scope.to_string()).or_default();
            e.0 += d.0;
            e.1 += d.1;
        }
    }
    settled
        .seen
        .retain(|(_, minute, _), _| minute + 2 >= now_min);
    let t = node.budgets.now();
    let soft = {
        let mut live = st.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.month != month {
            live.month = month;
            live.soft_noted.clear();
            live.local = Spend::default();
        } else {
            live.local.total -= snap.0;
            for (k, v) in snap.1 {
                if let Some(x) = live.local.callers.get_mut(&k) {
                    *x -= v;
                }
            }
        }
        live.base = base;
        live.refreshed_at = Some(Instant::now());
        if let Some(budget) = &config {
            for (scope, (req, tok)) in drained {
                let limits = if scope.is_empty() {
                    Some(&budget.tenant)
                } else {
                    budget.caller(&scope)
                };
                let Some(l) = limits.filter(|l| l.limits_rate()) else {
                    continue;
                };
                let b = buckets_for(&mut live.buckets, &scope, l, t);
                if let Some(b) = &mut b.requests {
                    b.take(req, t);
                }
                if let Some(b) = &mut b.tokens {
                    b.take(tok, t);
                }
            }
        }
        match &config {
            Some(b) => soft_crossings(b, &mut live, month),
            None => Vec::new(),
        }
    };
    for (scope, spent, cap) in soft {
        tracing::warn!(%tenant, scope = %scope, spent, cap, "soft budget crossed");
        let rec = helixflow_store::access::AuditRecord {
            at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            tenant: tenant.to_string(),
            actor: "helixflow".into(),
            action: "budget.soft_limit".into(),
            target: if scope.is_empty() {
                "tenant".into()
            } else {
                scope.clone()
            },
            outcome: format!("spent {spent:.6} of soft limit {cap}"),
            status: 0,
            source: String::new(),
            request_id: String::new(),
        };
        if let Err(e) = node.registry.audit(&rec).await {
            tracing::error!(error = %e, "audit record of a soft budget not written");
        }
    }
    Ok(())
}

/// Soft caps crossed for the first time this month: (scope, spent, cap).
fn soft_crossings(b: &Budget, live: &mut Live, month: u32) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    let scopes = std::iter::once(("".to_string(), &b.tenant))
        .chain(b.callers.iter().map(|(k, l)| (k.clone(), l)));
    for (scope, l) in scopes {
        let Some(cap) = l.soft_spend else { continue };
        let spent = spent_of(live, &scope);
        if spent >= cap && live.soft_noted.get(&scope) != Some(&month) {
            live.soft_noted.insert(scope.clone(), month);
            out.push((scope, spent, cap));
        }
    }
    out
}

fn spent_of(live: &Live, scope: &str) -> f64 {
    if scope.is_empty() {
        live.base.total + live.local.total
    } else {
        live.base.of(scope) + live.local.of(scope)
    }
}

/// The live state of `tenant`, marked for the background refresh; the first time, its
/// spend is read here (waiting at most [`FIRST_REFRESH_WAIT`]: past it, the invocation
/// is admitted and the refresh goes on in the background).
async fn fresh_state(node: &Node, tenant: &str) -> Arc<TenantState> {
    let st = node.budgets.state(tenant);
    st.active.store(true, std::sync::atomic::Ordering::Relaxed);
    let never = st
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .refreshed_at
        .is_none();
    if never {
        match tokio::time::timeout(FIRST_REFRESH_WAIT, refresh(node, tenant, &st)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(%tenant, code = e.code, error = %e.message, "budget refresh failed")
            }
            Err(_) => tracing::warn!(%tenant, "budget refresh slower than {FIRST_REFRESH_WAIT:?}"),
        }
    }
    st
}

/// Refreshes, every `budget_refresh`, the tenants invoked since the last round.
pub fn start(node: &Arc<Node>) {
    let node = node.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(node.budgets.refresh).await;
            let active: Vec<(String, Arc<TenantState>)> = {
                let m = node
                    .budgets
                    .states
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                m.iter()
                    .filter(|(_, s)| s.active.swap(false, std::sync::atomic::Ordering::Relaxed))
                    .map(|(t, s)| (t.clone(), s.clone()))
                    .collect()
            };
            for (tenant, st) in active {
                st.live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .refreshed_at
                    .take_if(|t| t.elapsed() >= node.budgets.refresh);
                if let Err(e) = refresh(&node, &tenant, &st).await {
                    tracing::warn!(%tenant, code = e.code, error = %e.message, "budget refresh failed");
                }
            }
        }
    });
}

/// Refuses an invocation of `tenant` by `caller` when a hard monthly cap (the tenant's or
/// the caller's) is reached. Cheap for tenants without a budget (one cached lookup).
pub async fn admit_spend(node: &Node, tenant: &str, caller: &str) -> Result<(), NodeError> {
    if node.settings.usage_enabled {
        // Keeps the prices warm for `charge` (the cost metric) when the call ends.
        price_book(node, tenant).await?;
    }
    let Some(b) = budget(node, tenant).await? else {
        return Ok(());
    };
    if !b.caps_spend() {
        return Ok(());
    }
    let st = fresh_state(node, tenant).await;
    let live = st.live.lock().unwrap_or_else(|p| p.into_inner());
    let over = |scope: &str, l: &Limits| {
        l.monthly_spend
            .filter(|cap| spent_of(&live, scope) >= *cap)
            .map(|cap| (spent_of(&live, scope), cap))
    };
    let hit = over("", &b.tenant)
        .map(|(s, c)| ("tenant", s, c))
        .or_else(|| {
            b.caller(caller)
                .and_then(|l| over(caller, l))
                .map(|(s, c)| ("caller", s, c))
        });
    if let Some((who, spent, cap)) = hit {
        let (_, _, next_month) = month_of(helixflow_store::now_unix());
        let mut e = NodeError::new(
            ErrorKind::Limited,
            "budget_exceeded",
            format!(
                "the {who}'s monthly budget is spent ({spent:.4} of {cap}): new invocations are refused until the month ends or the budget is raised"
            ),
        );
        e.retry_after = Some(
            next_month
                .saturating_sub(helixflow_store::now_unix())
                .min(u64::from(u32::MAX)) as u32,
        );
        return Err(e);
    }
    Ok(())
}

/// Takes one request and `tokens` (an estimate) from the OpenAI rate limits of `tenant`
/// and `caller`; `Err` (429 `rate_limit_exceeded`, with the wait) takes nothing. The
/// [`RateInfo`] is for the response headers either way.
pub async fn admit_rate(
    node: &Node,
    tenant: &str,
    caller: &str,
    tokens: u64,
) -> Result<RateInfo, (NodeError, RateInfo)> {
    let b = match budget(node, tenant).await {
        Ok(Some(b)) if b.limits_rate() => b,
        Ok(_) => return Ok(RateInfo::default()),
        Err(e) => return Err((e, RateInfo::default())),
    };
    let st = fresh_state(node, tenant).await;
    let t = node.budgets.now();
    let mut live = st.live.lock().unwrap_or_else(|p| p.into_inner());
    let scopes: Vec<(&str, &Limits)> = std::iter::once(("", &b.tenant))
        .chain(b.caller(caller).map(|l| (caller, l)))
        .filter(|(_, l)| l.limits_rate())
        .collect();
    // A request larger than a token limit can never be admitted (OpenAI refuses it too).
    for (scope, l) in &scopes {
        if let Some(cap) = l.tpm.filter(|cap| tokens > *cap) {
            let who = if scope.is_empty() {
                "this tenant"
            } else {
                "this key"
            };
            return Err((
                NodeError::new(
                    ErrorKind::Limited,
                    "rate_limit_exceeded",
                    format!(
                        "Request too large for {who}: it may use {tokens} tokens (its input and max_tokens), and the limit is {cap} tokens per minute. Send less input or a lower max_tokens."
                    ),
                ),
                RateInfo::default(),
            ));
        }
    }
    // The wait of the tightest limit: (seconds, what, limit, the caller's own limit).
    let mut wait: Option<(f64, &'static str, u64, bool)> = None;
    for (scope, l) in &scopes {
        let b = buckets_for(&mut live.buckets, scope, l, t);
        for (what, bucket, n) in [
            ("requests", &mut b.requests, 1),
            ("tokens", &mut b.tokens, tokens),
        ] {
            if let Some(bucket) = bucket {
                let w = bucket.wait_for(n, t);
                if w > 0.0 && wait.is_none_or(|(x, ..)| w > x) {
                    wait = Some((w, what, bucket.capacity(), !scope.is_empty()));
                }
            }
        }
    }
    if wait.is_none() {
        for (scope, _) in &scopes {
            if let Some(b) = live.buckets.get_mut(*scope) {
                if let Some(b) = &mut b.requests {
                    b.take(1, t);
                }
                if let Some(b) = &mut b.tokens {
                    b.take(tokens, t);
                }
            }
        }
    }
    // Headers: the scope that refused; else the caller's own limits when it has them,
    // else the tenant's.
    let shown = match wait {
        Some((.., true)) => caller.to_string(),
        Some((.., false)) => String::new(),
        None => scopes
            .last()
            .map(|(s, _)| s.to_string())
            .unwrap_or_default(),
    };
    let mut info = RateInfo::default();
    if let Some(b) = live.buckets.get_mut(&shown) {
        info.requests = b
            .requests
            .as_mut()
            .map(|b| (b.capacity(), b.remaining(t), b.reset_secs(t)));
        info.tokens = b
            .tokens
            .as_mut()
            .map(|b| (b.capacity(), b.remaining(t), b.reset_secs(t)));
    }
    match wait {
        None => Ok(info),
        Some((w, what, limit, own)) => {
            let scope = if own { "this key" } else { "this tenant" };
            let mut e = NodeError::new(
                ErrorKind::Limited,
                "rate_limit_exceeded",
                format!(
                    "Rate limit reached for {scope}: {limit} {what} per minute. Please try again in {}.",
                    helixflow_usage::budget::openai_duration(w)
                ),
            );
            e.retry_after = Some(w.ceil().max(1.0) as u32);
            Err((e, info))
        }
    }
}

/// Replaces a rate reservation of `reserved` tokens by the `used` ones, once a request
/// finished.
pub fn settle_tokens(node: &Node, tenant: &str, caller: &str, reserved: u64, used: u64) {
    if reserved == used {
        return;
    }
    let Some(st) = node.budgets.existing_state(tenant) else {
        return;
    };
    let t = node.budgets.now();
    let mut live = st.live.lock().unwrap_or_else(|p| p.into_inner());
    for scope in ["", caller] {
        if let Some(ScopeBuckets {
            tokens: Some(b), ..
        }) = live.buckets.get_mut(scope)
        {
            if used > reserved {
                b.take(used - reserved, t);
            } else {
                b.give_back(reserved - used, t);
            }
        }
    }
}

/// The cost of a finished invocation's usage at the tenant's prices: added to this
/// process's spend (when the tenant has a budget) and to the cost metric. Prices come
/// from the cache [`admit_spend`] keeps warm (every invocation is admitted first).
pub fn charge(
    node: &Node,
    tenant: &str,
    caller: &str,
    model: Option<&str>,
    counters: impl FnOnce() -> BTreeMap<String, u64>,
) {
    // Without prices nothing costs anything: no counters are built (the common case).
    let Some(book) = node.budgets.cached_book(tenant).filter(|b| !b.0.is_empty()) else {
        return;
    };
    let usd = book.cost(helixflow_store::now_unix(), model, &counters());
    if usd <= 0.0 {
        return;
    }
    node.metrics.add_cost(tenant, usd);
    if let Some(st) = node.budgets.existing_state(tenant) {
        let named = matches!(node.budgets.cached_budget(tenant), Some(Some(b)) if b.callers.contains_key(caller));
        st.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .local
            .add(caller, usd, named);
    }
}

/// A tenant's budget with its month-to-date spend (tenant and each capped caller), as
/// this node knows it now.
pub async fn status(node: &Node, tenant: &str) -> Result<serde_json::Value, NodeError> {
    let b = budget(node, tenant).await?;
    let Some(b) = b else {
        return Ok(serde_json::json!({"tenant": tenant, "budget": null}));
    };
    let st = node.budgets.state(tenant);
    // A status read refreshes now (a budget page wants current numbers).
    st.live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .refreshed_at = None;
    refresh(node, tenant, &st).await?;
    let live = st.live.lock().unwrap_or_else(|p| p.into_inner());
    let callers: serde_json::Map<String, serde_json::Value> = b
        .callers
        .keys()
        .map(|k| (k.clone(), serde_json::json!(spent_of(&live, k))))
        .collect();
    let (month, _, next) = month_of(helixflow_store::now_unix());
    Ok(serde_json::json!({
        "tenant": tenant,
        "budget": &*b,
        "month": format!("{}-{:02}", month / 100, month % 100),
        "resets_at": next,
        "spend": {"tenant": spent_of(&live, ""), "callers": callers},
    }))
}
