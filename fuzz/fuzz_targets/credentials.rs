//! Credential parsing: API keys, JWTs (HS256 and JWKS-verified), SigV4 headers and
//! whole SigV4-signed requests. Nothing may panic; nothing random may verify.
#![no_main]
use helixflow_auth::sigv4::{self, SignedRequest};
use helixflow_auth::{ApiKey, JwtVerifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1","alg":"EdDSA"}]}"#;
        JwtVerifier::new(Some(jwks), Some("idp".into()), "helixflow".into(), 30).expect("JWKS")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = ApiKey::prefix_of(s);
    let _ = JwtVerifier::is_hs256(s);
    let _ = JwtVerifier::unverified_tenant(s);
    assert!(verifier().verify(s, Some("secret")).is_err(), "a random token verified: {s:?}");
    let _ = sigv4::parse_authorization(s);
    // A whole request: lines are method, path, query, then headers `name: value`, then body.
    let mut lines = s.splitn(4, '\n');
    let (method, path, query) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let rest = lines.next().unwrap_or("");
    let (head, body) = rest.split_once("\n\n").unwrap_or((rest, ""));
    let headers: Vec<(&str, &[u8])> = head.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim(), v.trim().as_bytes())).collect();
    let req = SignedRequest { method, raw_path: path, raw_query: query, headers: &headers, body: body.as_bytes() };
    let r = sigv4::verify(&req, "lambda", std::time::SystemTime::now(), |_| Some("secret".to_string()));
    assert!(r.is_err(), "a random request verified");
    if let Some(auth) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
        if let Ok(a) = sigv4::parse_authorization(&String::from_utf8_lossy(auth.1)) {
            let _ = sigv4::canonical_request(&req, &a.signed_headers);
        }
    }
});
