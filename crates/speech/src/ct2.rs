//! Reader for CTranslate2's `model.bin` (the format faster-whisper models
//! ship in), so the embedded Whisper engine loads those model directories
//! directly: no conversion step, no Python, no torch.
//!
//! Layout (little-endian): `u32 version`, `u16-prefixed spec name`,
//! `u32 revision`, `u32 count`, then per variable: `u16-prefixed name`,
//! `u8 rank`, `u32 × rank dims`, `u8 dtype`, `u32 byte count`, bytes; then
//! `u32 alias count` and pairs of `u16-prefixed` names. Strings end in NUL.

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("CTranslate2 模型文件错误 / malformed CTranslate2 model at byte {offset}: {what}")]
    Malformed { offset: usize, what: String },
    #[error("不支持的 CTranslate2 数据类型 / unsupported CTranslate2 dtype {dtype} for `{name}`")]
    DType { name: String, dtype: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variable<'a> {
    pub name: String,
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values as f32 (int8 weights are not dequantised here: they need the scale variables).
    pub fn to_f32(&self) -> Vec<f32> {
        let d = self.data;
        match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::I8 => d.iter().map(|&b| b as i8 as f32).collect(),
            DType::I16 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
                .collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Model<'a> {
    pub version: u32,
    pub spec: String,
    pub variables: Vec<Variable<'a>>,
    /// (alias, target)
    pub aliases: Vec<(String, String)>,
}

struct Reader<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Ct2Error> {
        let end = self
            .off
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| Ct2Error::Malformed {
                offset: self.off,
                what: format!("{what}: needs {n} bytes, file ends"),
            })?;
        let s = &self.b[self.off..end];
        self.off = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, Ct2Error> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, Ct2Error> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, Ct2Error> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn string(&mut self, what: &str) -> Result<String, Ct2Error> {
        let n = self.u16(what)? as usize;
        let s = self.take(n, what)?;
        Ok(String::from_utf8_lossy(s)
            .trim_end_matches('\0')
            .to_string())
    }
}

pub fn parse(bytes: &[u8]) -> Result<Model<'_>, Ct2Error> {
    let mut r = Reader { b: bytes, off: 0 };
    let version = r.u32("version")?;
    if !(3..=10).contains(&version) {
        return Err(Ct2Error::Malformed {
            offset: 0,
            what: format!("binary version {version} (expected 3..10)"),
        });
    }
    let spec = r.string("spec name")?;
    let _revision = r.u32("spec revision")?;
    let count = r.u32("variable count")? as usize;
    let mut variables = Vec::with_capacity(count.min(100_000));
    for _ in 0..count {
        let start = r.off;
        let name = r.string("variable name")?;
        let rank = r.u8("rank")? as usize;
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            dims.push(r.u32("dimension")? as usize);
        }
        let code = r.u8("dtype")?;
        let dtype = DType::from_code(code).ok_or_else(|| Ct2Error::DType {
            name: name.clone(),
            dtype: code,
        })?;
        let nbytes = r.u32("byte count")? as usize;
        let elems = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if elems.and_then(|e| e.checked_mul(dtype.size())) != Some(nbytes) {
            return Err(Ct2Error::Malformed {
                offset: start,
                what: format!("`{name}`: {nbytes} bytes do not match dims {dims:?} of {dtype:?}"),
            });
        }
        let data = r.take(nbytes, &name)?;
        variables.push(Variable {
            name,
            dims,
            dtype,
            data,
        });
    }
    let mut aliases = Vec::new();
    if r.off < bytes.len() {
        let n = r.u32("alias count")?;
        for _ in 0..n {
            let a = r.string("alias")?;
            let t = r.string("alias target")?;
            aliases.push((a, t));
        }
    }
    Ok(Model {
        version,
        spec,
        variables,
        aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend_from_slice(&((t.len() + 1) as u16).to_le_bytes());
            b.extend_from_slice(t.as_bytes());
            b.push(0);
        };
        s(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        s(&mut b, "w");
        b.push(2);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&half::f16::from_f32(1.5).to_le_bytes());
        b.extend_from_slice(&half::f16::from_f32(-2.0).to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        s(&mut b, "proj");
        s(&mut b, "w");
        b
    }

    #[test]
    fn parses_variables_and_aliases() {
        let b = sample();
        let m = parse(&b).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.variables[0].name, "w");
        assert_eq!(m.variables[0].dims, vec![1, 2]);
        assert_eq!(m.variables[0].to_f32(), vec![1.5, -2.0]);
        assert_eq!(m.aliases, vec![("proj".to_string(), "w".to_string())]);
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let mut b = sample();
        // Byte count 4 → 6.
        let pos = b.windows(4).rposition(|w| w == 4u32.to_le_bytes()).unwrap();
        b[pos] = 6;
        assert!(matches!(parse(&b), Err(Ct2Error::Malformed { .. })));
    }

    proptest! {
        #[test]
        fn never_panics(pos in 0usize..64, val in any::<u8>(), cut in 0usize..70) {
            let mut b = sample();
            if pos < b.len() { b[pos] = val; }
            b.truncate(cut);
            let _ = parse(&b);
        }
    }
}
