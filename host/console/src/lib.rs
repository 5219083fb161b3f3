//! The HelixFlow web console and API playground, as static assets compiled into the
//! binary (`build.rs` embeds everything under `assets/`).
//!
//! The console is a client of the public API and nothing more: it calls `/api/v1` and
//! `/v1` with the credential the user typed in (kept in `sessionStorage`, sent as
//! `Authorization: Bearer`), so the API's authentication and RBAC are the only gate. It
//! has no server-side state, no cookies and no build step; the HTTP layer
//! (`helixflow-api`) serves these bytes under `/console` with [`CONTENT_SECURITY_POLICY`].
//!
//! Invariant: the scripts never parse strings as HTML (no `innerHTML`, `outerHTML`,
//! `insertAdjacentHTML`, `document.write`); every text a tenant or function wrote is put
//! in the page as a text node. `tests::no_html_sinks` scans the assets for the sinks.

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its path below `/console/`, e.g. `js/app.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// A strong ETag (quoted), derived from the bytes.
    pub etag: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The page every console route serves (the views are chosen client-side by the URL
/// fragment, which never reaches the server).
pub const INDEX: &str = "index.html";

/// The policy of every console response: scripts, styles and connections only from
/// this origin, no inline script or style, no framing, no forms posting elsewhere, no
/// plugins. Images may also be `data:`/`blob:` URLs (a picture the user picked in the
/// playground is shown from a blob). Trusted Types with no policy make every HTML sink
/// (`innerHTML` and the like) throw in browsers that enforce them, whatever the scripts
/// do: the no-HTML-parsing invariant below, held by the browser too.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// The asset at `path` (relative to `/console/`; empty means the index page).
pub fn get(path: &str) -> Option<&'static Asset> {
    let path = if path.is_empty() { INDEX } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// Console development: with `HELIXFLOW_CONSOLE_DEV_DIR` set (to a checkout's
/// `host/console/assets`), an asset's bytes are read from that directory on every
/// request instead of the binary, so an edited script shows on reload without a rebuild.
/// Only paths in the embedded table are read (a new file still needs a build), so the
/// directory cannot be walked out of. Never set in production.
pub fn dev_bytes(asset: &Asset) -> Option<Vec<u8>> {
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| std::env::var_os("HELIXFLOW_CONSOLE_DEV_DIR").map(Into::into));
    dir.as_ref()
        .and_then(|d| std::fs::read(d.join(asset.path)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_scripts_are_embedded() {
        let index = get("").expect("index");
        assert_eq!(index.path, INDEX);
        assert!(index.content_type.starts_with("text/html"));
        let html = std::str::from_utf8(index.bytes).expect("utf-8");
        // Every script and stylesheet the page names is embedded.
        for attr in ["src=\"/console/", "href=\"/console/"] {
            for part in html.split(attr).skip(1) {
                let path = part.split('"').next().unwrap_or_default();
                assert!(
                    get(path).is_some(),
                    "index.html names /console/{path}, which is not embedded"
                );
            }
        }
        assert!(get("js/app.js").is_some_and(|a| a.content_type.starts_with("text/javascript")));
        assert!(get("nope.js").is_none());
        assert!(get("../Cargo.toml").is_none());
    }

    /// No inline script or style anywhere (the policy would block them) and no HTML
    /// sinks in the scripts: tenant data can only ever become text.
    #[test]
    fn no_html_sinks() {
        for a in ASSETS {
            let text = match std::str::from_utf8(a.bytes) {
                Ok(t) => t,
                Err(_) => continue,
            };
            if a.path.ends_with(".js") {
                for sink in [
                    "innerHTML",
                    "outerHTML",
                    "insertAdjacentHTML",
                    "document.write",
                    "eval(",
                    "new Function",
                ] {
                    assert!(!text.contains(sink), "{} uses {sink}", a.path);
                }
            }
            if a.path.ends_with(".html") {
                assert!(
                    !text.contains("<script>"),
                    "{} has an inline script",
                    a.path
                );
                assert!(!text.contains("style="), "{} has an inline style", a.path);
                assert!(
                    !has_inline_handler(text),
                    "{} has an inline event handler",
                    a.path
                );
            }
        }
    }

    /// ` on<letters>=` (an `onclick=`-style attribute).
    fn has_inline_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let n = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            n > 0 && rest[n..].starts_with('=')
        })
    }
}
