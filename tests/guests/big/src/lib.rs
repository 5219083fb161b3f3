//! `big`: an HTTP function carrying 2 MiB of initialised data, so its component is
//! ~2 MB: what a function with an embedded vocabulary or lookup table looks like.

// Generating 2 MiB at compile time is deliberate.
#![allow(long_running_const_eval)]

use helixflow_guest_sdk::http::{Request, Response};

const SIZE: usize = 2 << 20;

static TABLE: [u8; SIZE] = {
    let mut t = [0u8; SIZE];
    let mut i = 0;
    let mut x: u32 = 0x9e37_79b9;
    while i < SIZE {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        t[i] = x as u8;
        i += 1;
    }
    t
};

fn handle(req: Request) -> Response {
    let i = req.path().len() * 7919 % SIZE;
    Response::text(200, format!("big {} {}\n", req.path(), TABLE[i]))
}

helixflow_guest_sdk::http_handler!(handle);
