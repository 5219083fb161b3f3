//! # helixflow-auth: who is calling, and what they may do
//!
//! * [`Principal`]: a tenant-scoped identity with a [`Role`], or the platform admin.
//! * API keys ([`ApiKey`]): `hfk_{prefix}_{secret}`, 256 random bits of secret; the
//!   prefix identifies the key (and is safe to show and log), only the SHA-256 of the
//!   whole key is stored, comparisons are constant-time.
//! * JWT bearer tokens ([`JwtVerifier`], `jsonwebtoken`): HS256 with a per-tenant secret,
//!   RS256/ES256/EdDSA with keys from a configured JWKS file; `exp` required, `nbf`,
//!   `aud`, `iss` checked with a small leeway; `alg: none` and unknown algorithms are
//!   rejected before any key is looked up.
//!
//! * AWS Signature V4 ([`sigv4`]): access key pairs for the Lambda-compatible Invoke API,
//!   verified with `aws-sigv4`'s key derivation and a constant-time comparison.
//!
//! Architecture invariant: this crate knows no HTTP and no storage: the api crate hands
//! it header values and looked-up records, and gets a `Principal` or an [`AuthError`].

pub mod keyfile;
pub mod sealed;
pub mod sigv4;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use subtle::ConstantTimeEq;

/// Roles, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in the tenant, including keys and the audit log.
    Admin,
    /// Deploy functions and models; invoke; read.
    Developer,
    /// Invoke only.
    Invoker,
    /// Read: functions, models, logs, metrics, audit.
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "developer" => Some(Role::Developer),
            "invoker" => Some(Role::Invoker),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Invoker => "invoker",
            Role::Viewer => "viewer",
        }
    }
    pub fn can(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::Developer => matches!(action, Action::Deploy | Action::Invoke | Action::Read),
            Role::Invoker => action == Action::Invoke,
            Role::Viewer => action == Action::Read,
        }
    }
}

/// What a request does to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Keys, tenant settings, JWT secret.
    Manage,
    /// Create/change/delete functions, models, aliases, config.
    Deploy,
    /// Run functions (HTTP, events, OpenAI API).
    Invoke,
    /// Read functions, models, logs, metrics, audit.
    Read,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `None`: the platform admin (every tenant, and platform routes).
    pub tenant: Option<String>,
    pub role: Role,
    /// Key prefix, JWT `sub`, or `platform-admin`: what the audit log records.
    pub subject: String,
    /// `api_key`, `jwt` or `admin_key`.
    pub via: &'static str,
}

impl Principal {
    pub fn platform_admin() -> Principal {
        Principal {
            tenant: None,
            role: Role::Admin,
            subject: "platform-admin".into(),
            via: "admin_key",
        }
    }
    pub fn is_platform_admin(&self) -> bool {
        self.tenant.is_none() && self.role == Role::Admin
    }
    /// May this principal do `action` in `tenant`?
    pub fn allows(&self, tenant: &str, action: Action) -> bool {
        match &self.tenant {
            None => self.role == Role::Admin,
            Some(t) => t == tenant && self.role.can(action),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials")]
    Missing,
    #[error("malformed credentials")]
    Malformed,
    #[error("invalid credentials")]
    Invalid,
    #[error("credentials expired")]
    Expired,
    #[error("credentials revoked")]
    Revoked,
    #[error("token not valid yet")]
    NotYetValid,
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credentials",
            AuthError::Malformed => "malformed_credentials",
            AuthError::Invalid => "invalid_credentials",
            AuthError::Expired => "expired_credentials",
            AuthError::Revoked => "revoked_credentials",
            AuthError::NotYetValid => "credentials_not_yet_valid",
        }
    }
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Constant-time equality of two hex digests.
pub fn digest_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A freshly minted API key (the only time the secret exists in the clear).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// `hfk_{prefix}_{secret}`: shown once.
    pub key: String,
    /// 12 hex characters: identifies the key, safe to display and log.
    pub prefix: String,
    /// SHA-256 of `key`, the only thing stored.
    pub sha256: String,
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| AuthError::Invalid)?;
    Ok(b)
}

impl ApiKey {
    pub fn generate() -> Result<ApiKey, AuthError> {
        use base64::Engine as _;
        let prefix = hex::encode(random_bytes::<6>()?);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let key = format!("hfk_{prefix}_{secret}");
        let sha256 = sha256_hex(&key);
        Ok(ApiKey {
            key,
            prefix,
            sha256,
        })
    }

    /// The prefix of a well-formed key, or `Malformed`.
    pub fn prefix_of(key: &str) -> Result<&str, AuthError> {
        let rest = key.strip_prefix("hfk_").ok_or(AuthError::Malformed)?;
        let (prefix, secret) = rest.split_once('_').ok_or(AuthError::Malformed)?;
        let ok = prefix.len() == 12
            && prefix
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && secret.len() == 43
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(prefix)
        } else {
            Err(AuthError::Malformed)
        }
    }
}

/// A random secret for HS256 (base64url, 256 bits).
pub fn random_secret() -> Result<String, AuthError> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// The claims HelixFlow reads from a JWT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The tenant the token is for.
    pub tenant: String,
    /// `admin`, `developer`, `invoker` or `viewer`.
    pub role: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// One audience or several (RFC 7519 allows both); `JwtVerifier` requires the
    /// configured audience to be the one or among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// The `aud` claim: a string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Audience::One(s.to_string())
    }
}

/// Whether the JWKS key `jwk` may verify a token whose header says `alg`: a key meant
/// for something other than signatures (`use` other than `sig`, `key_ops` without
/// `verify`), a key bound to another algorithm (`alg`), or a key of the wrong type or
/// curve for `alg` is never used.
pub fn jwk_allows(jwk: &jsonwebtoken::jwk::Jwk, alg: jsonwebtoken::Algorithm) -> bool {
    use jsonwebtoken::Algorithm as A;
    use jsonwebtoken::jwk::{
        AlgorithmParameters as P, EllipticCurve as C, KeyAlgorithm as K, KeyOperations,
        PublicKeyUse,
    };
    let c = &jwk.common;
    if c.public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return false;
    }
    if c.key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return false;
    }
    let alg_ok = match c.key_algorithm {
        None => true,
        Some(k) => matches!(
            (k, alg),
            (K::RS256, A::RS256) | (K::ES256, A::ES256) | (K::EdDSA, A::EdDSA)
        ),
    };
    let kind_ok = match (&jwk.algorithm, alg) {
        (P::RSA(_), A::RS256) => true,
        (P::EllipticCurve(p), A::ES256) => p.curve == C::P256,
        (P::OctetKeyPair(p), A::EdDSA) => p.curve == C::Ed25519,
        _ => false,
    };
    alg_ok && kind_ok
}

/// JWT verification settings.
#[derive(Clone)]
pub struct JwtVerifier {
    /// Replaced as a whole when a JWKS URL is refetched.
    jwks: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<jsonwebtoken::jwk::JwkSet>>>>,
    issuer: Option<String>,
    audience: String,
    leeway_secs: u64,
}

impl JwtVerifier {
    /// `jwks_json`: the JWKS document for asymmetric tokens (None: HS256 only).
    pub fn new(
        jwks_json: Option<&str>,
        issuer: Option<String>,
        audience: String,
        leeway_secs: u64,
    ) -> Result<JwtVerifier, String> {
        let jwks = match jwks_json {
            Some(j) => Some(std::sync::Arc::new(Self::parse_jwks(j)?)),
            None => None,
        };
        Ok(JwtVerifier {
            jwks: std::sync::Arc::new(std::sync::RwLock::new(jwks)),
            issuer,
            audience,
            leeway_secs,
        })
    }

    fn parse_jwks(json: &str) -> Result<jsonwebtoken::jwk::JwkSet, String> {
        let set = serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(json)
            .map_err(|e| format!("JWKS: {e}"))?;
        if set.keys.is_empty() {
            return Err("JWKS: no keys".into());
        }
        Ok(set)
    }

    /// Replaces the JWKS (a refetch from `jwks_url`); a document that does not parse
    /// leaves the current keys in place. Returns the number of keys.
    pub fn set_jwks(&self, json: &str) -> Result<usize, String> {
        let set = Self::parse_jwks(json)?;
        let n = set.keys.len();
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = Some(std::sync::Arc::new(set));
        Ok(n)
    }

    /// The tenant a token claims, read without verifying anything: only used to pick
    /// the tenant's HS256 secret, which then verifies the token.
    pub fn unverified_tenant(token: &str) -> Result<String, AuthError> {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).ok_or(AuthError::Malformed)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| AuthError::Malformed)?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
        v.get("tenant")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or(AuthError::Malformed)
    }

    /// Is this token HS256 (verify with the tenant's secret) or asymmetric (JWKS)?
    pub fn is_hs256(token: &str) -> Result<bool, AuthError> {
        let h = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        Ok(h.alg == jsonwebtoken::Algorithm::HS256)
    }

    /// Verifies `token`; `hs256_secret` is the claimed tenant's secret, when it has one.
    /// A JWKS key verifies only tokens of the algorithm and use it is for
    /// ([`jwk_allows`]). The `tenant` claim is returned as signed: the caller checks it
    /// names a tenant (the api does, on both the HS256 and the JWKS path).
    pub fn verify(&self, token: &str, hs256_secret: Option<&str>) -> Result<Principal, AuthError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let (key, alg) = match header.alg {
            // Never an empty HMAC key: anyone could sign with it.
            Algorithm::HS256 => (
                DecodingKey::from_secret(
                    hs256_secret
                        .filter(|s| !s.is_empty())
                        .ok_or(AuthError::Invalid)?
                        .as_bytes(),
                ),
                Algorithm::HS256,
            ),
            alg @ (Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA) => {
                let set = self
                    .jwks
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .ok_or(AuthError::Invalid)?;
                let jwk = match &header.kid {
                    Some(kid) => set.find(kid),
                    None if set.keys.len() == 1 => set.keys.first(),
                    None => None,
                }
                .filter(|k| jwk_allows(k, alg))
                .ok_or(AuthError::Invalid)?;
                (
                    DecodingKey::from_jwk(jwk).map_err(|_| AuthError::Invalid)?,
                    alg,
                )
            }
            _ => return Err(AuthError::Invalid),
        };
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_secs;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "aud"]);
        v.set_audience(&[&self.audience]);
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => AuthError::Expired,
                K::ImmatureSignature => AuthError::NotYetValid,
                K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => AuthError::Malformed,
                _ => AuthError::Invalid,
            }
        })?;
        let c = data.claims;
        let role = Role::parse(&c.role).ok_or(AuthError::Invalid)?;
        Ok(Principal {
            tenant: Some(c.tenant),
            role,
            subject: format!("jwt:{}", c.sub),
            via: "jwt",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn roles_grant_what_the_table_says() {
        use Action::*;
        assert!(Role::Admin.can(Manage) && Role::Admin.can(Deploy));
        assert!(
            Role::Developer.can(Deploy)
                && Role::Developer.can(Invoke)
                && !Role::Developer.can(Manage)
        );
        assert!(
            Role::Invoker.can(Invoke) && !Role::Invoker.can(Read) && !Role::Invoker.can(Deploy)
        );
        assert!(Role::Viewer.can(Read) && !Role::Viewer.can(Invoke));
        let p = Principal {
            tenant: Some("a".into()),
            role: Role::Admin,
            subject: "k".into(),
            via: "api_key",
        };
        assert!(
            p.allows("a", Manage) && !p.allows("b", Read),
            "a tenant admin is admin of its tenant only"
        );
        assert!(Principal::platform_admin().allows("anything", Manage));
    }

    #[test]
    fn api_keys_are_random_prefixed_and_only_their_hash_is_kept() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(ApiKey::prefix_of(&a.key).unwrap(), a.prefix);
        assert!(digest_eq(&sha256_hex(&a.key), &a.sha256));
        assert!(!digest_eq(&sha256_hex(&b.key), &a.sha256));
        for bad in [
            "",
            "hfk_",
            "hfk_abc_def",
            "Bearer x",
            "hfk_ABCDEFABCDEF_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(ApiKey::prefix_of(bad), Err(AuthError::Malformed), "{bad}");
        }
    }

    #[test]
    fn jwt_checks_signature_time_audience_and_algorithm() {
        let v = JwtVerifier::new(None, Some("idp".into()), "helixflow".into(), 5).unwrap();
        let claims = |exp: u64, nbf: Option<u64>, aud: &str| Claims {
            sub: "u1".into(),
            tenant: "acme".into(),
            role: "developer".into(),
            exp,
            nbf,
            iss: Some("idp".into()),
            aud: Some(Audience::from(aud)),
        };
        let sign = |c: &Claims, secret: &str| {
            encode(
                &Header::default(),
                c,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        };
        let good = sign(&claims(now() + 60, None, "helixflow"), "s3cret");
        let p = v.verify(&good, Some("s3cret")).unwrap();
        assert_eq!(
            (p.tenant.as_deref(), p.role),
            (Some("acme"), Role::Developer)
        );
        assert_eq!(JwtVerifier::unverified_tenant(&good).unwrap(), "acme");
        assert_eq!(v.verify(&good, Some("other")), Err(AuthError::Invalid));
        let empty_key = sign(&claims(now() + 60, None, "helixflow"), "");
        assert_eq!(
            v.verify(&empty_key, Some("")),
            Err(AuthError::Invalid),
            "an empty HS256 secret verifies nothing"
        );
        assert_eq!(
            v.verify(
                &sign(&claims(now() - 60, None, "helixflow"), "s3cret"),
                Some("s3cret")
            ),
            Err(AuthError::Expired)
        );
        assert_eq!(
            v.verify(
                &sign(&claims(now() + 60, Some(now() + 60), "helixflow"), "s3cret"),
                Some("s3cret")
            ),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(
            v.verify(
                &sign(&claims(now() + 60, None, "other"), "s3cret"),
                Some("s3cret")
            ),
            Err(AuthError::Invalid)
        );
        // alg: none, hand-made.
        use base64::Engine as _;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!(
            "{}.{}.",
            b(r#"{"alg":"none","typ":"JWT"}"#),
            b(&serde_json::to_string(&claims(now() + 60, None, "helixflow")).unwrap())
        );
        assert!(v.verify(&none, Some("s3cret")).is_err());
        assert_eq!(
            v.verify("not.a.jwt", Some("s3cret")),
            Err(AuthError::Malformed)
        );
    }

    /// `aud` may be a string or an array (RFC 7519 4.1.3): an array naming the
    /// configured audience is accepted, one without it is refused.
    #[test]
    fn jwt_audience_may_be_a_string_or_an_array() {
        let v = JwtVerifier::new(None, None, "helixflow".into(), 5).unwrap();
        let sign = |aud: serde_json::Value| {
            let c = serde_json::json!({"sub": "u1", "tenant": "acme", "role": "viewer", "exp": now() + 60, "aud": aud});
            encode(&Header::default(), &c, &EncodingKey::from_secret(b"s3cret")).unwrap()
        };
        assert!(
            v.verify(&sign(serde_json::json!("helixflow")), Some("s3cret"))
                .is_ok()
        );
        let p = v
            .verify(
                &sign(serde_json::json!(["other", "helixflow"])),
                Some("s3cret"),
            )
            .expect("array with the audience");
        assert_eq!(p.tenant.as_deref(), Some("acme"));
        assert_eq!(
            v.verify(&sign(serde_json::json!(["other", "more"])), Some("s3cret")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            v.verify(&sign(serde_json::json!([])), Some("s3cret")),
            Err(AuthError::Invalid)
        );
    }

    /// A JWKS key is only used for what it says it is for: signatures (`use`,
    /// `key_ops`), with the token's algorithm (`alg`), and of the right type and curve.
    #[test]
    fn jwks_keys_must_match_the_tokens_algorithm_and_be_for_signatures() {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
        use base64::Engine as _;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.public_key().as_ref());
        let ed = EncodingKey::from_ed_der(pkcs8.as_ref());
        let claims = serde_json::json!({"sub": "u1", "tenant": "acme", "role": "invoker", "exp": now() + 60, "aud": "helixflow"});
        let mut h = Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.kid = Some("k1".into());
        let token = encode(&h, &claims, &ed).unwrap();
        let with = |extra: serde_json::Value| {
            let mut jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1"});
            jwk.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            JwtVerifier::new(
                Some(&serde_json::json!({"keys": [jwk]}).to_string()),
                None,
                "helixflow".into(),
                5,
            )
            .unwrap()
        };
        for ok in [
            serde_json::json!({}),
            serde_json::json!({"alg": "EdDSA", "use": "sig"}),
            serde_json::json!({"key_ops": ["verify"]}),
        ] {
            assert!(with(ok.clone()).verify(&token, None).is_ok(), "{ok}");
        }
        for bad in [
            serde_json::json!({"use": "enc"}),
            serde_json::json!({"alg": "ES256"}),
            serde_json::json!({"alg": "RS384"}),
            serde_json::json!({"key_ops": ["encrypt"]}),
            serde_json::json!({"alg": "EdDSA", "use": "enc"}),
        ] {
            assert_eq!(
                with(bad.clone()).verify(&token, None),
                Err(AuthError::Invalid),
                "{bad}"
            );
        }
        // jwk_allows on its own: the key type must fit the algorithm.
        let jwk =
            |j: serde_json::Value| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(j).unwrap();
        let rsa = jwk(
            serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RS256", "use": "sig"}),
        );
        assert!(jwk_allows(&rsa, jsonwebtoken::Algorithm::RS256));
        assert!(
            !jwk_allows(&rsa, jsonwebtoken::Algorithm::ES256)
                && !jwk_allows(&rsa, jsonwebtoken::Algorithm::EdDSA)
        );
        let rsa384 =
            jwk(serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RS384"}));
        assert!(
            !jwk_allows(&rsa384, jsonwebtoken::Algorithm::RS256),
            "a key bound to RS384 does not verify RS256"
        );
        let p384 = jwk(serde_json::json!({"kty": "EC", "crv": "P-384", "x": "AQAB", "y": "AQAB"}));
        assert!(
            !jwk_allows(&p384, jsonwebtoken::Algorithm::ES256),
            "ES256 needs a P-256 key"
        );
    }
}

/// Bounded random-input runs over the credential parsers (cargo-fuzz needs a nightly
/// toolchain, which this project's machines cannot fetch): whatever bytes arrive, the
/// parsers answer an error, never panic.
#[cfg(test)]
mod fuzz {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            let n = (self.next() as usize) % max;
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn credential_parsers_never_panic_on_random_input() {
        let v = JwtVerifier::new(None, None, "helixflow".into(), 30).unwrap();
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let seeds = [
            "hfk_0123456789ab_",
            "eyJhbGciOiJIUzI1NiJ9.eyJ0ZW5hbnQiOiJhIn0.",
            "a.b.c",
            "Bearer ",
        ];
        for i in 0..20_000 {
            let mut s = seeds[i % seeds.len()].as_bytes().to_vec();
            s.extend(rng.bytes(120));
            // Random mutations of the seed, including invalid UTF-8 made lossy.
            let text = String::from_utf8_lossy(&s).into_owned();
            let _ = ApiKey::prefix_of(&text);
            let _ = JwtVerifier::unverified_tenant(&text);
            let _ = JwtVerifier::is_hs256(&text);
            assert!(
                v.verify(&text, Some("secret")).is_err(),
                "{text:?} verified"
            );
            assert!(v.verify(&text, None).is_err());
        }
    }
}
