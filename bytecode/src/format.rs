//! Bytes on disk. Layout (all integers little-endian; docs/bytecode.md has the full table):
//!
//! ```text
//! header:   magic "BOTC" · version u16 · flags u16 · hash [32] · name (u32 len + UTF-8)
//! body:     version 2: u32 length of the sections · the sections, brotli-compressed
//!           version 1: the sections as they are
//! sections: tag u8 · length u32 · payload, in tag order, each once
//!           1 consts · 2 flows · 3 nodes · 4 asks · 5 https · 6 code · 7 debug (optional)
//! ```
//!
//! The hash covers the uncompressed sections, so a program's identity does not depend on
//! how it is compressed: a version 1 file and its version 2 re-encoding are the same
//! program, and registries and sessions that pinned it still find it.
//!
//! Decoding checks structure only (lengths, tags, UTF-8, enum codes); [`crate::verify`]
//! checks meaning. Every failure is a [`LoadError`], never a panic.

use crate::*;
use sha2::{Digest, Sha256};
use std::fmt;

pub const MAGIC: &[u8; 4] = b"BOTC";
/// Bumped whenever the layout or an instruction's meaning changes. Files of every earlier
/// version still load (flow registries keep old versions' bytes).
pub const FORMAT_VERSION: u16 = 2;
/// Anything bigger is refused before decoding (real programs are kilobytes).
pub const MAX_FILE: usize = 64 * 1024 * 1024;

const T_CONSTS: u8 = 1;
const T_FLOWS: u8 = 2;
const T_NODES: u8 = 3;
const T_ASKS: u8 = 4;
const T_HTTPS: u8 = 5;
const T_CODE: u8 = 6;
const T_DEBUG: u8 = 7;

/// Why bytes are not a loadable program. The VM never sees such bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    NotBotc,
    Version {
        found: u16,
    },
    Truncated {
        what: &'static str,
    },
    Malformed(String),
    HashMismatch,
    /// The verifier refused it; see [`crate::verify`].
    Invalid(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotBotc => write!(f, "not a .botc file (bad magic number)"),
            LoadError::Version { found } => write!(
                f,
                "made for .botc format version {found}; this botc reads versions 1 to {FORMAT_VERSION}: recompile the flow"
            ),
            LoadError::Truncated { what } => write!(f, "file is truncated (in {what})"),
            LoadError::Malformed(m) => write!(f, "malformed file: {m}"),
            LoadError::HashMismatch => write!(f, "content hash does not match: the file is corrupted"),
            LoadError::Invalid(m) => write!(f, "program failed verification: {m}"),
        }
    }
}

impl std::error::Error for LoadError {}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn section(&mut self, tag: u8, payload: W) {
        self.u8(tag);
        self.u32(payload.0.len() as u32);
        self.0.extend(payload.0);
    }
}

impl Program {
    /// The sections whose bytes the content hash covers.
    fn sections(&self) -> Vec<u8> {
        let mut out = W(Vec::new());
        let mut s = W(Vec::new());
        s.u32(self.consts.len() as u32);
        for c in &self.consts {
            s.str(c);
        }
        out.section(T_CONSTS, s);

        let mut s = W(Vec::new());
        s.u32(self.flows.len() as u32);
        for f in &self.flows {
            s.u32(f.name);
            s.u16(f.params);
            s.u16(f.vars.len() as u16);
            for v in &f.vars {
                s.u32(v.name);
                s.u8(v.ty.code());
            }
            s.u8(f.returns.map_or(0xFF, Ty::code));
            s.u32(f.entry);
        }
        out.section(T_FLOWS, s);

        let mut s = W(Vec::new());
        s.u32(self.nodes.len() as u32);
        for n in &self.nodes {
            s.u16(n.flow);
            s.u32(n.name);
            s.u32(n.offset);
        }
        out.section(T_NODES, s);

        let mut s = W(Vec::new());
        s.u32(self.asks.len() as u32);
        for a in &self.asks {
            s.u32(a.node);
            s.u16(a.var);
            match a.expect {
                Expect::Text => s.u8(0),
                Expect::Number => s.u8(1),
                Expect::Integer => s.u8(2),
                Expect::Boolean => s.u8(3),
                Expect::Email => s.u8(4),
                Expect::Choice => s.u8(5),
                Expect::Regex { pattern } => {
                    s.u8(6);
                    s.u32(pattern);
                }
            }
            s.u16(a.choices.len() as u16);
            for &c in &a.choices {
                s.u32(c);
            }
            s.u8(a.retries);
            s.u32(a.timeout);
            for t in [a.next, a.on_invalid, a.on_timeout, a.reprompt] {
                s.u32(t);
            }
        }
        out.section(T_ASKS, s);

        let mut s = W(Vec::new());
        s.u32(self.https.len() as u32);
        for h in &self.https {
            s.u32(h.node);
            s.u8(h.method.code());
            s.u16(h.headers.len() as u16);
            for &c in &h.headers {
                s.u32(c);
            }
            s.u8(u8::from(h.body));
            s.u16(h.var);
            s.u32(h.next);
            s.u32(h.on_error);
        }
        out.section(T_HTTPS, s);

        let mut s = W(Vec::new());
        s.u16(self.max_stack);
        s.0.extend_from_slice(&self.code);
        out.section(T_CODE, s);
        out.0
    }

    /// Computes the content hash of the sections and stores it in `self.hash`.
    pub fn seal(&mut self) {
        self.hash = Sha256::digest(self.sections()).into();
    }

    /// The file's bytes. Deterministic: the same program always encodes the same.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = W(Vec::new());
        out.0.extend_from_slice(MAGIC);
        out.u16(FORMAT_VERSION);
        out.u16(u16::from(self.debug.is_some()));
        out.0.extend_from_slice(&self.hash);
        out.str(&self.name);
        let body = self.body();
        out.u32(body.len() as u32);
        out.0.extend(compress(&body));
        out.0
    }

    /// Every section, the debug section included, uncompressed.
    fn body(&self) -> Vec<u8> {
        let mut out = W(self.sections());
        if let Some(debug) = &self.debug {
            let mut s = W(Vec::new());
            s.u32(debug.len() as u32);
            for d in debug {
                s.u32(d.node);
                s.u32(d.line);
                s.u32(d.column);
            }
            out.section(T_DEBUG, s);
        }
        out.0
    }
}

/// Bodies up to this size get brotli's best (slowest) quality: a few milliseconds for the
/// usual kilobytes. Bigger ones (generated flows of thousands of nodes) get quality 5: on a
/// 1 MB body it takes tens of milliseconds where 11 takes seconds, for a body a third
/// bigger (still an eighth of the uncompressed size).
const BEST_UP_TO: usize = 64 * 1024;

/// Brotli, chosen over deflate because its built-in dictionary of common words suits a
/// body that is mostly the bot's prose: on the example flows it makes the `.botc` smaller
/// than gzip -9 of the YAML source (docs/bytecode.md, BENCHMARKS.md).
fn compress(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let quality = if body.len() <= BEST_UP_TO { 11 } else { 5 };
    let mut out = Vec::with_capacity(body.len() / 2);
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, quality, 22);
        w.write_all(body).expect("writing to a Vec cannot fail");
    }
    out
}

/// The `len` bytes `compressed` holds, refusing a stream that holds more (a decompression
/// bomb stops at `len` + 1 bytes) or less, or is not brotli.
fn decompress(compressed: &[u8], len: usize) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(len.min(MAX_FILE));
    let read = brotli::Decompressor::new(compressed, 4096).take(len as u64 + 1).read_to_end(&mut out);
    match read {
        Ok(n) if n == len => Ok(out),
        Ok(n) => Err(LoadError::Malformed(format!(
            "the file is corrupted: its compressed sections hold {n} bytes, not the {len} the header says"
        ))),
        Err(e) => Err(LoadError::Malformed(format!(
            "the file is corrupted: its compressed sections are damaged or cut short ({e})"
        ))),
    }
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        let end =
            self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(LoadError::Truncated { what: self.what })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LoadError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn str(&mut self) -> Result<String, LoadError> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| LoadError::Malformed(format!("a string in {} is not UTF-8", self.what)))
    }
    /// A count of items each at least `min` bytes long, refused if the rest cannot hold them,
    /// so a corrupted count cannot make the loader allocate gigabytes.
    fn count(&mut self, min: usize) -> Result<usize, LoadError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.b.len() - self.at {
            return Err(LoadError::Truncated { what: self.what });
        }
        Ok(n)
    }
    fn done(&self) -> Result<(), LoadError> {
        if self.at == self.b.len() {
            Ok(())
        } else {
            Err(LoadError::Malformed(format!("{} has {} unexpected trailing bytes", self.what, self.b.len() - self.at)))
        }
    }
}

fn bad(what: &str) -> LoadError {
    LoadError::Malformed(what.to_string())
}

/// Decodes the structure of a file. Callers use [`crate::load`], which also verifies.
pub fn decode(bytes: &[u8]) -> Result<Program, LoadError> {
    if bytes.len() > MAX_FILE {
        return Err(LoadError::Malformed(format!("file is {} bytes; the limit is {MAX_FILE}", bytes.len())));
    }
    if bytes.len() < 4 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotBotc);
    }
    let mut r = R { b: bytes, at: 4, what: "header" };
    let version = r.u16()?;
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(LoadError::Version { found: version });
    }
    let flags = r.u16()?;
    if flags > 1 {
        return Err(bad("unknown header flags"));
    }
    let hash: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    let name = r.str()?;
    let body = if version == 1 {
        std::borrow::Cow::Borrowed(&bytes[r.at..])
    } else {
        r.what = "sections";
        let len = r.u32()? as usize;
        if len > MAX_FILE {
            return Err(LoadError::Malformed(format!("the sections are {len} bytes; the limit is {MAX_FILE}")));
        }
        std::borrow::Cow::Owned(decompress(&bytes[r.at..], len)?)
    };
    let mut r = R { b: &body, at: 0, what: "sections" };
    let mut sections: Vec<(u8, &[u8])> = Vec::new();
    let mut hashed_end = 0;
    while r.at < body.len() {
        r.what = "section header";
        let tag = r.u8()?;
        let len = r.u32()? as usize;
        r.what = "section";
        let payload = r.take(len)?;
        if sections.last().is_some_and(|&(t, _)| t >= tag) || !(T_CONSTS..=T_DEBUG).contains(&tag) {
            return Err(bad("sections out of order, repeated or unknown"));
        }
        if tag != T_DEBUG {
            hashed_end = r.at;
        }
        sections.push((tag, payload));
    }
    let tags: Vec<u8> = sections.iter().map(|s| s.0).collect();
    if tags[..tags.len().min(6)] != [T_CONSTS, T_FLOWS, T_NODES, T_ASKS, T_HTTPS, T_CODE] {
        return Err(LoadError::Truncated { what: "sections" });
    }
    if (flags == 1) != (tags.len() == 7) {
        return Err(bad("debug flag and debug section disagree"));
    }
    if Sha256::digest(&body[..hashed_end]).as_slice() != hash {
        return Err(LoadError::HashMismatch);
    }
    let sec = |t: u8, what: &'static str| R { b: sections[(t - 1) as usize].1, at: 0, what };

    let mut s = sec(T_CONSTS, "constants");
    let n = s.count(4)?;
    let mut consts = Vec::with_capacity(n);
    for _ in 0..n {
        consts.push(s.str()?);
    }
    s.done()?;

    let mut s = sec(T_FLOWS, "flow table");
    let n = s.count(13)?;
    let mut flows = Vec::with_capacity(n);
    for _ in 0..n {
        let name = s.u32()?;
        let params = s.u16()?;
        let nvars = s.u16()? as usize;
        let mut vars = Vec::with_capacity(nvars.min(s.b.len()));
        for _ in 0..nvars {
            let name = s.u32()?;
            let ty = Ty::from_code(s.u8()?).ok_or_else(|| bad("unknown variable type"))?;
            vars.push(Var { name, ty });
        }
        let returns = match s.u8()? {
            0xFF => None,
            c => Some(Ty::from_code(c).ok_or_else(|| bad("unknown return type"))?),
        };
        flows.push(Flow { name, params, vars, returns, entry: s.u32()? });
    }
    s.done()?;

    let mut s = sec(T_NODES, "node table");
    let n = s.count(10)?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(Node { flow: s.u16()?, name: s.u32()?, offset: s.u32()? });
    }
    s.done()?;

    let mut s = sec(T_ASKS, "ask table");
    let n = s.count(30)?;
    let mut asks = Vec::with_capacity(n);
    for _ in 0..n {
        let node = s.u32()?;
        let var = s.u16()?;
        let expect = match s.u8()? {
            0 => Expect::Text,
            1 => Expect::Number,
            2 => Expect::Integer,
            3 => Expect::Boolean,
            4 => Expect::Email,
            5 => Expect::Choice,
            6 => Expect::Regex { pattern: s.u32()? },
            _ => return Err(bad("unknown answer type")),
        };
        let nc = s.u16()? as usize;
        let mut choices = Vec::with_capacity(nc.min(s.b.len()));
        for _ in 0..nc {
            choices.push(s.u32()?);
        }
        let retries = s.u8()?;
        let timeout = s.u32()?;
        let (next, on_invalid, on_timeout, reprompt) = (s.u32()?, s.u32()?, s.u32()?, s.u32()?);
        asks.push(Ask { node, var, expect, choices, retries, timeout, next, on_invalid, on_timeout, reprompt });
    }
    s.done()?;

    let mut s = sec(T_HTTPS, "http table");
    let n = s.count(18)?;
    let mut https = Vec::with_capacity(n);
    for _ in 0..n {
        let node = s.u32()?;
        let method = Method::from_code(s.u8()?).ok_or_else(|| bad("unknown HTTP method"))?;
        let nh = s.u16()? as usize;
        let mut headers = Vec::with_capacity(nh.min(s.b.len()));
        for _ in 0..nh {
            headers.push(s.u32()?);
        }
        let body = match s.u8()? {
            0 => false,
            1 => true,
            _ => return Err(bad("bad body flag")),
        };
        https.push(Http { node, method, headers, body, var: s.u16()?, next: s.u32()?, on_error: s.u32()? });
    }
    s.done()?;

    let mut s = sec(T_CODE, "code");
    let max_stack = s.u16()?;
    let code = s.b[s.at..].to_vec();

    let debug = if tags.len() == 7 {
        let mut s = sec(T_DEBUG, "debug spans");
        let n = s.count(12)?;
        let mut d = Vec::with_capacity(n);
        for _ in 0..n {
            d.push(DebugSpan { node: s.u32()?, line: s.u32()?, column: s.u32()? });
        }
        s.done()?;
        Some(d)
    } else {
        None
    };
    Ok(Program { name, hash, consts, flows, nodes, asks, https, code, max_stack, debug })
}
