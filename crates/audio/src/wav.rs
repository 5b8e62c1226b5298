//! WAV in and out. The reader is written by hand because espeak-ng's
//! `--stdout` writes a streaming header (RIFF and data sizes of 0x7ffff000)
//! that strict readers reject, and because every byte comes from outside the
//! process: any input gives `Ok` or a `WavError` naming the byte offset, never
//! a panic (see the proptest below). Writing goes through `hound`.
//!
//! In memory: [`parse_wav`] and [`wav_bytes`]. Files, at the edges of the
//! pipeline: [`read_wav`] and [`write_wav`] (mono, any rate), [`read_8k_mono`]
//! and [`write_8k_mono`] for prompts played into a call, and
//! [`StereoRecorder`] / [`read_stereo`] for call recordings (8 kHz 16-bit
//! stereo, left: remote party, right: our side). Errors about a file name it.
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::g711::{ALAW_DECODE, ULAW_DECODE};
use crate::resample::resample_i16;

/// Mono 16-bit PCM at `rate` Hz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Pcm {
    pub fn duration_ms(&self) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / self.rate as u64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("WAV 文件格式错误 / malformed WAV at byte {offset}: {what}")]
    Malformed { offset: usize, what: String },
    #[error("不支持的 WAV 格式 / unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("读写 WAV 失败 / WAV I/O error on {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("写 WAV 失败 / WAV encoding error: {0}")]
    Encode(#[from] hound::Error),
    /// What went wrong with the file at `path` (its content or its encoding).
    #[error("WAV 文件 / WAV file {}: {err}", path.display())]
    File { path: PathBuf, err: Box<WavError> },
}

/// Names the file in an error about its content.
fn in_file(path: &Path) -> impl Fn(WavError) -> WavError + '_ {
    move |err| match err {
        WavError::Io { .. } | WavError::File { .. } => err,
        other => WavError::File {
            path: path.to_path_buf(),
            err: Box::new(other),
        },
    }
}

/// A `hound` error while writing the file at `path`.
fn hound_at(path: &Path) -> impl Fn(hound::Error) -> WavError + '_ {
    move |e| match e {
        hound::Error::IoError(err) => WavError::Io {
            path: path.display().to_string(),
            err,
        },
        other => in_file(path)(WavError::Encode(other)),
    }
}

fn malformed(offset: usize, what: impl Into<String>) -> WavError {
    WavError::Malformed {
        offset,
        what: what.into(),
    }
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, WavError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| malformed(off, "unexpected end of file"))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, WavError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| malformed(off, "unexpected end of file"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Pcm,
    Float,
    ALaw,
    MuLaw,
}

#[derive(Debug, Clone, Copy)]
struct Format {
    encoding: Encoding,
    channels: u16,
    rate: u32,
    bits: u16,
}

/// Parse a WAV file held in memory and mix it down to mono 16-bit.
/// Accepts PCM 8/16/24/32-bit, IEEE float 32/64, A-law and µ-law, plain or
/// WAVE_FORMAT_EXTENSIBLE; chunk sizes that overrun the file are clamped.
pub fn parse_wav(bytes: &[u8]) -> Result<Pcm, WavError> {
    let (fmt, data, base) = locate(bytes)?;
    decode(data, fmt, base)
}

/// The format, the data chunk and the data chunk's byte offset.
fn locate(bytes: &[u8]) -> Result<(Format, &[u8], usize), WavError> {
    if bytes.get(0..4) != Some(b"RIFF".as_slice()) {
        return Err(malformed(0, "missing RIFF signature (not a WAV file)"));
    }
    if bytes.get(8..12) != Some(b"WAVE".as_slice()) {
        return Err(malformed(8, "missing WAVE form type"));
    }
    let mut off = 12usize;
    let mut format: Option<Format> = None;
    while off + 8 <= bytes.len() {
        let id = &bytes[off..off + 4];
        let declared = u32_at(bytes, off + 4)? as usize;
        let body = off + 8;
        let size = declared.min(bytes.len() - body);
        match id {
            b"fmt " => format = Some(parse_fmt(&bytes[body..body + size], body)?),
            b"data" => {
                let fmt = format.ok_or_else(|| malformed(off, "data chunk before fmt chunk"))?;
                return Ok((fmt, &bytes[body..body + size], body));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        off = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(malformed(bytes.len(), "no data chunk"))
}

fn parse_fmt(b: &[u8], base: usize) -> Result<Format, WavError> {
    if b.len() < 16 {
        return Err(malformed(
            base,
            format!("fmt chunk is {} bytes, needs at least 16", b.len()),
        ));
    }
    let mut tag = u16_at(b, 0)?;
    let channels = u16_at(b, 2)?;
    let rate = u32_at(b, 4)?;
    let bits = u16_at(b, 14)?;
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
        tag = u16_at(b, 24)
            .map_err(|_| malformed(base + 24, "extensible fmt chunk without sub-format"))?;
    }
    let encoding = match tag {
        1 => Encoding::Pcm,
        3 => Encoding::Float,
        6 => Encoding::ALaw,
        7 => Encoding::MuLaw,
        other => return Err(WavError::Unsupported(format!("format tag {other:#06x}"))),
    };
    if channels == 0 {
        return Err(malformed(base + 2, "zero channels"));
    }
    if rate == 0 {
        return Err(malformed(base + 4, "zero sample rate"));
    }
    let ok_bits = match encoding {
        Encoding::Pcm => matches!(bits, 8 | 16 | 24 | 32),
        Encoding::Float => matches!(bits, 32 | 64),
        Encoding::ALaw | Encoding::MuLaw => bits == 8,
    };
    if !ok_bits {
        return Err(WavError::Unsupported(format!(
            "{bits} bits per sample for {encoding:?}"
        )));
    }
    Ok(Format {
        encoding,
        channels,
        rate,
        bits,
    })
}

fn decode(data: &[u8], fmt: Format, base: usize) -> Result<Pcm, WavError> {
    let width = (fmt.bits / 8) as usize;
    let frame = width * fmt.channels as usize;
    if frame == 0 {
        return Err(malformed(base, "zero-sized sample frame"));
    }
    // A trailing partial frame (a cut-off stream) is dropped.
    let frames = data.len() / frame;
    let mut samples = Vec::with_capacity(frames);
    for f in 0..frames {
        let mut acc = 0f64;
        for c in 0..fmt.channels as usize {
            let s = &data[f * frame + c * width..f * frame + (c + 1) * width];
            acc += sample_to_f64(s, fmt);
        }
        let v = acc / fmt.channels as f64;
        samples.push((v * 32768.0).round().clamp(-32768.0, 32767.0) as i16);
    }
    Ok(Pcm {
        rate: fmt.rate,
        samples,
    })
}

/// One sample as a float in [-1, 1].
fn sample_to_f64(s: &[u8], fmt: Format) -> f64 {
    match (fmt.encoding, s.len()) {
        (Encoding::Pcm, 1) => (s[0] as f64 - 128.0) / 128.0,
        (Encoding::Pcm, 2) => i16::from_le_bytes([s[0], s[1]]) as f64 / 32768.0,
        (Encoding::Pcm, 3) => (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as f64 / 8_388_608.0,
        (Encoding::Pcm, 4) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f64 / 2_147_483_648.0,
        (Encoding::Float, 4) => {
            let v = f32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f64;
            if v.is_finite() {
                v.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        }
        (Encoding::Float, 8) => {
            let v = f64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
            if v.is_finite() {
                v.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        }
        (Encoding::ALaw, 1) => ALAW_DECODE[s[0] as usize] as f64 / 32768.0,
        (Encoding::MuLaw, 1) => ULAW_DECODE[s[0] as usize] as f64 / 32768.0,
        _ => 0.0,
    }
}

/// Read a WAV file from disk (mono 16-bit at the file's rate).
pub fn read_wav(path: &Path) -> Result<Pcm, WavError> {
    let bytes = std::fs::read(path).map_err(|err| WavError::Io {
        path: path.display().to_string(),
        err,
    })?;
    parse_wav(&bytes).map_err(in_file(path))
}

/// Reads any WAV file [`parse_wav`] accepts as 8 kHz mono 16-bit samples (channels
/// averaged, resampled), e.g. a prompt to play into a call.
pub fn read_8k_mono(path: &Path) -> Result<Vec<i16>, WavError> {
    let pcm = read_wav(path)?;
    Ok(resample_i16(&pcm.samples, pcm.rate, 8000))
}

/// Reads a 16-bit stereo recording back as (left, right) channels.
pub fn read_stereo(path: &Path) -> Result<(Vec<i16>, Vec<i16>), WavError> {
    let bytes = std::fs::read(path).map_err(|err| WavError::Io {
        path: path.display().to_string(),
        err,
    })?;
    let (fmt, data, _) = locate(&bytes).map_err(in_file(path))?;
    if fmt.channels != 2 || fmt.encoding != Encoding::Pcm || fmt.bits != 16 {
        return Err(in_file(path)(WavError::Unsupported(
            "expected 16-bit stereo".into(),
        )));
    }
    // A trailing partial frame (a cut-off recording) is dropped.
    let frames = data.chunks_exact(4);
    Ok(frames
        .map(|f| {
            (
                i16::from_le_bytes([f[0], f[1]]),
                i16::from_le_bytes([f[2], f[3]]),
            )
        })
        .unzip())
}

fn spec(rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Encode mono 16-bit PCM as a WAV file in memory.
pub fn wav_bytes(rate: u32, samples: &[i16]) -> Result<Vec<u8>, WavError> {
    let mut cur = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut w = hound::WavWriter::new(&mut cur, spec(rate))?;
        let mut w16 = w.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w16.write_sample(s);
        }
        w16.flush()?;
        w.finalize()?;
    }
    Ok(cur.into_inner())
}

/// Write mono 16-bit PCM to a WAV file.
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> Result<(), WavError> {
    let bytes = wav_bytes(rate, samples)?;
    std::fs::write(path, bytes).map_err(|err| WavError::Io {
        path: path.display().to_string(),
        err,
    })
}

/// Writes 8 kHz mono 16-bit samples (test fixtures, prompts).
pub fn write_8k_mono(path: &Path, samples: &[i16]) -> Result<(), WavError> {
    write_wav(path, 8000, samples)
}

/// A call recording: 8 kHz 16-bit stereo, left = remote party, right = our side.
/// Written as the call runs, so a long call never sits in memory.
pub struct StereoRecorder {
    path: PathBuf,
    w: hound::WavWriter<BufWriter<File>>,
    frames: u64,
}

impl StereoRecorder {
    pub fn create(path: &Path) -> Result<StereoRecorder, WavError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let w = hound::WavWriter::create(path, spec).map_err(hound_at(path))?;
        Ok(StereoRecorder {
            path: path.to_path_buf(),
            w,
            frames: 0,
        })
    }
    /// Appends time-aligned samples of both sides (the shorter side is padded with silence).
    pub fn write(&mut self, remote: &[i16], ours: &[i16]) -> Result<(), WavError> {
        let n = remote.len().max(ours.len());
        for i in 0..n {
            self.w
                .write_sample(remote.get(i).copied().unwrap_or(0))
                .map_err(hound_at(&self.path))?;
            self.w
                .write_sample(ours.get(i).copied().unwrap_or(0))
                .map_err(hound_at(&self.path))?;
        }
        self.frames += n as u64;
        Ok(())
    }
    /// Seconds recorded so far.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / 8000.0
    }
    pub fn finish(self) -> Result<PathBuf, WavError> {
        let path = self.path.clone();
        self.w.finalize().map_err(hound_at(&path))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_through_hound() {
        let samples: Vec<i16> = (0..1000).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let bytes = wav_bytes(8000, &samples).unwrap();
        let pcm = parse_wav(&bytes).unwrap();
        assert_eq!(pcm.rate, 8000);
        assert_eq!(pcm.samples, samples);
    }

    #[test]
    fn accepts_streaming_header_sizes() {
        // espeak-ng --stdout: sizes say 0x7ffff000, the stream is shorter.
        let mut bytes = wav_bytes(22050, &[1, 2, 3, 4]).unwrap();
        bytes[4..8].copy_from_slice(&0x7fff_f024u32.to_le_bytes());
        bytes[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        let pcm = parse_wav(&bytes).unwrap();
        assert_eq!(pcm.samples, vec![1, 2, 3, 4]);
    }

    #[test]
    fn mixes_stereo_and_decodes_g711() {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&32000u32.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&8u32.to_le_bytes());
        for (l, r) in [(1000i16, 3000i16), (-200, -400)] {
            b.extend_from_slice(&l.to_le_bytes());
            b.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(parse_wav(&b).unwrap().samples, vec![2000, -300]);
        // G.711 silence codes decode to (near) zero.
        assert!(ULAW_DECODE[0xff].abs() <= 8);
        assert!(ALAW_DECODE[0xd5].abs() <= 8);
        assert!(ULAW_DECODE[0x80] > 30000);
        // A G.711 WAV decodes through the same tables.
        let mut g = wav_bytes(8000, &[0, 0]).unwrap();
        g[20..22].copy_from_slice(&7u16.to_le_bytes()); // µ-law
        g[32..34].copy_from_slice(&1u16.to_le_bytes()); // block align
        g[34..36].copy_from_slice(&8u16.to_le_bytes()); // bits
        g[44..48].copy_from_slice(&[0xff, 0x80, 0x00, 0x7f]);
        let s = parse_wav(&g).unwrap().samples;
        assert_eq!(s, vec![ULAW_DECODE[0xff], 32124, -32124, 0]);
    }

    #[test]
    fn errors_name_the_offset() {
        match parse_wav(b"RIFF\0\0\0\0WAVEdata\x04\0\0\0abcd") {
            Err(WavError::Malformed { offset, what }) => {
                assert_eq!(offset, 12);
                assert!(what.contains("before fmt"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_wav(b"OggS"),
            Err(WavError::Malformed { offset: 0, .. })
        ));
    }

    #[test]
    fn reads_16k_stereo_as_8k_mono_and_records_stereo() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..16000 {
            w.write_sample(if i % 2 == 0 { 1000i16 } else { 3000 })
                .unwrap();
            w.write_sample(1000i16).unwrap();
        }
        w.finalize().unwrap();
        // Mono is 1500 plus a 8 kHz tone of 500, which the 8 kHz output cannot hold.
        let s = read_8k_mono(&p).unwrap();
        assert_eq!(s.len(), 8000);
        // The resampler's filter treats the file as starting and ending in silence,
        // so the first and last few milliseconds fade in and out.
        // The resampler's filter treats the file as starting in silence, so the first
        // output sample, half of whose window lies before the file, fades in.
        assert!((500..1400).contains(&s[0]), "{}", s[0]);
        assert!(
            s[1..].iter().all(|&v| (1400..=2100).contains(&v)),
            "{:?}",
            &s[..4]
        );

        let out = dir.path().join("rec.wav");
        let mut rec = StereoRecorder::create(&out).unwrap();
        rec.write(&[1, 2, 3], &[4, 5]).unwrap();
        assert!((rec.seconds() - 3.0 / 8000.0).abs() < 1e-9);
        rec.finish().unwrap();
        assert_eq!(read_stereo(&out).unwrap(), (vec![1, 2, 3], vec![4, 5, 0]));
        // A mono file is not a recording.
        let mono = dir.path().join("mono.wav");
        write_8k_mono(&mono, &[1, 2, 3]).unwrap();
        assert_eq!(read_8k_mono(&mono).unwrap(), vec![1, 2, 3]);
        let e = read_stereo(&mono).unwrap_err().to_string();
        assert!(e.contains("mono.wav") && e.contains("stereo"), "{e}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.wav");
        std::fs::write(&p, b"RIFF\0\0\0\0WAVEjunk").unwrap();
        let e = read_8k_mono(&p).unwrap_err().to_string();
        assert!(e.contains("bad.wav"), "{e}");
        let e = read_wav(&dir.path().join("missing.wav"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.wav"), "{e}");
        let e = StereoRecorder::create(&dir.path().join("no/such/dir.wav"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("dir.wav"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_wav(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_headers(pos in 0usize..60, val in any::<u8>(), cut in 0usize..80) {
            let mut b = wav_bytes(16000, &[5, -5, 300, -300, 7, 8, 9, 10]).unwrap();
            if pos < b.len() { b[pos] = val; }
            b.truncate(cut.max(1));
            let _ = parse_wav(&b);
        }
    }
}
