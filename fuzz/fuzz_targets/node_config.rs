//! The node configuration parser: any text gives a config or an error with a location,
//! never a panic; a config that parses also validates consistently.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = helixflow_edge_config::NodeConfig::parse(s, "fuzz.toml") {
        // Accessors used at start-up must not panic on anything the parser accepted.
        let _ = cfg.metadata();
        let _ = cfg.artifacts_url();
        let _ = cfg.compile_cache_dir();
    }
});
