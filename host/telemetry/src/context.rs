//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and
//! `tracestate` headers.
//!
//! `traceparent` is `{version}-{trace-id}-{parent-id}-{trace-flags}` in lowercase hex
//! (`00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`). Parsing follows the
//! specification's rules for a receiver: version `ff` is invalid, version `00` is
//! exactly 55 characters, a later version may carry more fields after a `-` (they are
//! ignored and the header is read as version `00`), all-zero trace or parent ids are
//! invalid, and so is any uppercase or non-hex digit. An invalid `traceparent` means
//! "no context" (and its `tracestate` is ignored too); it is never an error for the
//! request that carried it. This module never panics on input.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use std::str::FromStr;

/// The `traceparent` header's name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header's name.
pub const TRACESTATE: &str = "tracestate";

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceContextError {
    #[error("traceparent must be 55 characters (version 00), got {0}")]
    Length(usize),
    #[error("traceparent is not `version-traceid-parentid-flags`")]
    Format,
    #[error("traceparent has a field that is not lowercase hex")]
    Hex,
    #[error("traceparent version ff is invalid")]
    Version,
    #[error("traceparent has an all-zero trace id")]
    ZeroTraceId,
    #[error("traceparent has an all-zero parent id")]
    ZeroSpanId,
}

/// One position in a distributed trace: the trace, the span that is the parent of
/// whatever receives this, the trace flags (bit 0: sampled) and the vendors'
/// `tracestate`, carried through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    tracestate: Option<String>,
}

/// W3C: at most 32 list members; a longer or malformed `tracestate` is dropped whole.
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// A `tracestate` value longer than this is not carried (the specification lets a
/// receiver drop what it cannot keep; 512 is what it asks every vendor to accept).
const MAX_TRACESTATE_LEN: usize = 512;

fn hex_field<const N: usize>(s: &str) -> Result<[u8; N], TraceContextError> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return Err(TraceContextError::Format);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceContextError::Hex),
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(b[2 * i])? << 4) | digit(b[2 * i + 1])?;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// W3C `key`: `simple-key` (lcalpha then up to 255 key chars) or `tenant@system`
/// (tenant: lcalpha/digit then up to 240; system: lcalpha then up to 13).
fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    match k.split_once('@') {
        None => {
            !b.is_empty()
                && b.len() <= 256
                && b[0].is_ascii_lowercase()
                && b.iter().all(|&c| key_char(c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&c| key_char(c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&c| key_char(c))
        }
    }
}

/// W3C `value`: 1 to 256 printable ASCII characters, no `,` or `=`, not ending in a space.
fn valid_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// A valid `tracestate` in its normalized form (members joined by `,`), or `None`
/// (absent, empty, too long, too many members, a duplicate key or a malformed member:
/// then it is dropped whole, never half-carried).
fn normalize_tracestate(s: &str) -> Option<String> {
    if s.len() > MAX_TRACESTATE_LEN * 2 {
        return None;
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut out = String::with_capacity(s.len());
    for member in s.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let (k, v) = member.split_once('=')?;
        if !valid_key(k) || !valid_value(v) || keys.contains(&k) {
            return None;
        }
        keys.push(k);
        if keys.len() > MAX_TRACESTATE_MEMBERS {
            return None;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(member);
    }
    (!out.is_empty() && out.len() <= MAX_TRACESTATE_LEN).then_some(out)
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // A failing OS RNG is vanishingly rare; fall back to a time-derived value so a
    // trace id is still non-zero (and unique enough for one process).
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(1)
            .to_le_bytes();
        for (i, o) in b.iter_mut().enumerate() {
            *o = t[i % t.len()] ^ (i as u8).wrapping_mul(0x9d);
        }
    }
    if b.iter().all(|&x| x == 0) {
        b[N - 1] = 1;
    }
    b
}

impl TraceContext {
    /// Parses a `traceparent` value and the `tracestate` that came with it (dropped
    /// when malformed; the `traceparent` alone decides validity).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, TraceContextError> {
        let tp = traceparent.trim_matches([' ', '\t']);
        if !tp.is_ascii() {
            return Err(TraceContextError::Hex);
        }
        if tp.len() < 55 {
            return Err(TraceContextError::Length(tp.len()));
        }
        let version: [u8; 1] = hex_field(&tp[0..2])?;
        match version[0] {
            0xff => return Err(TraceContextError::Version),
            0x00 if tp.len() != 55 => return Err(TraceContextError::Length(tp.len())),
            // A later version: its first four fields are version 00's; whatever follows
            // must start with '-'.
            _ if tp.len() > 55 && tp.as_bytes()[55] != b'-' => {
                return Err(TraceContextError::Format);
            }
            _ => {}
        }
        let b = tp.as_bytes();
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceContextError::Format);
        }
        let trace_id: [u8; 16] = hex_field(&tp[3..35])?;
        let span_id: [u8; 8] = hex_field(&tp[36..52])?;
        let [flags]: [u8; 1] = hex_field(&tp[53..55])?;
        if trace_id == [0; 16] {
            return Err(TraceContextError::ZeroTraceId);
        }
        if span_id == [0; 8] {
            return Err(TraceContextError::ZeroSpanId);
        }
        Ok(TraceContext {
            trace_id,
            span_id,
            flags,
            tracestate: tracestate.and_then(normalize_tracestate),
        })
    }

    /// The trace context an HTTP request carries: `None` when it has no
    /// `traceparent`, more than one, or an invalid one. Several `tracestate` headers
    /// are one list, joined with commas.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        let mut tps = headers.get_all(TRACEPARENT).iter();
        let tp = tps.next()?.to_str().ok()?;
        if tps.next().is_some() {
            return None;
        }
        // A `tracestate` that is not ASCII or far too long is dropped whole.
        let mut state = Some(String::new());
        for v in headers.get_all(TRACESTATE) {
            state = match (state, v.to_str()) {
                (Some(mut s), Ok(v)) if s.len() + v.len() <= MAX_TRACESTATE_LEN * 2 => {
                    if !s.is_empty() {
                        s.push(',');
                    }
                    s.push_str(v);
                    Some(s)
                }
                _ => None,
            };
        }
        let state = state.filter(|s| !s.is_empty());
        Self::parse(tp, state.as_deref()).ok()
    }

    /// A new trace (random ids).
    pub fn new_root(sampled: bool) -> Self {
        TraceContext {
            trace_id: random(),
            span_id: random(),
            flags: u8::from(sampled),
            tracestate: None,
        }
    }

    /// The same trace, flags and `tracestate` with a new span id: what a span that is
    /// this one's child passes on.
    pub fn child(&self) -> Self {
        let mut span_id = random::<8>();
        while span_id == self.span_id {
            span_id = random();
        }
        TraceContext {
            span_id,
            ..self.clone()
        }
    }

    /// `traceparent` as this node sends it (always version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            hex(&self.trace_id),
            hex(&self.span_id),
            hex(&[self.flags])
        )
    }

    /// The vendors' `tracestate`, normalized, if there was a valid one.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The trace id in lowercase hex (32 characters).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The parent span's id (the span this context was taken from).
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The span id in lowercase hex (16 characters).
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller (may have) recorded this trace: bit 0 of the flags.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// Sets `traceparent` (and `tracestate`, or removes a stale one) on `headers`,
    /// replacing what was there.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        if let Ok(v) = http::HeaderValue::from_str(&self.traceparent()) {
            headers.insert(TRACEPARENT, v);
        }
        match self
            .tracestate
            .as_deref()
            .and_then(|s| http::HeaderValue::from_str(s).ok())
        {
            Some(v) => {
                headers.insert(TRACESTATE, v);
            }
            None => {
                headers.remove(TRACESTATE);
            }
        }
    }

    /// As an OpenTelemetry remote span context (the parent of a local span).
    pub fn to_span_context(&self) -> SpanContext {
        let state = self
            .tracestate
            .as_deref()
            .and_then(|s| TraceState::from_str(s).ok())
            .unwrap_or_default();
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            state,
        )
    }

    /// From an OpenTelemetry span context; `None` when it is not valid (no trace).
    pub fn from_span_context(sc: &SpanContext) -> Option<Self> {
        if !sc.is_valid() {
            return None;
        }
        let state = sc.trace_state().header();
        Some(TraceContext {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
            tracestate: (!state.is_empty()).then_some(state),
        })
    }
}

impl std::fmt::Display for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.traceparent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let c = TraceContext::parse(GOOD, None).unwrap();
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id_hex(), "00f067aa0ba902b7");
        assert!(c.sampled());
        assert_eq!(c.traceparent(), GOOD);
        assert_eq!(c.to_string(), GOOD);
        let unsampled = TraceContext::parse(&GOOD.replace("-01", "-00"), None).unwrap();
        assert!(!unsampled.sampled());
        // Surrounding optional whitespace is allowed.
        assert_eq!(
            TraceContext::parse(&format!(" \t{GOOD} "), None).unwrap(),
            c
        );
    }

    #[test]
    fn invalid_traceparents_are_refused_with_the_reason() {
        let cases: &[(&str, TraceContextError)] = &[
            ("", TraceContextError::Length(0)),
            ("00", TraceContextError::Length(2)),
            (&GOOD[..54], TraceContextError::Length(54)),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                TraceContextError::Length(56),
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceContextError::Version,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceContextError::ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                TraceContextError::ZeroSpanId,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceContextError::Hex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                TraceContextError::Hex,
            ),
            (
                "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceContextError::Hex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
                TraceContextError::Hex,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                TraceContextError::Format,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01",
                TraceContextError::Format,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                TraceContextError::Format,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-\u{e9}",
                TraceContextError::Hex,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                TraceContext::parse(input, None).as_ref(),
                Err(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let c = TraceContext::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-adds",
            None,
        )
        .unwrap();
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.traceparent(), GOOD, "sent on as version 00");
    }

    #[test]
    fn tracestate_is_carried_when_valid_and_dropped_whole_when_not() {
        let c =
            TraceContext::parse(GOOD, Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")).unwrap();
        assert_eq!(
            c.tracestate(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(
            TraceContext::parse(GOOD, Some("t1@sys=x y,,a_b-c*d/e=~!"))
                .unwrap()
                .tracestate(),
            Some("t1@sys=x y,a_b-c*d/e=~!")
        );
        for bad in [
            "no-equals-sign",
            "UPPER=1",
            "a=1,=2",
            "a=",
            "a=1,a=2",
            "a=b=c",
            "a=x y,b",
            "a=\u{7f}",
            "1a=x",
            "@sys=x",
            "t@=x",
            "t@1sys=x",
            "t@waytoolongsystem=x",
            "",
            "   ",
        ] {
            let c = TraceContext::parse(GOOD, Some(bad)).unwrap();
            assert_eq!(c.tracestate(), None, "{bad:?}");
        }
        let many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            TraceContext::parse(GOOD, Some(&many)).unwrap().tracestate(),
            None
        );
        let long = format!("k={}", "v".repeat(600));
        assert_eq!(
            TraceContext::parse(GOOD, Some(&long)).unwrap().tracestate(),
            None
        );
    }

    #[test]
    fn headers_with_several_traceparents_carry_no_context() {
        let mut h = http::HeaderMap::new();
        assert_eq!(TraceContext::from_headers(&h), None);
        h.insert(TRACEPARENT, GOOD.parse().unwrap());
        h.append(TRACESTATE, "a=1".parse().unwrap());
        h.append(TRACESTATE, "b=2".parse().unwrap());
        let c = TraceContext::from_headers(&h).unwrap();
        assert_eq!(c.tracestate(), Some("a=1,b=2"));
        h.append(TRACEPARENT, GOOD.parse().unwrap());
        assert_eq!(TraceContext::from_headers(&h), None);
        let mut bad = http::HeaderMap::new();
        bad.insert(TRACEPARENT, "garbage".parse().unwrap());
        assert_eq!(TraceContext::from_headers(&bad), None);
    }

    #[test]
    fn inject_replaces_both_headers() {
        let mut h = http::HeaderMap::new();
        h.insert(
            TRACEPARENT,
            "00-11111111111111111111111111111111-2222222222222222-00"
                .parse()
                .unwrap(),
        );
        h.insert(TRACESTATE, "stale=1".parse().unwrap());
        let c = TraceContext::parse(GOOD, None).unwrap();
        c.inject(&mut h);
        assert_eq!(h.get(TRACEPARENT).unwrap(), GOOD);
        assert!(
            h.get(TRACESTATE).is_none(),
            "a stale tracestate is not left behind"
        );
        let c = TraceContext::parse(GOOD, Some("x=y")).unwrap();
        c.inject(&mut h);
        assert_eq!(h.get(TRACESTATE).unwrap(), "x=y");
        assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1);
    }

    #[test]
    fn roots_and_children() {
        let root = TraceContext::new_root(true);
        assert!(root.sampled());
        assert_ne!(root.trace_id(), [0; 16]);
        assert_ne!(root.span_id(), [0; 8]);
        assert_ne!(TraceContext::new_root(true).trace_id(), root.trace_id());
        let parent = TraceContext::parse(GOOD, Some("k=v")).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_ne!(child.span_id(), [0; 8]);
        assert_eq!((child.flags(), child.tracestate()), (1, Some("k=v")));
        // Whatever we send parses back to the same thing.
        let again = TraceContext::parse(&child.traceparent(), child.tracestate()).unwrap();
        assert_eq!(again, child);
        assert!(!TraceContext::new_root(false).sampled());
    }

    #[test]
    fn otel_span_contexts_convert_both_ways() {
        let c = TraceContext::parse(GOOD, Some("k=v")).unwrap();
        let sc = c.to_span_context();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(TraceContext::from_span_context(&sc), Some(c));
        assert_eq!(
            TraceContext::from_span_context(&SpanContext::empty_context()),
            None
        );
    }

    /// Bounded random and mutated input: parsing never panics, and whatever parses
    /// formats back to a header that parses to the same context.
    #[test]
    fn arbitrary_input_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: Vec<char> = "0123456789abcdefABCDEF-_ ,=\t\u{e9}\u{1F600}xz\0"
            .chars()
            .collect();
        let mut parsed = 0;
        for i in 0..20_000 {
            let s: String = if i % 2 == 0 {
                // Mutate a valid header in one or two places.
                let mut b: Vec<char> = GOOD.chars().collect();
                for _ in 0..1 + (next() % 2) {
                    let at = (next() as usize) % b.len();
                    b[at] = alphabet[(next() as usize) % alphabet.len()];
                }
                if next() % 8 == 0 {
                    b.truncate((next() as usize) % b.len());
                }
                b.into_iter().collect()
            } else {
                let len = (next() % 80) as usize;
                (0..len)
                    .map(|_| alphabet[(next() as usize) % alphabet.len()])
                    .collect()
            };
            let state: String = (0..(next() % 20))
                .map(|_| alphabet[(next() as usize) % alphabet.len()])
                .collect();
            if let Ok(c) = TraceContext::parse(&s, Some(&state)) {
                parsed += 1;
                let back = TraceContext::parse(&c.traceparent(), c.tracestate()).unwrap();
                assert_eq!(back, c, "{s:?}");
            }
        }
        assert!(
            parsed > 100,
            "the mutations should leave some valid headers: {parsed}"
        );
    }
}
