//! `helixflow openapi`: prints the node's OpenAPI document (what `GET
//! /api/v1/openapi.json` serves), from this binary, without a node.
//! `helixflow openapi > host/api/openapi.json` regenerates the committed copy.

use anyhow::{Context, Result};
use std::io::Write;

pub fn print() -> Result<()> {
    std::io::stdout()
        .lock()
        .write_all(helixflow_api::openapi::document_json().as_bytes())
        .context("writing the document to stdout")
}
