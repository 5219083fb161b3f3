//! AWS Signature Version 4, verified: what makes boto3 and the AWS CLI work against the
//! Lambda-compatible Invoke API.
//!
//! A tenant gets access key pairs ([`AccessKey`]): an id `HFAK` + 16 base32 characters
//! and a 40-character secret. Unlike API keys, the secret must be kept (HMAC needs it on
//! both sides), so the store holds it; it is only ever returned once, at creation.
//!
//! [`verify`] rebuilds the canonical request from what the client says it signed
//! (`SignedHeaders`), hashes the body, and compares the signature in constant time.
//!
//! **Invariant: the signature covers the body the server received.** The payload hash
//! in the canonical request is always the SHA-256 of the received body, never the
//! client's `x-amz-content-sha256` claim; a claim that differs from the body is refused
//! ([`SigV4Error::PayloadMismatch`]), and so is `UNSIGNED-PAYLOAD` (or a streaming
//! payload) ([`SigV4Error::UnsignedPayload`]): AWS Lambda clients always sign the
//! payload, and an unsigned one would let a captured request be replayed, within the
//! clock-skew window, with any other body.
//! The signing-key derivation and the HMAC come from `aws-sigv4` (AWS's own crate); the
//! canonical request is built here because a verifier must follow the client's list of
//! signed headers, which `aws-sigv4`'s signer chooses for itself. A unit test signs
//! requests with `aws-sigv4`'s full signer and verifies them here.

use crate::{AuthError, random_bytes};
use sha2::Digest;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// How far a request's `X-Amz-Date` may be from the server's clock (AWS: 5 minutes).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A freshly minted access key pair (the secret is shown once).
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl AccessKey {
    pub fn generate() -> Result<AccessKey, AuthError> {
        let id: String = random_bytes::<16>()?
            .iter()
            .map(|b| BASE32[(*b % 32) as usize] as char)
            .collect();
        use base64::Engine as _;
        // 30 random bytes -> 40 base64 characters, the length of an AWS secret key.
        let secret = base64::engine::general_purpose::STANDARD.encode(random_bytes::<30>()?);
        Ok(AccessKey {
            access_key_id: format!("HFAK{id}"),
            secret_access_key: secret,
        })
    }

    /// Whether `id` looks like a HelixFlow access key id.
    pub fn valid_id(id: &str) -> bool {
        id.len() == 20 && id.starts_with("HFAK") && id.bytes().skip(4).all(|b| BASE32.contains(&b))
    }
}

/// Why a signature was refused. Each maps to one of AWS's error types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header (or not SigV4).
    #[error("request is missing the AWS Signature Version 4 Authorization header")]
    Missing,
    /// The header or `X-Amz-Date` is malformed.
    #[error("incomplete or malformed signature: {0}")]
    Malformed(String),
    /// The access key id is unknown (or revoked).
    #[error("the security token included in the request is invalid")]
    UnknownKey,
    /// The date is outside the allowed clock skew.
    #[error("signature expired: {0}")]
    Expired(String),
    /// The signature does not match.
    #[error(
        "the request signature we calculated does not match the signature you provided; check your AWS secret access key and signing method"
    )]
    Mismatch,
    /// `x-amz-content-sha256` is not the SHA-256 of the body that arrived.
    #[error("x-amz-content-sha256 does not match the SHA-256 of the request body")]
    PayloadMismatch,
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD` (or a streaming payload): refused, the
    /// signature must cover the body.
    #[error(
        "unsigned payloads are not accepted: sign the request body (x-amz-content-sha256 must be its SHA-256)"
    )]
    UnsignedPayload,
}

impl SigV4Error {
    /// AWS's `x-amzn-ErrorType` for this refusal.
    pub fn aws_type(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::Malformed(_) => "IncompleteSignatureException",
            SigV4Error::UnknownKey => "UnrecognizedClientException",
            SigV4Error::Expired(_)
            | SigV4Error::Mismatch
            | SigV4Error::PayloadMismatch
            | SigV4Error::UnsignedPayload => "InvalidSignatureException",
        }
    }
}

/// The parsed `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `YYYYMMDD` from the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, in the order given (must be sorted).
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Whether an `Authorization` header value is SigV4 (not a bearer token).
pub fn is_sigv4(authorization: &str) -> bool {
    authorization.trim_start().starts_with("AWS4-HMAC-SHA256 ")
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(value: &str) -> Result<Authorization, SigV4Error> {
    let rest = value
        .trim()
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or(SigV4Error::Missing)?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| SigV4Error::Malformed(format!("{part:?} is not key=value")))?;
        match k.trim() {
            "Credential" => cred = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => sig = Some(v.trim()),
            other => return Err(SigV4Error::Malformed(format!("unknown field {other:?}"))),
        }
    }
    let (cred, signed, sig) = match (cred, signed, sig) {
        (Some(c), Some(h), Some(s)) => (c, h, s),
        _ => {
            return Err(SigV4Error::Malformed(
                "Credential, SignedHeaders and Signature are all required".into(),
            ));
        }
    };
    let scope: Vec<&str> = cred.split('/').collect();
    let [akid, date, region, service, terminator] = scope.as_slice() else {
        return Err(SigV4Error::Malformed(
            "Credential must be AKID/date/region/service/aws4_request".into(),
        ));
    };
    if *terminator != "aws4_request"
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || region.is_empty()
    {
        return Err(SigV4Error::Malformed("bad credential scope".into()));
    }
    if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigV4Error::Malformed(
            "Signature must be 64 hex characters".into(),
        ));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_string).collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
        || !signed_headers.windows(2).all(|w| w[0] < w[1])
    {
        return Err(SigV4Error::Malformed(
            "SignedHeaders must be sorted lower-case names".into(),
        ));
    }
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Malformed(
            "the host header must be signed".into(),
        ));
    }
    Ok(Authorization {
        access_key_id: akid.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: sig.to_ascii_lowercase(),
    })
}

/// The parts of a request the signature covers, as the api layer hands them over.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path exactly as received (still percent-encoded).
    pub raw_path: &'a str,
    /// The query string exactly as received, without `?`.
    pub raw_query: &'a str,
    /// Every header (name lower- or mixed-case, value); repeated names allowed.
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

/// URI-encodes per SigV4: unreserved characters stay, everything else is `%XX`
/// (upper-case hex); `/` stays when `keep_slash`.
fn uri_encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The payload hash of the canonical request: the SHA-256 (lower-case hex) of `body`.
/// A `x-amz-content-sha256` header, when sent, must state exactly that hash: a different
/// one is [`SigV4Error::PayloadMismatch`], `UNSIGNED-PAYLOAD` or a `STREAMING-*` value
/// is [`SigV4Error::UnsignedPayload`]. The header never replaces the body's own hash.
pub fn payload_hash(headers: &[(&str, &[u8])], body: &[u8]) -> Result<String, SigV4Error> {
    let actual = hex::encode(sha2::Sha256::digest(body));
    for (_, claimed) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-amz-content-sha256"))
    {
        let claimed = String::from_utf8_lossy(claimed);
        let claimed = claimed.trim();
        if claimed.eq_ignore_ascii_case("UNSIGNED-PAYLOAD")
            || claimed.to_ascii_uppercase().starts_with("STREAMING-")
        {
            return Err(SigV4Error::UnsignedPayload);
        }
        if !claimed.eq_ignore_ascii_case(&actual) {
            return Err(SigV4Error::PayloadMismatch);
        }
    }
    Ok(actual)
}

/// The canonical request for services other than S3: the raw path is encoded once
/// more (`%3A` -> `%253A`), query parameters sorted and encoded, headers trimmed, and
/// the received body's own hash as the payload hash ([`payload_hash`]).
pub fn canonical_request(
    req: &SignedRequest<'_>,
    signed_headers: &[String],
) -> Result<String, SigV4Error> {
    let path = if req.raw_path.is_empty() {
        "/"
    } else {
        req.raw_path
    };
    let canonical_uri = uri_encode(path.as_bytes(), true);
    let mut params: Vec<(String, String)> = req
        .raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    params.sort();
    let query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| {
                let v = String::from_utf8_lossy(v);
                v.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(SigV4Error::Malformed(format!(
                "signed header {name:?} is not in the request"
            )));
        }
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    let payload_hash = payload_hash(req.headers, req.body)?;
    Ok(format!(
        "{}\n{canonical_uri}\n{query}\n{headers}\n{}\n{payload_hash}",
        req.method,
        signed_headers.join(";")
    ))
}

/// Parses `X-Amz-Date` (`20261126T120000Z`).
fn parse_amz_date(s: &str) -> Result<SystemTime, SigV4Error> {
    let bad = || SigV4Error::Malformed(format!("X-Amz-Date {s:?} is not YYYYMMDDTHHMMSSZ"));
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(bad());
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(4..6)?,
        num(6..8)?,
        num(9..11)?,
        num(11..13)?,
        num(13..15)?,
    );
    let month = time::Month::try_from(mo as u8).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(y as i32, month, d as u8).map_err(|_| bad())?;
    let t = date
        .with_hms(h as u8, mi as u8, se as u8)
        .map_err(|_| bad())?
        .assume_utc();
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// What a verified request proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub region: String,
}

/// Verifies a SigV4-signed request for `service` at `now`. `secret_of` looks up the
/// secret of an access key id (`None`: unknown or revoked).
pub fn verify(
    req: &SignedRequest<'_>,
    service: &str,
    now: SystemTime,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<Verified, SigV4Error> {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
    };
    let auth = header("authorization").ok_or(SigV4Error::Missing)?;
    if !is_sigv4(&auth) {
        return Err(SigV4Error::Missing);
    }
    let auth = parse_authorization(&auth)?;
    if auth.service != service {
        return Err(SigV4Error::Malformed(format!(
            "credential scope names service {:?}, not {service:?}",
            auth.service
        )));
    }
    let amz_date = header("x-amz-date")
        .ok_or_else(|| SigV4Error::Malformed("X-Amz-Date is required".into()))?;
    if !auth.signed_headers.iter().any(|h| h == "x-amz-date") {
        return Err(SigV4Error::Malformed("x-amz-date must be signed".into()));
    }
    let at = parse_amz_date(&amz_date)?;
    if !amz_date.starts_with(&auth.date) {
        return Err(SigV4Error::Malformed(
            "credential scope date does not match X-Amz-Date".into(),
        ));
    }
    let skew = match now.duration_since(at) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        return Err(SigV4Error::Expired(format!(
            "request date {amz_date} is more than {} s from the server's time",
            MAX_CLOCK_SKEW.as_secs()
        )));
    }
    let secret = secret_of(&auth.access_key_id).ok_or(SigV4Error::UnknownKey)?;
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        auth.date,
        auth.region,
        auth.service,
        hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
    );
    let key = aws_sigv4::sign::v4::generate_signing_key(&secret, at, &auth.region, &auth.service);
    let expected = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(Verified {
            access_key_id: auth.access_key_id,
            region: auth.region,
        })
    } else {
        Err(SigV4Error::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};

    /// Signs with AWS's own signer (as an SDK would) and returns the request's headers.
    fn aws_sign(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        secret: &str,
        at: SystemTime,
    ) -> Vec<(String, String)> {
        aws_sign_with(
            method,
            uri,
            headers,
            SignableBody::Bytes(body),
            SigningSettings::default(),
            secret,
            at,
        )
    }

    /// [`aws_sign`] with the signer's settings and body kind chosen by the caller.
    fn aws_sign_with(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: SignableBody<'_>,
        settings: SigningSettings,
        secret: &str,
        at: SystemTime,
    ) -> Vec<(String, String)> {
        let creds = Credentials::new("HFAKAAAAAAAAAAAAAAAA", secret, None, None, "test");
        let identity = creds.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("lambda")
            .time(at)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(method, uri, headers.iter().copied(), body).unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(()).unwrap();
        instructions.apply_to_request_http1x(&mut req);
        req.headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    fn check(
        method: &str,
        uri: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        verify_secret: &str,
    ) -> Result<Verified, SigV4Error> {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let mut headers = vec![("host", "127.0.0.1:9000")];
        headers.extend_from_slice(extra);
        let signed = aws_sign(method, uri, &headers, body, "s3cr3t/abc+def", at);
        let pq = uri.strip_prefix("http://127.0.0.1:9000").unwrap();
        let (path, query) = pq.split_once('?').unwrap_or((pq, ""));
        let hv: Vec<(&str, &[u8])> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let req = SignedRequest {
            method,
            raw_path: path,
            raw_query: query,
            headers: &hv,
            body,
        };
        verify(&req, "lambda", at + Duration::from_secs(30), |id| {
            (id == "HFAKAAAAAAAAAAAAAAAA").then(|| verify_secret.to_string())
        })
    }

    #[test]
    fn verifies_what_aws_sigv4_signs() {
        let uri = "http://127.0.0.1:9000/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3Aacme%3Afunction%3Ahello/invocations?Qualifier=live";
        let ok = check(
            "POST",
            uri,
            &[
                ("x-amz-invocation-type", "Event"),
                ("x-amz-client-context", "e30="),
            ],
            b"{\"a\": 1}",
            "s3cr3t/abc+def",
        );
        assert_eq!(ok.unwrap().access_key_id, "HFAKAAAAAAAAAAAAAAAA");
        // Empty body, no query, spaces in a header value.
        check(
            "POST",
            "http://127.0.0.1:9000/2015-03-31/functions/hello/invocations",
            &[("x-amz-log-type", "  Tail  ")],
            b"",
            "s3cr3t/abc+def",
        )
        .unwrap();
        // Wrong secret: mismatch.
        assert_eq!(
            check("POST", uri, &[], b"{}", "other").unwrap_err(),
            SigV4Error::Mismatch
        );
    }

    #[test]
    fn refuses_tampering_skew_and_garbage() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let uri = "http://127.0.0.1:9000/2015-03-31/functions/hello/invocations";
        let signed = aws_sign(
            "POST",
            uri,
            &[("host", "127.0.0.1:9000")],
            b"payload",
            "k",
            at,
        );
        let hv: Vec<(&str, &[u8])> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let secret = |_: &str| Some("k".to_string());
        let mk = |body: &'static [u8], path: &'static str| SignedRequest {
            method: "POST",
            raw_path: path,
            raw_query: "",
            headers: &hv,
            body,
        };
        let path = "/2015-03-31/functions/hello/invocations";
        assert!(verify(&mk(b"payload", path), "lambda", at, secret).is_ok());
        assert_eq!(
            verify(&mk(b"payloaD", path), "lambda", at, secret).unwrap_err(),
            SigV4Error::Mismatch
        );
        assert_eq!(
            verify(
                &mk(b"payload", "/2015-03-31/functions/other/invocations"),
                "lambda",
                at,
                secret
            )
            .unwrap_err(),
            SigV4Error::Mismatch
        );
        assert!(matches!(
            verify(
                &mk(b"payload", path),
                "lambda",
                at + Duration::from_secs(301),
                secret
            ),
            Err(SigV4Error::Expired(_))
        ));
        assert!(matches!(
            verify(
                &mk(b"payload", path),
                "lambda",
                at - Duration::from_secs(301),
                secret
            ),
            Err(SigV4Error::Expired(_))
        ));
        assert_eq!(
            verify(&mk(b"payload", path), "lambda", at, |_| None).unwrap_err(),
            SigV4Error::UnknownKey
        );
        assert!(matches!(
            verify(&mk(b"payload", path), "s3", at, secret),
            Err(SigV4Error::Malformed(_))
        ));
        for bad in [
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=HFAK/20261126/us-east-1/lambda/aws4_request, SignedHeaders=x-amz-date;host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=HFAK/20261126/us-east-1/lambda/aws4_request, SignedHeaders=x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 ,,,",
        ] {
            assert!(
                matches!(parse_authorization(bad), Err(SigV4Error::Malformed(_))),
                "{bad}"
            );
        }
        // Random garbage never panics.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..5000 {
            let len = (x % 200) as usize;
            let s: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"AWS4-HMAC-SHA256 Credential=/;,= SignedHeaders Signature host x-amz-date 0af"
                        [(x % 73) as usize] as char
                })
                .collect();
            let _ = parse_authorization(&s);
            let _ = parse_amz_date(&s);
        }
    }

    /// A request whose signer put the payload hash in `x-amz-content-sha256` (as
    /// SDKs do for S3, and as any client may) is still bound to the body that arrives:
    /// the header is checked against the body, never trusted in its place; an
    /// unsigned payload is refused.
    #[test]
    fn the_signature_binds_the_received_body() {
        use aws_sigv4::http_request::PayloadChecksumKind;
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let uri = "http://127.0.0.1:9000/2015-03-31/functions/hello/invocations";
        let path = "/2015-03-31/functions/hello/invocations";
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let secret = |_: &str| Some("k".to_string());
        let verify_body = |signed: &[(String, String)], body: &[u8]| {
            let hv: Vec<(&str, &[u8])> = signed
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes()))
                .collect();
            let req = SignedRequest {
                method: "POST",
                raw_path: path,
                raw_query: "",
                headers: &hv,
                body,
            };
            verify(&req, "lambda", at, secret)
        };
        let signed_a = aws_sign_with(
            "POST",
            uri,
            &[("host", "127.0.0.1:9000")],
            SignableBody::Bytes(b"{\"a\":1}"),
            settings.clone(),
            "k",
            at,
        );
        assert!(
            signed_a.iter().any(|(k, _)| k == "x-amz-content-sha256"),
            "the signer sent the payload hash: {signed_a:?}"
        );
        assert!(
            verify_body(&signed_a, b"{\"a\":1}").is_ok(),
            "body A with A's signature"
        );
        let err = verify_body(&signed_a, b"{\"b\":2}").unwrap_err();
        assert_eq!(
            err,
            SigV4Error::PayloadMismatch,
            "body B replayed with A's headers"
        );
        assert_eq!(err.aws_type(), "InvalidSignatureException");
        // The same with an empty body B.
        assert_eq!(
            verify_body(&signed_a, b"").unwrap_err(),
            SigV4Error::PayloadMismatch
        );
        // UNSIGNED-PAYLOAD, correctly signed otherwise: refused whatever the body.
        let unsigned = aws_sign_with(
            "POST",
            uri,
            &[("host", "127.0.0.1:9000")],
            SignableBody::UnsignedPayload,
            settings,
            "k",
            at,
        );
        assert!(
            unsigned
                .iter()
                .any(|(k, v)| k == "x-amz-content-sha256" && v == "UNSIGNED-PAYLOAD"),
            "{unsigned:?}"
        );
        let err = verify_body(&unsigned, b"{}").unwrap_err();
        assert_eq!(err, SigV4Error::UnsignedPayload);
        assert_eq!(err.aws_type(), "InvalidSignatureException");
        // payload_hash on its own: no header -> the body's hash; a streaming claim refused.
        assert_eq!(
            payload_hash(&[], b"").unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let streaming: &[(&str, &[u8])] = &[(
            "X-Amz-Content-Sha256",
            &b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"[..],
        )];
        assert_eq!(
            payload_hash(streaming, b"").unwrap_err(),
            SigV4Error::UnsignedPayload
        );
    }

    #[test]
    fn access_keys_have_the_documented_shape() {
        let k = AccessKey::generate().unwrap();
        assert!(AccessKey::valid_id(&k.access_key_id), "{}", k.access_key_id);
        assert_eq!(k.secret_access_key.len(), 40);
        assert_ne!(
            AccessKey::generate().unwrap().access_key_id,
            k.access_key_id
        );
        assert!(!AccessKey::valid_id("AKIAIOSFODNN7EXAMPLE"));
    }
}
